"""The JSON API under /api and `tracker users`: same reads and actions as the pages, same audit events."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

import tracker.accounts
from tests.conftest import tracker_env
from tests.support.web_seed import PASSWORD, USERS, Seeded, seed_with_users
from tracker.config import Settings
from tracker.store.models import AuditEvent, Impact
from tracker.web import create_app


@pytest.fixture
def seeded(engine: Engine) -> Seeded:
    return seed_with_users(engine, versions=3)


@pytest.fixture
def api(db_url: str, seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=db_url, secret_key="k" * 32)), follow_redirects=False) as c:
        yield c


def login(c: TestClient, role: str) -> dict[str, str]:
    """Log in; the headers an API client sends on mutations."""
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)  # type: ignore[union-attr]
    assert c.post("/login", data={"email": USERS[role], "password": PASSWORD, "csrf_token": token}).status_code == 303
    me = c.get("/api/me").json()
    assert me["email"] == USERS[role] and me["role"] == role
    return {"X-CSRF-Token": me["csrf_token"]}


def test_openapi_and_docs_are_behind_login_under_the_csp_without_a_cdn(api: TestClient) -> None:
    r = api.get("/openapi.json")
    assert r.status_code == 401 and "not logged in" in r.json()["detail"]
    r = api.get("/docs")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fdocs"
    for gone in ("/redoc", "/docs/oauth2-redirect"):
        assert api.get(gone).status_code in (303, 404), gone
    login(api, "viewer")
    schema = api.get("/openapi.json").json()
    for path in ("/api/impacts", "/api/impacts/{impact_id}", "/api/changes/{change_id}/mark", "/api/audit/verify",
                 "/api/sources", "/api/sops/{sop_id}"):
        assert path in schema["paths"], path
    assert not any(p == "/docs" or p.startswith(("/login", "/openapi")) for p in schema["paths"])
    r = api.get("/docs")
    assert r.status_code == 200 and r.headers["content-security-policy"].startswith("default-src 'self'")
    page = r.text
    # Every endpoint of the schema is listed, server-rendered: no script at all, nothing from another origin.
    for path, item in schema["paths"].items():
        for method in item:
            assert f"<code>{method.upper()} {path}</code>" in page, (method, path)
    assert "<script" not in page and "cdn" not in page.lower() and "https://" not in page
    assert "X-CSRF-Token" in page and "<code>text</code>" in page  # the note body's field


def test_reads(api: TestClient, seeded: Seeded) -> None:
    assert api.get("/api/changes").status_code == 401
    login(api, "viewer")
    changes = api.get("/api/changes").json()
    assert {c["source_id"] for c in changes} == {"reddit-community-guidelines", "x-privacy-policy"}
    one = api.get(f"/api/changes/{seeded.changes['reddit-community-guidelines'][0]}").json()
    assert one["diff"]["changes"] and "##" in one["diff_text"] and one["impacts"]
    impacts = api.get("/api/impacts").json()
    assert impacts and all(i["status"] == "open" for i in impacts)
    assert api.get("/api/impacts", params={"team": "support"}).json() == [
        i for i in impacts if i["team_id"] == "support"]
    assert api.get("/api/impacts", params={"status": "nope"}).status_code == 400
    first = api.get(f"/api/impacts/{impacts[0]['id']}").json()
    assert first["notes"] == [] and first["allowed_next"] == ["needs_update", "dismissed"]
    assert api.get("/api/impacts/99999").status_code == 404
    sop = api.get("/api/sops/SOP-TS-001").json()
    assert sop["watches"][0]["source"] == "reddit-community-guidelines" and sop["team"]["name"] == "Trust & Safety"
    assert [s["id"] for s in api.get("/api/sops").json()] == ["SOP-CS-014", "SOP-TS-001", "SOP-TS-007"]
    sources = api.get("/api/sources").json()
    assert {s["id"] for s in sources} == {"reddit-community-guidelines", "x-privacy-policy"}
    assert all(s["last_checked_at"] and s["next_due"] and s["healthy"] for s in sources)
    assert api.get("/api/sources/x-privacy-policy").json()["last_result"] == "changed"
    verified = api.get("/api/audit/verify").json()
    assert verified["ok"] and verified["count"] == len(api.get("/api/audit", params={"limit": 1000}).json())
    only = api.get("/api/audit", params={"entity": f"impact:{impacts[0]['id']}"}).json()
    assert [e["action"] for e in only] == ["impact.created"]


def test_mutations_audit_as_the_user(api: TestClient, engine: Engine) -> None:
    headers = login(api, "editor")
    with Session(engine) as s:
        imp = s.exec(select(Impact).order_by(col(Impact.id))).first()
        assert imp is not None
    r = api.post(f"/api/impacts/{imp.id}", json={"status": "needs_update", "assignee": "zoe@example.com",
                                                 "due": "2031-05-01"}, headers=headers)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["assignee"], r.json()["due_date"]) == ("needs_update", "zoe@example.com",
                                                                                "2031-05-01")
    r = api.post(f"/api/impacts/{imp.id}", json={"status": "updated"}, headers=headers)
    assert r.status_code == 409 and "cannot go from needs_update to updated" in r.json()["detail"]
    assert api.post(f"/api/impacts/{imp.id}", json={}, headers=headers).status_code == 409
    assert api.post("/api/impacts/99999", json={"status": "needs_update"}, headers=headers).status_code == 404
    note = api.post(f"/api/impacts/{imp.id}/notes", json={"text": "drafting"}, headers=headers)
    assert note.status_code == 201 and note.json()["author"] == USERS["editor"]
    marked = api.post(f"/api/changes/{imp.change_id}/mark", json={"status": "dismissed", "note": "cosmetic"},
                      headers=headers)
    assert marked.status_code == 200 and all(i["status"] == "dismissed" for i in marked.json())
    assert api.post("/api/changes/99999/mark", json={"status": "dismissed", "note": "x"},
                    headers=headers).status_code == 404
    with Session(engine) as s:
        mine = s.exec(select(AuditEvent).where(AuditEvent.actor == USERS["editor"])
                      .order_by(col(AuditEvent.seq))).all()
    assert [e.action for e in mine][:4] == ["impact.status", "impact.assigned", "impact.due_date", "impact.note"]
    assert "impact.status" in [e.action for e in mine][4:]


def run_tracker(db_url: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real `tracker` command, with something on its standard input."""
    return subprocess.run([sys.executable, "-m", "tracker", *args], env=tracker_env(db_url), input=input,
                          capture_output=True, text=True, timeout=120)


