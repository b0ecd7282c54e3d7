"""Atom feeds for feed readers (a per-user token in the URL) and the user's page that manages tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from tracker.notify.atom import FeedFilter, build_feed
from tracker.notify.feed_tokens import FeedTokenError, create_token, revoke_token, tokens_of, user_for_token
from tracker.store.db import session_scope, utcnow
from tracker.store.models import User
from tracker.web.context import CsrfUser, CurrentUser, ReadSession, Viewer, ctx, flash, render

router = APIRouter(include_in_schema=False)
REFUSED = "a valid feed token is required: create one on your account page (/account) and use its feed URL\n"


@router.get("/feeds/changes.atom")
def changes_feed(request: Request, s: ReadSession, token: Annotated[str, Query(max_length=200)] = "",
                 source: Annotated[str, Query(max_length=120)] = "", team: Annotated[str, Query(max_length=120)] = "",
                 sop: Annotated[str, Query(max_length=120)] = "") -> Response:
    """Changes (with the impacts they opened) for one source, team or SOP; refused without a live token."""
    if user_for_token(session=s, token=token) is None:
        return Response(REFUSED, status_code=401, media_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": "no-store"})
    web = ctx(request)
    body = build_feed(session=s, base_url=web.settings.base_url, feed_filter=FeedFilter(source, team, sop),
                      now=utcnow())
    return Response(body, media_type="application/atom+xml; charset=utf-8",
                    headers={"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"})


def _feed_url(base: str, token: str) -> str:
    from urllib.parse import urlencode

    return f"{base.rstrip('/')}/feeds/changes.atom?{urlencode({'token': token})}"


def _account(request: Request, user: Viewer, s: Session, new_token: str | None = None) -> Response:
    base = ctx(request).settings.base_url
    return render(request, "account.html", user, tokens=tokens_of(session=s, user_id=user.id), new_token=new_token,
                  feed_url=_feed_url(base, new_token) if new_token else None, nav="account")


@router.get("/account")
def account(request: Request, user: CurrentUser, s: ReadSession) -> Response:
    """The user's page: feed tokens (created, revoked) and how to use them."""
    return _account(request, user, s)


@router.post("/account/feed-tokens")
def token_create(request: Request, user: CsrfUser) -> Response:
    """Create a feed token and show it once (audited as feed_token.created)."""
    with session_scope(ctx(request).engine) as s:
        row = s.get(User, user.id)
        assert row is not None
        token = create_token(session=s, user=row)
    with Session(ctx(request).engine) as s:
        response = _account(request, user, s, new_token=token)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/account/feed-tokens/{token_id}/revoke")
def token_revoke(request: Request, token_id: int, user: CsrfUser) -> Response:
    """Revoke a feed token: feed readers using it are refused from now on (audited)."""
    response = RedirectResponse("/account", status_code=303)
    try:
        with session_scope(ctx(request).engine) as s:
            row = s.get(User, user.id)
            assert row is not None
            revoke_token(session=s, user=row, token_id=token_id)
    except FeedTokenError as exc:
        flash(request, response, str(exc), "error")
        return response
    flash(request, response, f"feed token #{token_id} revoked")
    return response
