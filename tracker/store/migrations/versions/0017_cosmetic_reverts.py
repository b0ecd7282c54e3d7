"""cosmetic and reverted changes: change.cosmetic, change.reverts_to_version_id / reverts_to_at, change.quiet

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 07:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tracker.store.db

revision: str = '0017'
down_revision: str | Sequence[str] | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A recorded change whose new text equals an earlier version's (not its baseline) is a revert: found
# again here for the changes recorded before this migration, from the versions' text hashes.
_EARLIER = ("SELECT {what} FROM version v WHERE v.source_id = change.source_id AND v.id < change.from_version_id"
            " AND v.text_hash = (SELECT t.text_hash FROM version t WHERE t.id = change.to_version_id)")


def upgrade() -> None:
    with op.batch_alter_table('change') as batch:
        batch.add_column(sa.Column('cosmetic', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('quiet', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('reverts_to_version_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('reverts_to_at', tracker.store.db.UTCDateTime(), nullable=True))
        batch.create_foreign_key('fk_change_reverts_to_version', 'version', ['reverts_to_version_id'], ['id'])
    newest = _EARLIER.format(what="max(v.id)")
    op.execute(f"UPDATE change SET reverts_to_version_id = ({newest}) WHERE technical = {_false()}")
    op.execute("UPDATE change SET reverts_to_at = (SELECT v.created_at FROM version v"
               " WHERE v.id = change.reverts_to_version_id) WHERE reverts_to_version_id IS NOT NULL")


def _false() -> str:
    """The SQL literal false in both dialects (SQLite stores booleans as 0 and 1)."""
    return "false" if op.get_bind().dialect.name == "postgresql" else "0"


def downgrade() -> None:
    with op.batch_alter_table('change') as batch:
        batch.drop_constraint('fk_change_reverts_to_version', type_='foreignkey')
        batch.drop_column('reverts_to_at')
        batch.drop_column('reverts_to_version_id')
        batch.drop_column('quiet')
        batch.drop_column('cosmetic')
