"""the audit trail is append-only on SQLite too: triggers refuse UPDATE and DELETE on audit_event

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 16:45:00

PostgreSQL has had its trigger since 0002; this adds the SQLite equivalent. SQLite has no TRUNCATE
(a `DELETE FROM audit_event` without WHERE is still a DELETE, and SQLite skips its truncate
shortcut when the table has triggers), so two triggers cover it. They stop accidents and casual
edits; anyone with write access to the database file can drop them, and the hash chain
(`tracker audit verify`) catches what is done after that.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TRIGGERS = {
    "audit_event_no_update": "UPDATE",
    "audit_event_no_delete": "DELETE",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL: the trigger from 0002 already refuses UPDATE, DELETE and TRUNCATE
    for name, verb in SQLITE_TRIGGERS.items():
        # The message starts like PostgreSQL's ("audit_event is append-only: UPDATE refused").
        op.execute(
            f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {verb} ON audit_event\n"
            f"BEGIN\n"
            f"  SELECT RAISE(ABORT, 'audit_event is append-only: {verb} refused; "
            f"record a correction as a new event');\n"
            f"END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
