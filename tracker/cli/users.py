"""`tracker users …`: the people who may use the web UI, and their roles."""

from __future__ import annotations

import sys

import typer

from tracker.cli.app import app, emit_json, fail, iso, session, settings

users_app = typer.Typer(help="Web UI users and their roles (viewer, editor, admin).", no_args_is_help=True)
app.add_typer(users_app, name="users")

_BY = "who is {} (audit actor; default: TRACKER_ACTOR, else system)"
_ROLE_HELP = "viewer (reads), editor (also marks impacts), admin (also manages users)"


def _actor(by: str | None) -> str:
    """Who acts, for the audit trail: --by, else TRACKER_ACTOR, else system (users are often added by setup scripts)."""
    return by or settings().actor or "system"


def _password(from_stdin: bool) -> str:
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            fail("--password-stdin given but standard input held no password line")
        return value
    if not sys.stdin.isatty():
        fail("no terminal to prompt for the password: pipe it in with --password-stdin")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def users_add(
    email: str = typer.Argument(..., help="the user's email address (their login)"),
    role: str = typer.Option(..., "--role", help=_ROLE_HELP),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="read the password from the first line of stdin"
    ),
    by: str | None = typer.Option(None, "--by", help=_BY.format("adding the user")),
) -> None:
    """Add a user; the password is prompted for (or read with --password-stdin) and stored as an argon2 hash.

    Example: echo "$PASSWORD" | tracker users add ana@example.com --role editor --password-stdin
    """
    from tracker.accounts import ROLES, UserError, add_user

    if role not in ROLES:
        fail(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    password = _password(password_stdin)
    try:
        with session() as s:
            user = add_user(session=s, email=email, password=password, role=role, by=_actor(by))
    except UserError as exc:
        fail(str(exc))
    typer.echo(f"added {user.email} as {user.role}")


@users_app.command("role")
def users_role(
    email: str = typer.Argument(..., help="the user's email address"),
    role: str = typer.Argument(..., help=_ROLE_HELP),
    by: str | None = typer.Option(None, "--by", help=_BY.format("changing the role")),
) -> None:
    """Give a user another role.

    Example: tracker users role ana@example.com admin --by lead@example.com
    """
    from tracker.accounts import UserError, set_role

    try:
        with session() as s:
            user = set_role(session=s, email=email, role=role, by=_actor(by))
    except UserError as exc:
        fail(str(exc))
    typer.echo(f"{user.email} is now {user.role}")


@users_app.command("password")
def users_password(
    email: str = typer.Argument(..., help="the user's email address"),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="read the password from the first line of stdin"
    ),
    by: str | None = typer.Option(None, "--by", help=_BY.format("resetting the password")),
) -> None:
    """Set a user's password (prompted, or --password-stdin); their open sessions stop working.

    Example: echo "$NEW" | tracker users password ana@example.com --password-stdin
    """
    from tracker.accounts import UserError, set_password

    password = _password(password_stdin)
    try:
        with session() as s:
            user = set_password(session=s, email=email, password=password, by=_actor(by))
    except UserError as exc:
        fail(str(exc))
    typer.echo(f"password of {user.email} changed")


@users_app.command("disable")
def users_disable(
    email: str = typer.Argument(..., help="the user's email address"),
    by: str | None = typer.Option(None, "--by", help=_BY.format("disabling the user")),
) -> None:
    """Stop a user from logging in (their open sessions stop working too).

    Example: tracker users disable ana@example.com
    """
    _enable(email, False, _actor(by))


@users_app.command("enable")
def users_enable(
    email: str = typer.Argument(..., help="the user's email address"),
    by: str | None = typer.Option(None, "--by", help=_BY.format("enabling the user")),
) -> None:
    """Let a disabled user log in again.

    Example: tracker users enable ana@example.com
    """
    _enable(email, True, _actor(by))


def _enable(email: str, enabled: bool, by: str) -> None:
    from tracker.accounts import UserError, set_enabled

    try:
        with session() as s:
            user = set_enabled(session=s, email=email, enabled=enabled, by=by)
    except UserError as exc:
        fail(str(exc))
    typer.echo(f"{user.email} is {'enabled' if user.enabled else 'disabled'}")


@users_app.command("list")
def users_list(as_json: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """List users and their roles.

    Example: tracker users list --json
    """
    from tracker.accounts import list_users

    with session() as s:
        rows = list_users(session=s)
    if as_json:
        emit_json([{"email": u.email, "role": u.role, "enabled": u.enabled, "created_at": u.created_at} for u in rows])
        return
    if not rows:
        typer.echo("no users: add one with `tracker users add EMAIL --role admin`")
        return
    for u in rows:
        typer.echo(f"{u.email:<40} {u.role:<7} {'enabled' if u.enabled else 'disabled'}  added {iso(u.created_at)}")
