"""crawl tasks sent to Celery workers (the ledger) and the workers' heartbeats

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 07:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tracker.store.db

revision: str = '0019'
down_revision: str | Sequence[str] | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # New tables only: existing sources keep their rows; a source's `queue:` lives in its options.
    op.create_table(
        'crawl_task',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('queue', sa.String(length=40), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('sources', sa.JSON(), nullable=False),
        sa.Column('baseline', sa.JSON(), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('created_at', tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('sent_at', tracker.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('started_at', tracker.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('finished_at', tracker.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('worker', sa.String(length=255), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('result', sa.String(length=20), nullable=True),
        sa.Column('error', sa.String(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_crawl_task_state', 'crawl_task', ['state'])
    op.create_table(
        'crawl_worker',
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('queues', sa.JSON(), nullable=False),
        sa.Column('concurrency', sa.Integer(), nullable=False),
        sa.Column('started_at', tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('heartbeat_at', tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('heartbeat_seconds', sa.Float(), nullable=False),
        sa.Column('running', sa.JSON(), nullable=False),
        sa.Column('stopped_at', tracker.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('crawl_worker')
    op.drop_index('ix_crawl_task_state', table_name='crawl_task')
    op.drop_table('crawl_task')
