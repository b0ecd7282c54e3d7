"""service: scheduler state, job runs, APScheduler job store

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-22 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tracker.store.db

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('apscheduler_jobs',
    sa.Column('id', sa.Unicode(191), nullable=False),
    sa.Column('next_run_time', sa.Float(25), nullable=True),
    sa.Column('job_state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_apscheduler_jobs_next_run_time'), 'apscheduler_jobs', ['next_run_time'], unique=False)
    op.create_table('scheduler_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', tracker.store.db.UTCDateTime(), nullable=False),
    sa.Column('heartbeat_at', tracker.store.db.UTCDateTime(), nullable=False),
    sa.Column('heartbeat_seconds', sa.Float(), nullable=False),
    sa.Column('stopped_at', tracker.store.db.UTCDateTime(), nullable=True),
    sa.Column('stop_reason', sa.String(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_table('job_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('started_at', tracker.store.db.UTCDateTime(), nullable=False),
    sa.Column('finished_at', tracker.store.db.UTCDateTime(), nullable=True),
    sa.Column('result', sa.String(length=20), nullable=True),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_job_run_kind'), 'job_run', ['kind'], unique=False)
    op.create_index(op.f('ix_job_run_started_at'), 'job_run', ['started_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_job_run_started_at'), table_name='job_run')
    op.drop_index(op.f('ix_job_run_kind'), table_name='job_run')
    op.drop_table('job_run')
    op.drop_table('scheduler_state')
    op.drop_index(op.f('ix_apscheduler_jobs_next_run_time'), table_name='apscheduler_jobs')
    op.drop_table('apscheduler_jobs')
