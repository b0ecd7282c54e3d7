"""Notes and dismissal reasons have a size limit (TRACKER_MAX_NOTE_CHARS) in the API, the forms and the CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from tests.conftest import run_tracker
from tests.support.uvicorn_server import running
from tests.support.web_seed import PASSWORD, USERS, Seeded, seed_with_users
from tracker.config import DEFAULT_MAX_NOTE_CHARS, Settings
from tracker.store.models import AuditEvent, Impact, ImpactNote
from tracker.web import create_app
from tracker.web.bodylimit import body_limit

LIMIT = 50


@pytest.fixture
def seeded(engine: Engine) -> Seeded:
    return seed_with_users(engine, versions=2)


def client(db_url: str, **settings: int) -> TestClient:
    return TestClient(create_app(Settings(database_url=db_url, secret_key="note-limit-key-0123456789", **settings)),
                      follow_redirects=False)


@pytest.fixture
def api(db_url: str, seeded: Seeded) -> Iterator[TestClient]:
    with client(db_url) as c:
        yield c


def login(c: TestClient | httpx.Client) -> dict[str, str]:
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
    assert token
    r = c.post("/login", data={"email": USERS["editor"], "password": PASSWORD, "csrf_token": token.group(1)})
    assert r.status_code == 303
    return {"X-CSRF-Token": c.get("/api/me").json()["csrf_token"]}


def open_impact(engine: Engine) -> Impact:
    with Session(engine) as s:
        found = s.exec(select(Impact).where(Impact.status == "open").order_by(col(Impact.id))).first()
        assert found is not None and found.id is not None
        return found


def note_count(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.exec(select(func.count()).select_from(ImpactNote)).one())


def test_the_default_is_ten_thousand_characters() -> None:
    assert Settings().max_note_chars == DEFAULT_MAX_NOTE_CHARS == 10_000


def test_api_refuses_a_20_mb_note_before_reading_it(api: TestClient, engine: Engine) -> None:
    headers = login(api)
    impact_id = open_impact(engine).id
    r = api.post(f"/api/impacts/{impact_id}/notes", json={"text": "x" * 20_000_000}, headers=headers)
    assert r.status_code == 413
    assert "TRACKER_MAX_NOTE_CHARS=10,000" in r.json()["detail"] and "shorten the note" in r.json()["detail"]
    assert note_count(engine) == 0


def test_api_notes_and_reasons_over_the_limit_get_413(api: TestClient, engine: Engine) -> None:
    headers = login(api)
    imp = open_impact(engine)
    r = api.post(f"/api/impacts/{imp.id}/notes", json={"text": "é" * 10_001}, headers=headers)
    assert r.status_code == 413
    assert r.json()["detail"] == (f"impact {imp.id}: the note is 10,001 characters; notes and dismissal reasons may "
                                  "be at most 10,000 (TRACKER_MAX_NOTE_CHARS): shorten it, or split it into several "
                                  "notes")
    r = api.post(f"/api/impacts/{imp.id}", json={"status": "dismissed", "note": "n" * 10_001}, headers=headers)
    assert r.status_code == 413 and "10,001 characters" in r.json()["detail"]
    r = api.post(f"/api/changes/{imp.change_id}/mark", json={"status": "dismissed", "note": "n" * 10_001},
                 headers=headers)
    assert r.status_code == 413 and f"change {imp.change_id}: the note is 10,001" in r.json()["detail"]
    assert note_count(engine) == 0 and open_impact(engine).id == imp.id
    with Session(engine) as s:
        assert not s.exec(select(AuditEvent).where(AuditEvent.actor == USERS["editor"])).all()
    # Exactly the limit is fine, even in characters that take 12 bytes each in JSON.
    r = api.post(f"/api/impacts/{imp.id}/notes", json={"text": "\U0001f600" * 10_000}, headers=headers)
    assert r.status_code == 201, r.text
    assert len(r.json()["text"]) == 10_000


def test_the_cap_holds_for_a_body_sent_in_chunks(db_url: str, seeded: Seeded, engine: Engine) -> None:
    app = create_app(Settings(database_url=db_url, secret_key="note-limit-key-0123456789"))
    impact_id = open_impact(engine).id
    with running(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        headers = login(c) | {"Content-Type": "application/json"}
        chunks = iter([b'{"text": "'] + [b"x" * 65536] * 40 + [b'"}'])  # 2.6 MB, no Content-Length
        r = c.post(f"/api/impacts/{impact_id}/notes", content=chunks, headers=headers)
        assert r.status_code == 413 and f"over {body_limit(10_000):,} bytes" in r.json()["detail"]
    assert note_count(engine) == 0


def test_forms_show_and_enforce_the_limit(db_url: str, seeded: Seeded, engine: Engine) -> None:
    imp = open_impact(engine)
    with client(db_url, max_note_chars=LIMIT) as c:
        csrf = login(c)["X-CSRF-Token"]
        page = c.get(f"/impacts/{imp.id}").text
        assert f'name="text" rows="3" required maxlength="{LIMIT}"' in page
        assert f'name="reason" required maxlength="{LIMIT}"' in page
        assert f'name="note" maxlength="{LIMIT}"' in c.get(f"/changes/{imp.change_id}").text
        for action, field in (("notes", "text"), ("dismiss", "reason")):
            r = c.post(f"/impacts/{imp.id}/{action}", data={field: "y" * (LIMIT + 1), "csrf_token": csrf})
            assert r.status_code == 303
            shown = c.get(r.headers["location"]).text
            assert f"Not done:</strong> impact {imp.id}: the note is 51 characters" in shown, action
            assert "at most 50 (TRACKER_MAX_NOTE_CHARS)" in shown
        r = c.post(f"/impacts/{imp.id}/notes", data={"text": "y" * LIMIT, "csrf_token": csrf})
        assert "Done:</strong> note added" in c.get(r.headers["location"]).text
    assert note_count(engine) == 1 and open_impact(engine).id == imp.id


def test_cli_refuses_long_notes_and_reasons(db_url: str, seeded: Seeded, engine: Engine) -> None:
    imp = open_impact(engine)
    too_long = "z" * (LIMIT + 1)
    for args in (["impacts", "note", str(imp.id), too_long],
                 ["impacts", "dismiss", str(imp.id), "--reason", too_long],
                 ["impacts", "mark", str(imp.id), "--status", "needs_update", "--note", too_long],
                 ["impacts", "mark-change", str(imp.change_id), "--status", "needs_update", "--note", too_long]):
        done = run_tracker(db_url, *args, "--by", "pm@example.com", TRACKER_MAX_NOTE_CHARS=str(LIMIT))
        assert done.returncode == 2, (args, done.stderr)
        assert "the note is 51 characters" in done.stderr and "TRACKER_MAX_NOTE_CHARS" in done.stderr, args
        assert "Traceback" not in done.stderr
    done = run_tracker(db_url, "impacts", "note", str(imp.id), "z" * LIMIT, "--by", "pm@example.com",
                       TRACKER_MAX_NOTE_CHARS=str(LIMIT))
    assert done.returncode == 0, done.stderr
    assert note_count(engine) == 1
