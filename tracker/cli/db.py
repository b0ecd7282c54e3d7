"""`tracker db …`: create and migrate the database."""

from __future__ import annotations

import typer

from tracker.cli.app import _safe_url, app, fail, settings

db_app = typer.Typer(help="Create or migrate the database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the database, or migrate it to the newest schema.

    Example: TRACKER_DATABASE_URL=postgresql://tracker@db/tracker tracker db upgrade
    """
    from tracker.store.db import upgrade

    s = settings()
    try:
        upgrade(s.database_url)
    except Exception as exc:
        fail(f"could not migrate {_safe_url(s.database_url)}: {exc}")
    typer.echo(f"database {_safe_url(s.database_url)} is at the newest schema")
