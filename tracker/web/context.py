"""What every route shares: the app's context, the logged-in user, CSRF and role checks, rendering."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.engine import Engine
from sqlmodel import Session

from tracker.accounts import role_allows, session_signing_key, session_user
from tracker.check.dates import date_phrases
from tracker.check.diff import BlockChange
from tracker.config import Settings
from tracker.paths import templates_dir
from tracker.store.db import session_scope
from tracker.web.diffview import ContextRun, UnchangedSections
from tracker.web.ratelimit import LoginLimiter
from tracker.web.review import matched_sections, section_anchor

SESSION_COOKIE = "tracker_session"
LOGIN_COOKIE = "tracker_login"
FLASH_COOKIE = "tracker_flash"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class Problem(Exception):
    """An HTTP error shown as a page (or JSON under /api) with a message saying what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoginRequired(Problem):
    """No valid session: pages redirect to /login, the API answers 401."""

    def __init__(self, message: str = "log in first") -> None:
        super().__init__(401, message)


@dataclass
class WebContext:
    """Per-app state: settings, the engine, templates, the login limiter and the signing key."""

    settings: Settings
    engine: Engine
    env: Environment
    limiter: LoginLimiter
    _secret: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def secret(self) -> str:
        """TRACKER_SECRET_KEY, or the key generated once and kept in the database."""
        if self.settings.secret_key:
            return self.settings.secret_key
        with self._lock:
            if self._secret is None:
                with session_scope(self.engine) as s:
                    self._secret = session_signing_key(session=s)
            return self._secret

    def signer(self, purpose: str) -> URLSafeTimedSerializer:
        """A timed signer for one purpose (session, login form, flash)."""
        return URLSafeTimedSerializer(self.secret(), salt=f"tracker-{purpose}")


def make_env() -> Environment:
    """The Jinja environment for templates/web: autoescape on everything, strict about names."""
    env = Environment(
        loader=FileSystemLoader(str(templates_dir() / "web")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["dt"] = fmt_dt
    env.filters["day"] = lambda d: d.isoformat() if isinstance(d, date) else "—"
    # Links built from stored URLs are only ever http(s): never javascript: or data:.
    env.filters["http_url"] = lambda u: (
        u if isinstance(u, str) and u.lower().startswith(("http://", "https://")) else ""
    )
    env.filters["section_anchor"] = section_anchor
    # A change's effective and comments-close dates as of today (UTC): "takes effect in 12 days (…)".
    env.filters["date_phrases"] = lambda c: date_phrases(c.effective_on, c.comments_close_on,
                                                         datetime.now(UTC).date())
    env.filters["matched_sections"] = matched_sections
    env.tests["blockchange"] = lambda x: isinstance(x, BlockChange)
    env.tests["unchanged_sections"] = lambda x: isinstance(x, UnchangedSections)
    env.tests["context_run"] = lambda x: isinstance(x, ContextRun)
    return env


def fmt_dt(value: datetime | None) -> str:
    """A time shown in UTC to the minute."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def ctx(request: Request) -> WebContext:
    """The app's WebContext."""
    web: WebContext = request.app.state.web
    return web


def read_session(request: Request) -> Iterator[Session]:
    """A session for reading (nothing is committed)."""
    with Session(ctx(request).engine, expire_on_commit=False) as s:
        yield s


@dataclass(frozen=True)
class Viewer:
    """The logged-in user of a request."""

    id: int
    email: str
    role: str
    csrf: str

    @property
    def can_edit(self) -> bool:
        return role_allows(self.role, "editor")

    @property
    def is_admin(self) -> bool:
        return role_allows(self.role, "admin")


def session_token(request: Request) -> str | None:
    """The session id in the request's signed cookie, or None when it is missing, expired or forged."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    web = ctx(request)
    try:
        data = web.signer("session").loads(raw, max_age=int(web.settings.web_session_hours * 3600))
    except BadSignature:
        return None
    token = data.get("s") if isinstance(data, dict) else None
    return token if isinstance(token, str) and token else None


def optional_user(request: Request) -> Viewer | None:
    """The logged-in user, or None when there is no live session (ended, expired, forged, user disabled).

    The session row is looked up on every request, so logging out, a password change or
    disabling the user takes effect on the next request of every copy of the cookie.
    """
    token = session_token(request)
    if token is None:
        return None
    with Session(ctx(request).engine) as s:
        found = session_user(session=s, token=token)
    if found is None:
        return None
    user, csrf = found
    return Viewer(id=user.id or 0, email=user.email, role=user.role, csrf=csrf)


def current_user(request: Request) -> Viewer:
    """The logged-in user; LoginRequired otherwise."""
    user = optional_user(request)
    if user is None:
        raise LoginRequired()
    return user


def tokens_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted CSRF token with the session's."""
    return bool(given) and bool(expected) and hmac.compare_digest(str(given), expected)


async def csrf_user(request: Request, user: Annotated[Viewer, Depends(current_user)]) -> Viewer:
    """The logged-in user of a mutation that carries the session's CSRF token (form field or header)."""
    given = request.headers.get(CSRF_HEADER)
    if not given and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not tokens_match(given, user.csrf):
        raise Problem(403, "the form's security token is missing or stale: reload the page and try again")
    return user


def editor(user: Annotated[Viewer, Depends(csrf_user)]) -> Viewer:
    """A user allowed to change impacts (editor or admin)."""
    if not user.can_edit:
        raise Problem(
            403,
            f"{user.email} is a {user.role}: viewers can read but not change anything; "
            "ask an admin for the editor role",
        )
    return user


def admin(user: Annotated[Viewer, Depends(csrf_user)]) -> Viewer:
    """A user allowed to manage users."""
    if not user.is_admin:
        raise Problem(403, f"{user.email} is a {user.role}: only admins manage users")
    return user


def set_cookie(request: Request, response: Response, name: str, value: str, *, max_age: int | None) -> None:
    """Set a signed, HttpOnly, SameSite=Lax cookie; Secure over HTTPS or when configured."""
    secure = ctx(request).settings.web_secure_cookies or request.url.scheme == "https"
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="lax", secure=secure)


def flash(request: Request, response: Response, message: str, kind: str = "ok") -> None:
    """A message shown once on the next page."""
    set_cookie(request, response, FLASH_COOKIE, ctx(request).signer("flash").dumps([kind, message]), max_age=120)


def _pop_flash(request: Request) -> tuple[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        kind, message = ctx(request).signer("flash").loads(raw, max_age=120)
    except (BadSignature, ValueError, TypeError):
        return None
    return str(kind), str(message)


def safe_next(value: str | None, default: str = "/") -> str:
    """A redirect target on this site only (a path, never another host)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


def render(request: Request, template: str, user: Viewer | None, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render a page of templates/web (autoescaped) with the user, CSRF token and any flash message."""
    message = _pop_flash(request)
    html = (
        ctx(request)
        .env.get_template(template)
        .render(
            user=user,
            csrf=user.csrf if user else "",
            flash=message,
            path=request.url.path,
            here=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
            max_note_chars=ctx(request).settings.max_note_chars,
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status)
    if message is not None:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


# Dependencies as annotated types (parameters typed with these are filled in by FastAPI).
CurrentUser = Annotated[Viewer, Depends(current_user)]
CsrfUser = Annotated[Viewer, Depends(csrf_user)]
EditorUser = Annotated[Viewer, Depends(editor)]
AdminUser = Annotated[Viewer, Depends(admin)]
ReadSession = Annotated[Session, Depends(read_session)]
