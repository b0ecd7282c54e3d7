"""check_state.fingerprint: what the selected part of the last page read looked like, for the fast path
of an unchanged page sent without validators (tracker.check.record)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0021'
down_revision: str | Sequence[str] | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column: a plain ALTER TABLE on SQLite too. Existing states start without one, so
    # their next check reads the page in full, as before, and leaves one.
    with op.batch_alter_table('check_state') as batch:
        batch.add_column(sa.Column('fingerprint', sa.String(length=80), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        # In place (SQLite 3.35+): batch mode would recreate the table for a dropped column.
        op.execute('ALTER TABLE check_state DROP COLUMN fingerprint')
        return
    with op.batch_alter_table('check_state') as batch:
        batch.drop_column('fingerprint')
