"""Check now through the API of a running `tracker serve`: without a service the server checks the source
itself and the request reports queued/running -> done with the outcome; a second press while one is active
gets that one; with a live service the request is left queued for it; a disabled source is refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tests.conftest import PolicySite
from tests.e2e.test_browser_e2e import Server
from tests.support.web_login import csrf_headers
from tests.support.web_seed import add_users
from tracker.declare.sources import SourceSpec, sync_sources
from tracker.store.db import session_scope, utcnow
from tracker.store.models import CheckRequest, SchedulerState, Version

pytestmark = pytest.mark.slow
SLUG = "reddit-community-guidelines"


@pytest.fixture
def server(db_url: str, engine: Engine, policy_site: PolicySite) -> Iterator[Server]:
    with session_scope(engine) as s:
        add_users(s)
        sync_sources(session=s, specs=[
            SourceSpec(id="doc", name="Doc", url=policy_site.url(SLUG), select=["article.policy"]),
            SourceSpec(id="other", name="Other", url=policy_site.url("x-privacy-policy"), select=["article.policy"]),
            SourceSpec(id="off", name="Off", url=policy_site.url(SLUG), enabled=False)])
    srv = Server(db_url)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base, follow_redirects=False, timeout=30) as c:
        deadline = time.monotonic() + 30
        while True:  # the port is bound before the app starts listening on it
            try:
                c.get("/login")
                break
            except httpx.ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield c


def _follow(api: httpx.Client, status_url: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(status_url).json()
        if body["state"] in ("done", "failed"):
            return body
        time.sleep(0.3)
    pytest.fail(f"the check at {status_url} did not finish in {timeout:.0f}s")


def test_without_a_service_the_server_checks_at_once_and_once(api: httpx.Client, engine: Engine,
                                                              policy_site: PolicySite) -> None:
    h = csrf_headers(api, "editor")
    first = api.post("/api/sources/doc/check", headers=h)
    assert first.status_code == 202, first.text
    req = first.json()
    assert req["mode"] == "here" and req["state"] in ("queued", "running")
    assert req["requested_by"] == "editor@example.com"
    again = api.post("/api/sources/doc/check", headers=h).json()
    assert again["id"] == req["id"]  # never two checks of one source at once
    done = _follow(api, req["status_url"])
    assert (done["state"], done["outcome"], done["error"]) == ("done", "new", None)
    assert api.get("/api/sources/doc/checks/latest").json()["id"] == req["id"]
    with Session(engine) as s:
        assert len(s.exec(select(Version).where(Version.source_id == "doc")).all()) == 1
    policy_site.mode(SLUG, "500")
    failed = _follow(api, api.post("/api/sources/doc/check", headers=h).json()["status_url"])
    assert (failed["state"], failed["outcome"]) == ("failed", "failed") and "HTTP 500" in failed["error"]
    page = api.get("/sources/doc").text
    assert f"Check #{failed['id']}" in page and "HTTP 500" in page
    assert api.post("/api/sources/off/check", headers=h).status_code == 409
    assert api.post("/api/sources/nope/check", headers=h).status_code == 404
    assert api.get(f"/api/sources/other/checks/{req['id']}").status_code == 404


def test_with_a_live_service_the_request_waits_for_it(api: httpx.Client, engine: Engine) -> None:
    with session_scope(engine) as s:
        s.add(SchedulerState(id=1, instance="test", host="here", pid=1, heartbeat_at=utcnow(),
                             heartbeat_seconds=3600))
    h = csrf_headers(api, "editor")
    r = api.post("/api/sources/other/check", headers=h)
    assert r.status_code == 202 and r.json()["mode"] == "service" and r.json()["state"] == "queued"
    time.sleep(2)
    with Session(engine) as s:
        reqs = s.exec(select(CheckRequest).order_by(col(CheckRequest.id))).all()
    assert [(q.source_id, q.state) for q in reqs] == [("other", "queued")]  # the service's to pick up
    # The form's button says who runs it.
    r = api.post("/sources/other/check", data={"csrf_token": h["X-CSRF-Token"]})
    assert r.status_code == 303
    assert "the running service runs it" in api.get("/sources/other").text
