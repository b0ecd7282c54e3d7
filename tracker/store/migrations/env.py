"""Alembic environment: the URL comes from settings, the metadata from the SQLModel tables."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import tracker.store.models  # noqa: F401  (registers every table)
from tracker.config import get_settings
from tracker.store.db import make_engine

config = context.config
url = config.attributes.get("tracker_url") or get_settings().database_url
target_metadata = SQLModel.metadata


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def _migrate(conn: Connection) -> None:
    """Run the migrations on conn. SQLite's batch mode rebuilds a table (copy, drop, rename): with foreign keys
    on, dropping a table that other rows reference fails, so they are off while migrating, checked at the end,
    and on again after."""
    # A caller's connection already inside a transaction keeps its foreign keys (the pragma would be a no-op).
    sqlite = conn.dialect.name == "sqlite" and not conn.in_transaction()
    if sqlite:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction, so before it
        conn.commit()
    try:
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=conn.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    table, rowid, parent, _ = broken[0]
                    raise RuntimeError(f"the migration left {len(broken)} row(s) whose reference is gone "
                                       f"(first: {table} rowid {rowid} -> {parent}); restore the database from its "
                                       "backup")
    finally:
        if sqlite:
            if conn.in_transaction():
                conn.rollback()  # only after a failure: a finished migration has committed
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = make_engine(url)
    with engine.connect() as conn:
        _migrate(conn)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
