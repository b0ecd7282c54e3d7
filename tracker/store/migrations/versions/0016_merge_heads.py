"""merge the heading-path, web-session, stream and notification branches

Revision ID: 0016
Revises: 0009, 0010, 0012, 0015
Create Date: 2026-12-02 06:55:00
"""

from collections.abc import Sequence

revision: str = "0016"
down_revision: str | Sequence[str] | None = ("0009", "0010", "0012", "0015")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
