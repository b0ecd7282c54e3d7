"""Engines, sessions and migrations."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine
from sqlmodel import Session, create_engine

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; the tracker stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for the URL; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def conflict_insert(session: Session, table: Any) -> Any | None:
    """An INSERT of the table that can say ON CONFLICT (DO NOTHING / DO UPDATE), on the backends that
    have one (SQLite and PostgreSQL); None elsewhere, where the caller looks the row up first."""
    return conflict_insert_for(session.get_bind().dialect.name, table)


def conflict_insert_for(dialect: str, table: Any) -> Any | None:
    """conflict_insert by dialect name, for statements built once and kept (see hot_statement)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    return None


_HOT: dict[tuple[str, str], Any] = {}


def hot_statement(session: Session, name: str, build: Callable[[str], Any]) -> Any:
    """A statement of the crawl's hot path, built once per dialect by build(dialect name) and kept:
    executed with a dict of values, it skips building a statement (and its cache key) per row."""
    dialect = session.get_bind().dialect.name
    stmt = _HOT.get((dialect, name))
    if stmt is None:
        stmt = _HOT[(dialect, name)] = build(dialect)
    return stmt


def table_of(model: Any) -> sa.Table:
    """The Core table of a SQLModel table class."""
    return model.__table__  # type: ignore[no-any-return]


def insert_returning_id(session: Session, model: Any, values: dict[str, Any]) -> int:
    """INSERT one row through the session's connection (types applied, no unit of work, no flush of
    what else the session holds) and return its new id: for the rows every new version writes."""
    table = table_of(model)
    stmt = hot_statement(session, f"insert {table.name}", lambda _d: table.insert().returning(table.c.id))
    return int(session.connection().execute(stmt, values).scalar_one())


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose work commits together at the end, or rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str) -> Any:
    """An Alembic config that finds the migrations inside the installed package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("tracker") / "store" / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["tracker_url"] = url
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Create or migrate the database at url to the newest schema."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


VERSION_TABLE = "alembic_version"  # Alembic's default; tracker/store/migrations/env.py does not rename it


def current_revisions(engine: Engine) -> set[str]:
    """The migration revisions the database is at (empty when never migrated).

    Read with plain SQL, not Alembic's MigrationContext: every command checks the schema before it
    runs (a crawl every few minutes), and importing Alembic costs ~0.1 s of that.
    """
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return set()
        return {str(v) for v in conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()}


def head_revisions(url: str) -> set[str]:
    """The newest migration revisions this code knows.

    Read from the migration files' `revision`/`down_revision` literals (~5 ms) instead of Alembic
    loading every migration module (~0.18 s per command); a file this reader does not fully
    understand hands the question to Alembic.
    """
    heads = plain_heads(resources.files("tracker") / "store" / "migrations" / "versions")
    return heads if heads is not None else alembic_heads(url)


def alembic_heads(url: str) -> set[str]:
    """The newest migration revisions, as Alembic computes them."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config(url)).get_heads())


def plain_heads(versions: Traversable) -> set[str] | None:
    """The head revisions of a folder of Alembic migrations, or None when Alembic must decide
    (branch labels, depends_on, a revision that is not a literal)."""
    import ast

    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.iterdir():
        # Alembic loads every .py in versions/ but __init__.py (and editor lock files, .#*).
        if not path.name.endswith(".py") or path.name == "__init__.py" or path.name.startswith(".#"):
            continue
        found: dict[str, Any] = {}
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, ValueError, UnicodeDecodeError):
            return None
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision", "branch_labels",
                                                               "depends_on"):
                try:
                    found[target.id] = ast.literal_eval(value)
                except (ValueError, TypeError, SyntaxError):
                    return None
        revision, down = found.get("revision"), found.get("down_revision")
        if not isinstance(revision, str) or found.get("branch_labels") or found.get("depends_on"):
            return None
        if down is None:
            downs: tuple[str, ...] = ()
        elif isinstance(down, str):
            downs = (down,)
        elif isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
            downs = tuple(down)
        else:
            return None
        revisions.add(revision)
        parents.update(downs)
    return revisions - parents or None
