"""leases: one holder at a time for work that must not run twice (the digest send)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tracker.store.db

revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('lease',
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('holder', sa.String(length=32), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('acquired_at', tracker.store.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', tracker.store.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('lease')
