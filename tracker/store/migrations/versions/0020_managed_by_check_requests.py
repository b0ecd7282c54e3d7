"""where sources, SOPs and teams are managed (source/sop/team.managed_by: file | ui), and check requests

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 18:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tracker.store.db

revision: str = '0020'
down_revision: str | Sequence[str] | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = sa.text("state IN ('queued', 'running')")


def upgrade() -> None:
    # Every existing row came from a file: the server default says so. Adding a column with a
    # default is a plain ALTER TABLE on SQLite too (batch mode recreates no table for it).
    for table in ('source', 'sop', 'team'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('managed_by', sa.String(length=8), nullable=False, server_default='file'))
    op.create_table(
        'check_request',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('source_id', sa.String(length=120), nullable=False),
        sa.Column('requested_by', sa.String(), nullable=False),
        sa.Column('requested_at', tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('state', sa.String(length=12), nullable=False),
        sa.Column('started_at', tracker.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('finished_at', tracker.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('outcome', sa.String(length=20), nullable=True),
        sa.Column('error', sa.String(), nullable=True),
        sa.ForeignKeyConstraint(['source_id'], ['source.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_check_request_source_id', 'check_request', ['source_id'])
    op.create_index('uq_check_request_active', 'check_request', ['source_id'], unique=True,
                    sqlite_where=_ACTIVE, postgresql_where=_ACTIVE)


def downgrade() -> None:
    op.drop_index('uq_check_request_active', table_name='check_request')
    op.drop_index('ix_check_request_source_id', table_name='check_request')
    op.drop_table('check_request')
    for table in ('team', 'sop', 'source'):
        if op.get_bind().dialect.name == 'sqlite':
            # SQLite (3.35+) drops a plain column in place; batch mode would recreate the table, and
            # dropping `source` fails its foreign keys once versions and impacts refer to it.
            op.execute(f'ALTER TABLE {table} DROP COLUMN managed_by')
            continue
        with op.batch_alter_table(table) as batch:
            batch.drop_column('managed_by')
