"""Login and logout: argon2-checked passwords, server-side sessions named by a signed cookie,
attempts rate-limited in the database before any password is checked."""

from __future__ import annotations

import logging
import math
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature

from tracker.accounts import authenticate, end_session, normalise_email, start_session
from tracker.store.db import session_scope
from tracker.store.models import User
from tracker.web.context import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    CsrfUser,
    WebContext,
    ctx,
    optional_user,
    render,
    safe_next,
    session_token,
    set_cookie,
    tokens_match,
)

router = APIRouter(tags=["login"])
log = logging.getLogger("tracker.web")


def _login_page(
    request: Request, *, next_url: str, email: str = "", error: str | None = None, status: int = 200
) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", None, status=status, login_token=token, next_url=next_url, email=email, error=error
    )
    set_cookie(request, response, LOGIN_COOKIE, ctx(request).signer("login").dumps(token), max_age=3600)
    return response


@router.get("/login", include_in_schema=False)
def login_form(request: Request, next: str = "/") -> Response:
    """The login form."""
    next_url = safe_next(next)
    if optional_user(request) is not None:
        return RedirectResponse(next_url, status_code=303)
    return _login_page(request, next_url=next_url)


def _new_session(web: WebContext, user: User) -> str:
    """Start a session row for the user; the signed cookie value that names it."""
    with session_scope(web.engine) as s:
        token = start_session(session=s, user=user, hours=web.settings.web_session_hours)
    return web.signer("session").dumps({"s": token})


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/login", include_in_schema=False)
def login(
    request: Request,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the password (rate-limited per address and email) and start a session."""
    web = ctx(request)
    next_url = safe_next(next)
    email = normalise_email(email)
    try:
        expected = str(web.signer("login").loads(request.cookies.get(LOGIN_COOKIE, ""), max_age=3600))
    except BadSignature:
        expected = ""
    if not tokens_match(csrf_token, expected):
        return _login_page(
            request,
            next_url=next_url,
            email=email,
            status=403,
            error="the login form expired or its security token is missing: try again",
        )
    address = _client(request)
    wait = web.limiter.reserve(address, email)  # counted before the password is checked
    if wait > 0:
        minutes = max(1, math.ceil(wait / 60))
        log.warning("login for %s from %s refused: too many failures", email, address)
        response = _login_page(
            request,
            next_url=next_url,
            email=email,
            status=429,
            error=f"too many failed logins for {email} from your address: "
            f"wait {minutes} minute{'s' if minutes != 1 else ''} and try again",
        )
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    with session_scope(web.engine) as s:
        user = authenticate(session=s, email=email, password=password)
    if user is None:
        log.warning("failed login for %s from %s", email, address)
        return _login_page(
            request,
            next_url=next_url,
            email=email,
            status=401,
            error="wrong email or password (an admin adds users with `tracker users add`)",
        )
    web.limiter.succeeded(address, email)
    response = RedirectResponse(next_url, status_code=303)
    set_cookie(
        request,
        response,
        SESSION_COOKIE,
        _new_session(web, user),
        max_age=int(web.settings.web_session_hours * 3600),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@router.get("/logout", include_in_schema=False)
def logout_form(request: Request) -> Response:
    """A page with the logout button (logging out is a POST with the CSRF token)."""
    user = optional_user(request)
    if user is None:
        return RedirectResponse("/login", status_code=303)
    return render(request, "logout.html", user)


@router.post("/logout", include_in_schema=False)
def logout(request: Request, user: CsrfUser) -> Response:
    """End the session on the server (a saved copy of the cookie stops working) and drop the cookie."""
    token = session_token(request)
    if token is not None:
        with session_scope(ctx(request).engine) as s:
            end_session(session=s, token=token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
