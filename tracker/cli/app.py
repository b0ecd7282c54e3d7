"""The Typer application and what every command shares: settings, the database, output.

Startup matters: `tracker crawl` runs every few minutes, and every command builds this app first. So
this module and the command modules import only Typer at the top; settings, SQLAlchemy, the models and
each command's services are imported by the function that uses them (tests/e2e/test_cli_startup.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from tracker.config import Settings

app = typer.Typer(help="Policy and regulation change tracker.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)

EXIT_OK, EXIT_USAGE, EXIT_FAILURES = 0, 2, 3
# `tracker crawl` stopped by SIGINT/SIGTERM before every source was checked (128 + SIGINT, as shells report).
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print an error to stderr and exit (2: usage or configuration error)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings() -> Settings:
    """Settings from the environment (a SettingsError becomes exit 2 in run())."""
    from tracker.config import get_settings

    return get_settings()


def actor(by: str | None) -> str:
    """Who acts, for the audit trail: --by, else TRACKER_ACTOR, else a clear error."""
    chosen = by or settings().actor
    if not chosen:
        fail("say who is acting, for the audit trail: pass --by EMAIL or set TRACKER_ACTOR=EMAIL")
    return chosen


def _version(value: bool) -> None:
    if value:
        import tracker

        typer.echo(f"tracker {tracker.__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                              help="print the version and exit")) -> None:
    """Policy and regulation change tracker.

    Example: tracker sources sync sources.yaml && tracker crawl --all && tracker digest preview
    """


# What an option's value is, in --help, instead of Typer's <str>/<int> type names.
METAVARS = {"since": "DATE", "until": "DATE", "due": "DATE", "by": "EMAIL", "assignee": "EMAIL",
            "source": "SOURCE_ID", "sop": "SOP_ID", "team": "TEAM_ID", "limit": "N", "status": "STATUS",
            "format": "FORMAT", "kind": "KIND", "entity": "TYPE[:ID]", "note": "TEXT", "reason": "TEXT"}


def tidy_help(cmd: Any) -> Any:
    """The click command tree with plain metavars: none on flags, a word saying what a value is elsewhere."""
    for param in getattr(cmd, "params", []):
        if param.metavar is not None:
            continue
        if getattr(param, "param_type_name", "") == "argument":
            param.metavar = (param.name or "value").upper()
            param.display_type_rich = lambda ctx: None  # the name says it; no <int> beside it
        elif param.is_flag or param.count:
            param.metavar = ""
        else:
            param.metavar = METAVARS.get(param.name or "", (param.name or "value").upper())
    original = cmd.get_help_option

    def help_option(ctx: Any) -> Any:
        option = original(ctx)
        if option is not None:
            option.metavar = ""
        return option

    cmd.get_help_option = help_option
    for sub in getattr(cmd, "commands", {}).values():
        tidy_help(sub)
    return cmd


def command() -> Any:
    """The `tracker` click command, built from the Typer app, with its help tidied."""
    return tidy_help(typer.main.get_command(app))


# True once run_app(owns_process=True) runs: the command is the whole process (the `tracker` program),
# not a test's CliRunner or an application calling the CLI in its own process.
_owns_process = False


@contextmanager
def startup() -> Iterator[None]:
    """A command's start-up (its heavy imports, settings, the engine) as tracker.process.frozen_startup
    runs it, when the command owns its process; as it is otherwise (frozen objects are never collected,
    which a test suite or a host application must not be made to pay)."""
    if not _owns_process:
        yield
        return
    from tracker.process import frozen_startup

    with frozen_startup():
        yield


def run_app(*, owns_process: bool = False) -> None:
    """Run the app: the one place where an error a user can fix becomes one line and exit 2.

    owns_process: the app is the whole process (the `tracker` program): see startup()."""
    global _owns_process
    _owns_process = owns_process
    try:
        command()(prog_name="tracker")
    except Exception as exc:
        message = user_error(exc)
        if message is None:
            raise
        typer.echo(f"error: {message}", err=True)
        raise SystemExit(EXIT_USAGE) from None


def user_error(exc: BaseException) -> str | None:
    """The one-line message for an error type the user can act on; None for anything else (a bug).

    Modules are looked up in sys.modules rather than imported: an error of a library that was never
    loaded cannot have been raised, and the CLI's startup stays light.
    """
    config, yamlfile = sys.modules.get("tracker.config"), sys.modules.get("tracker.declare.yamlfile")
    if config is not None and isinstance(exc, config.SettingsError):
        return f"invalid settings: {exc}"
    if yamlfile is not None and isinstance(exc, yamlfile.RegistryError):
        return str(exc)
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.DBAPIError):
        return (f"the database {_configured_url()} refused the command: {exc.orig}; check that it is "
                "reachable and writable by this user (TRACKER_DATABASE_URL)")
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return None


def _configured_url() -> str:
    from tracker.config import get_settings

    try:
        return _safe_url(get_settings().database_url)
    except Exception:  # the settings were good enough to reach the database; be safe anyway
        return "(TRACKER_DATABASE_URL)"


def engine(check_schema: bool = True) -> Engine:
    """An engine for the configured database, refusing one that is not migrated."""
    from sqlalchemy.exc import OperationalError

    from tracker.store.db import current_revisions, head_revisions, make_engine

    s = settings()
    try:
        eng = make_engine(s.database_url)
        if check_schema:
            have = current_revisions(eng)
            if not have:
                fail(f"the database {_safe_url(s.database_url)} is not initialised: run `tracker db upgrade`")
            if have != head_revisions(s.database_url):
                fail(f"the database {_safe_url(s.database_url)} needs migrating: run `tracker db upgrade`")
    except OperationalError as exc:
        fail(f"cannot open the database {_safe_url(s.database_url)}: {exc.orig}")
    except Exception as exc:
        if isinstance(exc, typer.Exit):
            raise
        fail(f"cannot use the database {_safe_url(s.database_url)}: {exc}")
    return eng


@contextmanager
def session() -> Iterator[Session]:
    """A session on the configured database that commits when the command succeeds."""
    from tracker.store.db import session_scope

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


def parse_until(value: str | None) -> datetime | None:
    """The end of a range given on the command line (exclusive); a bare date means the end of that day."""
    if value is None:
        return None
    if len(value) == 10:
        try:
            day = datetime.fromisoformat(value).replace(tzinfo=UTC)
        except ValueError:
            fail(f"--until {value!r} is not an ISO 8601 date or time (e.g. 2026-11-30 or 2026-11-30T18:00:00Z)")
        return day + timedelta(days=1)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--until {value!r} is not an ISO 8601 date or time (e.g. 2026-11-30 or 2026-11-30T18:00:00Z)")
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def check_range(since: datetime | None, until: datetime | None) -> None:
    """Refuse a range that ends before it starts (it would silently match nothing)."""
    if since is not None and until is not None and since >= until:
        fail(f"--since {iso(since)} is not before --until {iso(until)}")


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
