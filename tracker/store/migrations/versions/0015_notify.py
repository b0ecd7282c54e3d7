"""notifications: team channels, immediate alerts, deliveries recorded once, per-user feed tokens

Revision ID: 0015
Revises: 0008
Create Date: 2026-12-02 06:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tracker.store.db

revision: str = '0015'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing teams get no channels and existing SOPs no immediate alerts: nothing changes until
    # the SOP file says so.
    with op.batch_alter_table('team') as batch:
        batch.add_column(sa.Column('notify', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    with op.batch_alter_table('sop') as batch:
        batch.add_column(sa.Column('alert', sa.String(length=20), nullable=True))
    op.create_table(
        'notify_delivery',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=200), nullable=False),
        sa.Column('message_key', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('team_id', sa.String(length=120), nullable=True),
        sa.Column('target', sa.String(length=500), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('title', sa.String(), nullable=False),
        sa.Column('body', sa.String(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('response', sa.String(), nullable=True),
        sa.Column('error', sa.String(), nullable=True),
        sa.Column('created_at', tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('sent_at', tracker.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('next_attempt_at', tracker.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('channel', 'message_key', name='uq_notify_delivery_channel_message'),
    )
    op.create_index('ix_notify_delivery_channel', 'notify_delivery', ['channel'])
    op.create_index('ix_notify_delivery_status', 'notify_delivery', ['status'])
    op.create_table(
        'feed_token',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', tracker.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index('ix_feed_token_user_id', 'feed_token', ['user_id'])


def downgrade() -> None:
    op.drop_index('ix_feed_token_user_id', table_name='feed_token')
    op.drop_table('feed_token')
    op.drop_index('ix_notify_delivery_status', table_name='notify_delivery')
    op.drop_index('ix_notify_delivery_channel', table_name='notify_delivery')
    op.drop_table('notify_delivery')
    with op.batch_alter_table('sop') as batch:
        batch.drop_column('alert')
    with op.batch_alter_table('team') as batch:
        batch.drop_column('notify')
