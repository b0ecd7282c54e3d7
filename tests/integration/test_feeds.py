"""Atom feeds with per-user tokens: valid Atom, refused without a live token, revocation, hostile text."""

from __future__ import annotations

import re
from collections.abc import Iterator

import feedparser
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tests.integration.test_web import app_settings, login, seeded  # noqa: F401  (fixtures)
from tests.support.web_seed import Seeded
from tracker.config import Settings
from tracker.store.models import AuditEvent, FeedToken, User
from tracker.web import create_app


@pytest.fixture
def client(app_settings: Settings, seeded: Seeded) -> Iterator[TestClient]:  # noqa: F811
    with TestClient(create_app(app_settings), follow_redirects=False) as c:
        yield c


def new_token(c: TestClient, csrf: str) -> str:
    page = c.post("/account/feed-tokens", data={"csrf_token": csrf})
    assert page.status_code == 200, page.text
    found = re.search(r"New token \(shown only now\):</strong>\s*<code>([^<]+)</code>", page.text)
    assert found, page.text
    return found.group(1)


def test_a_feed_parses_cleanly_and_carries_changes_and_impacts(client: TestClient, seeded: Seeded) -> None:  # noqa: F811
    token = new_token(client, login(client, "viewer"))
    client.cookies.clear()  # a feed reader has no session
    r = client.get("/feeds/changes.atom", params={"token": token})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    feed = feedparser.parse(r.content)
    assert not feed.bozo, feed.get("bozo_exception")
    all_changes = {c for cs in seeded.changes.values() for c in cs} | {seeded.hostile_change}
    assert {e.link.rsplit("/", 1)[1] for e in feed.entries} == {str(c) for c in all_changes}
    # The hostile source's markup is text in the feed, never markup.
    hostile = next(e for e in feed.entries if e.link.endswith(f"/changes/{seeded.hostile_change}"))
    assert hostile.summary_detail.type == "text/plain" and hostile.title_detail.type == "text/plain"
    assert b"<script" not in r.content and b"<img" not in r.content
    # Narrowed to an SOP: only the changes that opened impacts on it.
    narrow = feedparser.parse(client.get("/feeds/changes.atom", params={"token": token, "sop": "SOP-CS-014"}).content)
    assert not narrow.bozo and narrow.entries
    assert all("SOP-CS-014" in e.summary for e in narrow.entries)
    team = feedparser.parse(client.get("/feeds/changes.atom", params={"token": token, "team": "support"}).content)
    assert {e.link for e in team.entries} == {e.link for e in narrow.entries}
    src = feedparser.parse(client.get("/feeds/changes.atom",
                                      params={"token": token, "source": "x-privacy-policy"}).content)
    assert {e.link.rsplit("/", 1)[1] for e in src.entries} == {str(c) for c in seeded.changes["x-privacy-policy"]}


def test_a_feed_is_refused_without_a_valid_token_and_a_revoked_token_stops_working(
        client: TestClient, engine: Engine) -> None:
    csrf = login(client, "editor")
    token = new_token(client, csrf)
    assert client.get("/feeds/changes.atom").status_code == 401  # a session cookie is not enough
    assert client.get("/feeds/changes.atom", params={"token": token + "x"}).status_code == 401
    assert client.get("/feeds/changes.atom", params={"token": token}).status_code == 200
    with Session(engine) as s:
        (row,) = s.exec(select(FeedToken)).all()
        assert token not in row.token_hash
    r = client.post(f"/account/feed-tokens/{row.id}/revoke", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert client.get("/feeds/changes.atom", params={"token": token}).status_code == 401
    with Session(engine) as s:
        actions = [e.action for e in s.exec(select(AuditEvent)).all() if e.entity_type == "feed_token"]
        assert actions == ["feed_token.created", "feed_token.revoked"]
        assert all(token not in str(e.after) for e in s.exec(select(AuditEvent)).all())


def test_a_disabled_user_s_token_stops_working(client: TestClient, engine: Engine) -> None:
    token = new_token(client, login(client, "viewer"))
    with Session(engine) as s:
        user = s.exec(select(User).where(User.email == "viewer@example.com")).one()
        user.enabled = False
        s.add(user)
        s.commit()
    assert client.get("/feeds/changes.atom", params={"token": token}).status_code == 401


def test_tokens_are_revoked_only_by_their_owner(client: TestClient, app_settings: Settings) -> None:  # noqa: F811
    new_token(client, login(client, "viewer"))
    with TestClient(create_app(app_settings), follow_redirects=False) as other:
        csrf = login(other, "editor")
        r = other.post("/account/feed-tokens/1/revoke", data={"csrf_token": csrf})
        assert "no feed token #1 of editor@example.com" in other.get(r.headers["location"]).text
    assert client.post("/account/feed-tokens", data={"csrf_token": "wrong"}).status_code == 403
