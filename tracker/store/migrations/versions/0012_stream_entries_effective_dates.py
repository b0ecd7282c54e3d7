"""stream entries and effective dates: the stream_entry table, dates on changes, a kind cursor

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tracker.store.db

revision: str = '0012'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHANGE_COLUMNS = ('effective_on', 'updated_on', 'comments_close_on', 'dates_from', 'entry')


def upgrade() -> None:
    op.create_table('stream_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.String(), nullable=False),
    sa.Column('entry_id', sa.String(length=500), nullable=False),
    sa.Column('title', sa.String(), nullable=False),
    sa.Column('url', sa.String(), nullable=True),
    sa.Column('published', sa.String(length=64), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('first_seen_at', tracker.store.db.UTCDateTime(), nullable=False),
    sa.Column('last_seen_at', tracker.store.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['source.id']),
    sa.ForeignKeyConstraint(['version_id'], ['version.id']),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_id', 'entry_id'),
    )
    op.create_index('ix_stream_entry_source_id', 'stream_entry', ['source_id'])
    op.create_index('ix_stream_entry_published', 'stream_entry', ['published'])
    # Existing changes are of html pages: none of these is known for them, so NULL is their value.
    with op.batch_alter_table('change') as batch:
        batch.add_column(sa.Column('effective_on', sa.Date(), nullable=True))
        batch.add_column(sa.Column('updated_on', sa.Date(), nullable=True))
        batch.add_column(sa.Column('comments_close_on', sa.Date(), nullable=True))
        batch.add_column(sa.Column('dates_from', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('entry', sa.JSON(), nullable=True))
    with op.batch_alter_table('check_state') as batch:
        batch.add_column(sa.Column('cursor', sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('check_state') as batch:
        batch.drop_column('cursor')
    with op.batch_alter_table('change') as batch:
        for name in reversed(_CHANGE_COLUMNS):
            batch.drop_column(name)
    op.drop_index('ix_stream_entry_published', table_name='stream_entry')
    op.drop_index('ix_stream_entry_source_id', table_name='stream_entry')
    op.drop_table('stream_entry')
