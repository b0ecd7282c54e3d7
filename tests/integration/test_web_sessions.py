"""Sessions the server can end, and a login limit parallel requests and other processes cannot beat.

Run on SQLite and PostgreSQL; the concurrency tests drive a real uvicorn server with real threads.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

import tracker.accounts
from tests.support.uvicorn_server import running
from tests.support.web_seed import PASSWORD, USERS, Seeded, add_users, seed_with_users
from tracker.config import Settings
from tracker.store.db import make_engine, session_scope, utcnow
from tracker.store.models import Impact, ImpactNote, LoginAttempt, WebSession
from tracker.web import create_app
from tracker.web.ratelimit import LoginLimiter


@pytest.fixture
def seeded(engine: Engine) -> Seeded:
    return seed_with_users(engine, versions=2)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, secret_key="session-test-key-0123456789")


def login_form(c: TestClient | httpx.Client) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
    assert found
    return found.group(1)


def login(c: TestClient, role: str, password: str = PASSWORD) -> dict[str, str]:
    """Log in; the headers an API client sends on mutations."""
    r = c.post("/login", data={"email": USERS[role], "password": password, "csrf_token": login_form(c)})
    assert r.status_code == 303, r.text
    return {"X-CSRF-Token": c.get("/api/me").json()["csrf_token"]}


def sessions_of(engine: Engine, email: str) -> int:
    with Session(engine) as s:
        user = tracker.accounts.get_user(session=s, email=email)
        assert user is not None
        return len(s.exec(select(WebSession).where(WebSession.user_id == user.id)).all())


def first_impact(engine: Engine) -> int:
    with Session(engine) as s:
        found = s.exec(select(Impact).order_by(col(Impact.id))).first()
        assert found is not None and found.id is not None
        return found.id


# --- sessions ---------------------------------------------------------------------------------------


def test_logout_ends_every_copy_of_the_cookie(settings: Settings, seeded: Seeded, engine: Engine) -> None:
    app = create_app(settings)
    impact_id = first_impact(engine)
    with TestClient(app, follow_redirects=False) as browser, TestClient(app, follow_redirects=False) as thief:
        headers = login(browser, "editor")
        saved = browser.cookies.get("tracker_session") or ""
        thief.cookies.set("tracker_session", saved)
        assert thief.get("/api/me").status_code == 200  # the copy works while the session lives
        assert sessions_of(engine, USERS["editor"]) == 1
        r = browser.post("/logout", data={"csrf_token": headers["X-CSRF-Token"]})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert sessions_of(engine, USERS["editor"]) == 0
        # The saved cookie is still correctly signed, but names no session any more.
        assert thief.get("/api/me").status_code == 401
        r = thief.post(f"/api/impacts/{impact_id}/notes", json={"text": "after logout"}, headers=headers)
        assert r.status_code == 401 and "not logged in" in r.json()["detail"]
        assert thief.get("/").status_code == 303
    with Session(engine) as s:
        assert not s.exec(select(ImpactNote).where(ImpactNote.text == "after logout")).all()


def test_logout_ends_only_that_session(settings: Settings, seeded: Seeded, engine: Engine) -> None:
    app = create_app(settings)
    with TestClient(app, follow_redirects=False) as laptop, TestClient(app, follow_redirects=False) as phone:
        headers = login(laptop, "viewer")
        login(phone, "viewer")
        assert sessions_of(engine, USERS["viewer"]) == 2
        laptop.post("/logout", data={"csrf_token": headers["X-CSRF-Token"]})
        assert laptop.get("/api/me").status_code == 401
        assert phone.get("/api/me").status_code == 200


def test_password_change_and_disabling_delete_the_sessions(settings: Settings, seeded: Seeded,
                                                           engine: Engine) -> None:
    with TestClient(create_app(settings), follow_redirects=False) as c:
        login(c, "editor")
        with session_scope(engine) as s:
            tracker.accounts.set_password(session=s, email=USERS["editor"], password="another password", by="system")
        assert sessions_of(engine, USERS["editor"]) == 0 and c.get("/api/me").status_code == 401
        login(c, "editor", "another password")
        with session_scope(engine) as s:
            tracker.accounts.set_enabled(session=s, email=USERS["editor"], enabled=False, by="system")
        assert sessions_of(engine, USERS["editor"]) == 0 and c.get("/api/me").status_code == 401
        with session_scope(engine) as s:  # enabling again does not bring the old session back
            tracker.accounts.set_enabled(session=s, email=USERS["editor"], enabled=True, by="system")
        assert c.get("/api/me").status_code == 401


def test_an_expired_session_is_refused_and_purged(settings: Settings, seeded: Seeded, engine: Engine) -> None:
    with TestClient(create_app(settings), follow_redirects=False) as c:
        login(c, "viewer")
        with engine.begin() as conn:
            conn.execute(sa.update(WebSession).values(expires_at=utcnow() - timedelta(minutes=1)))
        assert c.get("/api/me").status_code == 401  # the cookie's signature alone does not keep it alive
        login(c, "admin")  # the next login deletes expired rows
    with Session(engine) as s:
        assert len(s.exec(select(WebSession)).all()) == 1
    assert sessions_of(engine, USERS["viewer"]) == 0


def test_the_session_migration_upgrades_and_downgrades(database_url: str) -> None:
    from alembic import command

    from tracker.store.db import alembic_config, upgrade

    upgrade(database_url, "0008")
    eng = make_engine(database_url)
    try:
        assert not {"web_session", "login_attempt"} & set(sa.inspect(eng).get_table_names())
        upgrade(database_url, "0010")
        assert {"web_session", "login_attempt"} <= set(sa.inspect(eng).get_table_names())
        with session_scope(eng) as s:
            add_users(s)
            user = tracker.accounts.get_user(session=s, email=USERS["viewer"])
            assert user is not None
            tracker.accounts.start_session(session=s, user=user, hours=1)
        command.downgrade(alembic_config(database_url), "0008")
        assert not {"web_session", "login_attempt"} & set(sa.inspect(eng).get_table_names())
        upgrade(database_url, "0010")
        assert {"web_session", "login_attempt"} <= set(sa.inspect(eng).get_table_names())
    finally:
        eng.dispose()


# --- the login limit --------------------------------------------------------------------------------


def parallel_logins(base: str, password: str, n: int) -> list[int]:
    """n clients each load the form, then all post the same email and password at the same moment."""
    clients = [httpx.Client(base_url=base, timeout=60) for _ in range(n)]
    tokens = [login_form(c) for c in clients]
    start = threading.Barrier(n)
    codes: list[int] = [0] * n

    def attempt(i: int) -> None:
        start.wait()
        r = clients[i].post("/login", data={"email": USERS["editor"], "password": password,
                                            "csrf_token": tokens[i]})
        codes[i] = r.status_code

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    return codes


def test_parallel_wrong_passwords_are_counted_before_they_are_checked(settings: Settings,
                                                                      seeded: Seeded) -> None:
    with running(create_app(settings)) as base:
        codes = parallel_logins(base, "wrong password", 30)
        # Exactly the limit was checked (401); every other attempt was refused before its check.
        assert Counter(codes) == {401: settings.web_login_max_failures, 429: 30 - settings.web_login_max_failures}
        with httpx.Client(base_url=base) as c:  # the right password is refused too, until the window ends
            r = c.post("/login", data={"email": USERS["editor"], "password": PASSWORD, "csrf_token": login_form(c)})
            assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_the_limit_is_shared_by_server_processes_of_one_database(settings: Settings, seeded: Seeded) -> None:
    with TestClient(create_app(settings), follow_redirects=False) as one, \
            TestClient(create_app(settings), follow_redirects=False) as two:
        for c in (one, two, one, two, one):
            r = c.post("/login", data={"email": USERS["viewer"], "password": "nope nope", "csrf_token": login_form(c)})
            assert r.status_code == 401
        for c in (two, one):
            r = c.post("/login", data={"email": USERS["viewer"], "password": PASSWORD, "csrf_token": login_form(c)})
            assert r.status_code == 429 and "too many failed logins" in r.text


def test_a_good_login_clears_the_count(settings: Settings, seeded: Seeded, engine: Engine) -> None:
    with TestClient(create_app(settings), follow_redirects=False) as c:
        for _ in range(settings.web_login_max_failures - 1):
            c.post("/login", data={"email": USERS["viewer"], "password": "nope nope", "csrf_token": login_form(c)})
        login(c, "viewer")
    with Session(engine) as s:
        assert s.exec(select(LoginAttempt)).all() == []


def test_the_limiters_table_only_holds_the_current_window(engine: Engine) -> None:
    limiter = LoginLimiter(engine=engine, max_failures=2, window=60)
    then = utcnow()
    for n in range(200):  # a spray of addresses and emails
        limiter.reserve(f"10.0.{n // 250}.{n % 250}", f"user{n}@example.com", now=then)
    assert limiter.reserve("10.9.9.9", "x@example.com" + "x" * 5000, now=then) == 0  # long keys are cut
    assert [limiter.reserve("10.1.1.1", "pm@example.com", now=then) for _ in range(2)] == [0, 0]
    assert limiter.reserve("10.1.1.1", "pm@example.com", now=then + timedelta(seconds=10)) == 50
    with Session(engine) as s:
        assert len(s.exec(select(LoginAttempt)).all()) == 202
    # A minute later every old window has passed: one attempt deletes them all and starts afresh.
    assert limiter.reserve("10.1.1.1", "pm@example.com", now=then + timedelta(seconds=61)) == 0
    with Session(engine) as s:
        assert [(a.address, a.attempts) for a in s.exec(select(LoginAttempt)).all()] == [("10.1.1.1", 1)]
