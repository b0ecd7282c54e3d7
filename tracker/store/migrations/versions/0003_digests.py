"""digests: what each recipient was sent, per run

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tracker.store.db

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "digest",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("created_at", tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("since", tracker.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("change_ids", sa.JSON(), nullable=False),
        sa.Column("impact_ids", sa.JSON(), nullable=False),
        sa.Column("failing_source_ids", sa.JSON(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("digest", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_digest_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_digest_recipient"), ["recipient"], unique=False)
        batch_op.create_index(batch_op.f("ix_digest_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("digest", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_digest_created_at"))
        batch_op.drop_index(batch_op.f("ix_digest_recipient"))
        batch_op.drop_index(batch_op.f("ix_digest_run_id"))
    op.drop_table("digest")
