"""Check now: one request per source at a time, the running service picks requests up on its tick and
checks them through its batch path, and without a service the check runs on the spot."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tests.conftest import PolicySite
from tracker.audit.trail import verify
from tracker.config import Settings
from tracker.declare.sources import SourceSpec, sync_sources
from tracker.impacts.workflow import Conflict
from tracker.service.checknow import (
    CheckBusy,
    claim_check_requests,
    finish_check_request,
    latest_request,
    request_check,
    run_check_now,
    service_running,
)
from tracker.service.jobs import Service
from tracker.store.db import session_scope
from tracker.store.models import AuditEvent, CheckRequest

REDDIT = "reddit-community-guidelines"


def add_sources(engine: Engine, site: PolicySite) -> None:
    with session_scope(engine) as s:
        sync_sources(session=s, specs=[
            SourceSpec(id="reddit", name="Reddit", url=site.url(REDDIT), select=["article.policy"]),
            SourceSpec(id="off", name="Off", url=site.url(REDDIT), enabled=False),
        ])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def test_two_requests_at_once_make_one(engine: Engine, policy_site: PolicySite) -> None:
    add_sources(engine, policy_site)
    for _ in range(5):
        barrier, got = threading.Barrier(2), list[int | None]()

        def press(who: str, barrier: threading.Barrier = barrier, got: list[int | None] = got) -> None:
            with session_scope(engine) as s:
                barrier.wait()
                got.append(request_check(session=s, source_id="reddit", actor=who).id)

        threads = [threading.Thread(target=press, args=(f"{n}@example.com",)) for n in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(got) == 2 and got[0] == got[1]
        with session_scope(engine) as s:
            active = s.exec(select(CheckRequest).where(CheckRequest.state == "queued")).all()
            assert [r.id for r in active] == [got[0]]
            # Claimed, then finished: the next press makes a new request.
            assert [r.id for r in claim_check_requests(session=s, limit=5)] == [got[0]]
            assert claim_check_requests(session=s, limit=5) == []
            assert request_check(session=s, source_id="reddit", actor="c@example.com").id == got[0]
            done = finish_check_request(session=s, request_id=got[0], outcome="unchanged")
            assert done is not None and done.state == "done" and done.finished_at is not None
    with session_scope(engine) as s:
        assert len(s.exec(select(CheckRequest)).all()) == 5
        with pytest.raises(Conflict, match="disabled"):
            request_check(session=s, source_id="off", actor="a@example.com")
    with session_scope(engine) as s:
        # One audit event per request made (not per press), by whoever made it, and the chain intact.
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "source.check_requested")
                        .order_by(col(AuditEvent.seq))).all()
        requests = s.exec(select(CheckRequest).order_by(col(CheckRequest.id))).all()
        assert [(e.entity_id, e.after, e.actor) for e in events] == \
            [("reddit", {"request": r.id}, r.requested_by) for r in requests]
        assert verify(s).ok


def test_without_a_service_the_check_runs_here(db_url: str, engine: Engine, policy_site: PolicySite) -> None:
    add_sources(engine, policy_site)
    settings = Settings(database_url=db_url, download_delay=0, retry_times=0)
    with Session(engine) as s:
        assert not service_running(session=s)
    first = run_check_now(settings=settings, engine=engine, source_id="reddit", actor="ed@example.com")
    assert (first.state, first.outcome, first.error) == ("done", "new", None)
    assert first.started_at is not None and first.finished_at is not None
    again = run_check_now(settings=settings, engine=engine, source_id="reddit", actor="ed@example.com")
    assert again.id != first.id and again.outcome in ("not_modified", "unchanged")
    # Never two at once: a running request refuses another run.
    with session_scope(engine) as s:
        req = request_check(session=s, source_id="reddit", actor="other@example.com")
        claim_check_requests(session=s, limit=1)
    with pytest.raises(CheckBusy, match="already running"):
        run_check_now(settings=settings, engine=engine, source_id="reddit", actor="ed@example.com")
    with Session(engine) as s:
        assert s.get(CheckRequest, req.id).state == "running"  # type: ignore[union-attr]
    # A page that answers 404: the request fails with the check's error.
    policy_site.mode(REDDIT, "404")
    with session_scope(engine) as s:
        finish_check_request(session=s, request_id=req.id, outcome="unchanged")  # type: ignore[arg-type]
    failed = run_check_now(settings=settings, engine=engine, source_id="reddit", actor="ed@example.com")
    assert failed.state == "failed" and failed.outcome == "failed" and failed.error


def test_the_service_runs_a_queued_request_through_its_batch(db_url: str, engine: Engine,
                                                              policy_site: PolicySite) -> None:
    add_sources(engine, policy_site)
    svc = Service(settings=Settings(database_url=db_url, download_delay=0, retry_times=0, service_poll_interval=1))
    svc.start(paused=True)
    try:
        with Session(engine) as s:
            assert service_running(session=s)
        with session_scope(engine) as s:
            req = request_check(session=s, source_id="reddit", actor="ed@example.com")
        svc.tick()
        with Session(engine) as s:
            assert s.get(CheckRequest, req.id).state in ("running", "done")  # type: ignore[union-attr]

        def settled() -> CheckRequest | None:
            svc.tick()
            with Session(engine) as s:
                r = latest_request(session=s, source_id="reddit")
                return r if r is not None and r.state in ("done", "failed") else None

        done = wait_for("the request's outcome", settled)
        assert (done.id, done.state, done.outcome) == (req.id, "done", "new")
    finally:
        svc.stop("test over")
