"""/search, /api/search and the date-range filters of the changes, impacts and audit pages and API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tests.integration.test_search import current_only_phrase, inserted_phrase
from tests.integration.test_web import login
from tests.support.web_seed import add_users, seed
from tracker.config import Settings
from tracker.store.db import session_scope
from tracker.store.models import AuditEvent, Change
from tracker.web import create_app


@pytest.fixture
def client(db_url: str, engine: Engine) -> Iterator[TestClient]:
    with session_scope(engine) as s:
        seed(s, versions=4)
        add_users(s)
    settings = Settings(database_url=db_url, secret_key="test-secret-key-0123456789")
    with TestClient(create_app(settings), follow_redirects=False) as c:
        login(c, "viewer")
        yield c


def test_search_page_and_api(client: TestClient, engine: Engine) -> None:
    with Session(engine) as s:
        change, phrase = inserted_phrase(s)
        source_id, words = current_only_phrase(s)
    page = client.get("/search", params={"q": f'"{phrase}"'}).text
    assert f'href="/changes/{change.id}"' in page and "<mark>" in page
    page = client.get("/search", params={"q": words, "kind": "source"}).text
    assert f'<a href="/sources/{source_id}">{source_id} (current text)</a>' in page  # the source's own page
    found = client.get("/api/search", params={"q": f'"{phrase}"'}).json()
    assert {"kind": "change", "ref": str(change.id)}.items() <= found[0].items() or any(
        h["ref"] == str(change.id) for h in found)
    assert client.get("/search", params={"q": "x", "kind": "nope"}).status_code == 400
    assert client.get("/search", params={"q": "<script>alert(1)</script>"}).text.count("<script>alert") == 0


def test_date_ranges_narrow_changes_impacts_and_audit(client: TestClient, engine: Engine) -> None:
    with Session(engine) as s:
        changes = list(s.exec(select(Change).order_by(col(Change.detected_at))).all())
        first_event = s.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).first()
    assert len({c.detected_at for c in changes}) > 1 and first_event is not None
    cut = changes[-1].detected_at - timedelta(seconds=1)
    later = client.get("/api/changes", params={"since": cut.isoformat()}).json()
    assert {c["id"] for c in later} == {c.id for c in changes if c.detected_at >= cut}
    earlier = client.get("/api/changes", params={"until": cut.isoformat()}).json()
    assert {c["id"] for c in earlier} == {c.id for c in changes if c.detected_at < cut}
    page = client.get("/changes", params={"since": cut.isoformat()}).text
    assert f'href="/changes/{changes[0].id}"' not in page and f'href="/changes/{changes[-1].id}"' in page
    future = (changes[-1].detected_at + timedelta(days=400)).date().isoformat()
    assert client.get("/api/impacts", params={"since": future}).json() == []
    assert client.get("/api/impacts", params={"team": "support"}).json()
    assert client.get("/api/audit", params={"since": future}).json() == []
    assert client.get("/api/audit", params={"until": future}).json()
    assert "No events match these filters" in client.get("/audit", params={"since": future}).text


def test_filters_that_do_not_apply_say_so(client: TestClient) -> None:
    r = client.get("/changes", params={"sicne": "2026-01-01"})
    assert r.status_code == 400 and "has no filter &#39;sicne&#39;" in r.text and "since" in r.text
    assert client.get("/api/impacts", params={"sop": "X"}).status_code == 400
    assert "not an ISO 8601" in client.get("/audit", params={"since": "yesterday"}).text
    assert client.get("/changes", params={"since": "2026-02-01", "until": "2026-01-01"}).status_code == 400
