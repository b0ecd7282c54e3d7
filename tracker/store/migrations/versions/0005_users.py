"""web UI users and generated secrets

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-22 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tracker.store.db

revision: str = '0005'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'app_user',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('password_hash', sa.String(), nullable=False),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('email'),
    )
    op.create_table(
        'web_secret',
        sa.Column('name', sa.String(length=60), nullable=False),
        sa.Column('value', sa.String(), nullable=False),
        sa.Column('created_at', tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('web_secret')
    op.drop_table('app_user')
