"""The Typer application and what every command shares: settings, the database, output.

Startup matters: `tracker crawl` runs every few minutes, and every command builds this app first. So
this module and the command modules import only Typer at the top; settings, SQLAlchemy, the models and
each command's services are imported by the function that uses them (tests/test_cli_startup.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from tracker.config import Settings

app = typer.Typer(help="Policy and regulation change tracker.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)

EXIT_OK, EXIT_USAGE, EXIT_FAILURES = 0, 2, 3


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print an error to stderr and exit (2: usage or configuration error)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings() -> Settings:
    """Settings from the environment, with configuration errors reported as exit 2."""
    from tracker.config import get_settings

    try:
        return get_settings()
    except Exception as exc:  # pydantic's ValidationError names the bad variable
        fail(f"invalid settings: {exc}")


def engine(check_schema: bool = True) -> Engine:
    """An engine for the configured database, refusing one that is not migrated."""
    from sqlalchemy.exc import OperationalError

    from tracker.db import make_engine

    s = settings()
    try:
        eng = make_engine(s.database_url)
        if check_schema:
            have = stored_revisions(eng)
            if not have:
                fail(f"the database {_safe_url(s.database_url)} is not initialised: run `tracker db upgrade`")
            if have != known_heads(s.database_url):
                fail(f"the database {_safe_url(s.database_url)} needs migrating: run `tracker db upgrade`")
    except OperationalError as exc:
        fail(f"cannot open the database {_safe_url(s.database_url)}: {exc.orig}")
    except Exception as exc:
        if isinstance(exc, typer.Exit):
            raise
        fail(f"cannot use the database {_safe_url(s.database_url)}: {exc}")
    return eng


VERSION_TABLE = "alembic_version"  # Alembic's default; tracker/migrations/env.py does not rename it


def stored_revisions(eng: Engine) -> set[str]:
    """The migration revisions the database is at (empty when never migrated).

    What tracker.db.current_revisions answers, read with plain SQL: Alembic's import costs every
    command ~0.1 s, and this check runs before each crawl.
    """
    import sqlalchemy as sa

    with eng.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return set()
        return {str(v) for v in conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()}


def known_heads(url: str) -> set[str]:
    """The newest migration revisions this code knows (what tracker.db.head_revisions answers).

    Read from the migration files' `revision`/`down_revision` literals without importing Alembic or
    the migrations; a file this reader does not fully understand (branch labels, depends_on, a
    revision that is not a literal) hands the question to Alembic.
    """
    from importlib import resources

    heads = plain_heads(resources.files("tracker") / "migrations" / "versions")
    if heads is None:
        from tracker.db import head_revisions

        return head_revisions(url)
    return heads


def plain_heads(versions: Traversable) -> set[str] | None:
    """The head revisions of a folder of Alembic migrations, or None when Alembic must decide."""
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


@contextmanager
def session() -> Iterator[Session]:
    """A session on the configured database that commits when the command succeeds."""
    from tracker.db import session_scope

    eng = engine()
    try:
        with session_scope(eng) as s:
            yield s
    finally:
        eng.dispose()


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def parse_since(value: str | None) -> datetime | None:
    """An ISO 8601 time or date given on the command line, as aware UTC."""
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--since {value!r} is not an ISO 8601 date or time (e.g. 2026-11-01 or 2026-11-01T06:00:00Z)")
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def emit_json(data: Any) -> None:
    """Write JSON to stdout (times as ISO 8601)."""
    sys.stdout.write(json.dumps(data, indent=2, default=_default, ensure_ascii=False) + "\n")


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def iso(dt: datetime | None) -> str:
    """A time for tables: UTC, to the second."""
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if dt else "-"