def test_users_cli(db_url: str) -> None:
    r = run_tracker(db_url, "users", "add", "Lead@Example.com", "--role", "admin", "--password-stdin",
                    input="a long password\n")
    assert r.returncode == 0, r.stderr
    assert "added lead@example.com as admin" in r.stdout
    again = run_tracker(db_url, "users", "add", "lead@example.com", "--role", "viewer", "--password-stdin",
                        input="a long password\n")
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = run_tracker(db_url, "users", "add", "x@example.com", "--role", "owner", "--password-stdin", input="pw\n")
    assert bad.returncode == 2 and "--role must be one of viewer, editor, admin" in bad.stderr
    short = run_tracker(db_url, "users", "add", "x@example.com", "--role", "viewer", "--password-stdin",
                        input="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    no_tty = run_tracker(db_url, "users", "add", "x@example.com", "--role", "viewer", input="")
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr
    role = run_tracker(db_url, "users", "role", "lead@example.com", "editor", "--by", "boss@example.com")
    assert role.returncode == 0, role.stderr
    assert run_tracker(db_url, "users", "password", "lead@example.com", "--password-stdin",
                       input="another long one\n").returncode == 0
    assert run_tracker(db_url, "users", "disable", "lead@example.com").returncode == 0
    missing = run_tracker(db_url, "users", "disable", "nobody@example.com")
    assert missing.returncode == 2 and "no user nobody@example.com" in missing.stderr
    assert json.loads(run_tracker(db_url, "users", "list", "--json").stdout)[0]["enabled"] is False
    assert run_tracker(db_url, "users", "enable", "lead@example.com").returncode == 0
    listed = json.loads(run_tracker(db_url, "users", "list", "--json").stdout)
    assert [(u["email"], u["role"]) for u in listed] == [("lead@example.com", "editor")]
    log = json.loads(run_tracker(db_url, "audit", "log", "--json").stdout)
    actions = [(e["action"], e["actor"], e["entity_id"]) for e in log]
    assert ("user.added", "system", "lead@example.com") in actions
    assert ("user.role", "boss@example.com", "lead@example.com") in actions
    assert [a for a, _, who in actions if who == "lead@example.com" and a in (
        "user.password", "user.disabled", "user.enabled")] == ["user.enabled", "user.disabled", "user.password"]
    # The password is stored as an argon2 hash, never as given.
    from tracker.store.db import make_engine

    eng = make_engine(db_url)
    with Session(eng) as s:
        user = tracker.accounts.get_user(session=s, email="lead@example.com")
        assert user is not None and user.password_hash.startswith("$argon2id$")
        assert "a long password" not in user.password_hash
    eng.dispose()


def test_sources_show_the_schedulers_stored_next_run(api: TestClient, engine: Engine) -> None:
    from datetime import UTC, datetime

    from tracker.store.models import APSCHEDULER_JOBS

    when = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(APSCHEDULER_JOBS.insert().values(id="source:x-privacy-policy", next_run_time=when.timestamp(),
                                                      job_state=b"opaque"))
    login(api, "viewer")
    by_id = {s["id"]: s for s in api.get("/api/sources").json()}
    assert by_id["x-privacy-policy"]["next_run"] == "2031-01-02T03:04:05Z"
    assert by_id["reddit-community-guidelines"]["next_run"] is None
    page = api.get("/sources").text
    assert "2031-01-02 03:04 UTC" in page and "scheduled" in page and "due by schedule" in page
