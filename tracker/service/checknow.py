"""Check now: a person asks for a source to be checked at once (the web's button, `tracker sources check`).

A request is a CheckRequest row: queued -> running -> done | failed, with the check's outcome (new,
changed, unchanged, not_modified or failed). When a `tracker run` is alive (a fresh scheduler
heartbeat), the request is queued and the service's next tick puts the source on its crawl queue, so
it goes through the normal batch path and never runs beside a scheduled check of the same source.
Otherwise `run_check_now` runs the crawl subprocess for that one source right here.

At most one request per source is queued or running: a partial unique index says so in the
database, and `request_check` inserts with ON CONFLICT DO NOTHING, so two people pressing the button
at once get the same request back.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tracker.audit.trail import append_event
from tracker.config import Settings
from tracker.impacts.workflow import Conflict, NotFound
from tracker.service.crawler import CrawlResult, SubprocessCrawler
from tracker.service.status import heartbeat_alive
from tracker.store.db import conflict_insert, session_scope, utcnow
from tracker.store.models import CheckRequest, CheckState, SchedulerState, Source
from tracker.store.models.checks import ACTIVE_STATES

OUTCOMES = ("new", "changed", "unchanged", "not_modified", "failed")
# A request still running this long after it started lost its runner (a killed service or CLI).
STALE_AFTER = timedelta(hours=2)


class CheckBusy(Conflict):
    """A check of this source is already running (HTTP 409)."""


def service_running(*, session: Session, now: datetime | None = None) -> bool:
    """Whether a `tracker run` is alive on this database (a fresh scheduler heartbeat)."""
    return heartbeat_alive(session.get(SchedulerState, 1), now or utcnow())


def active_request(*, session: Session, source_id: str) -> CheckRequest | None:
    """The source's queued or running request, if any."""
    return session.exec(select(CheckRequest).where(CheckRequest.source_id == source_id,
                                                   col(CheckRequest.state).in_(ACTIVE_STATES))).first()


def latest_request(*, session: Session, source_id: str) -> CheckRequest | None:
    """The source's newest request (to show its progress and outcome)."""
    return session.exec(select(CheckRequest).where(CheckRequest.source_id == source_id)
                        .order_by(col(CheckRequest.id).desc())).first()


def request_check(*, session: Session, source_id: str, actor: str, now: datetime | None = None,
                  stale_after: timedelta = STALE_AFTER) -> CheckRequest:
    """Queue a check of an enabled source, or return the one already queued or running (never a second)."""
    now = now or utcnow()
    source = session.get(Source, source_id)
    if source is None:
        raise NotFound(f"unknown source id {source_id!r} (see `tracker sources list`)")
    if not source.enabled:
        raise Conflict(f"source {source_id} is disabled: enable it before checking it")
    _expire_stale(session, source_id, now, stale_after)
    if (active := active_request(session=session, source_id=source_id)) is not None:
        return active
    values: dict[str, Any] = {"source_id": source_id, "requested_by": actor, "requested_at": now, "state": "queued"}
    insert = conflict_insert(session, CheckRequest)
    if insert is not None:
        # A concurrent request for the same source wins the index; this one then returns it.
        inserted = session.execute(insert.values(**values).on_conflict_do_nothing(
            index_elements=["source_id"], index_where=col(CheckRequest.state).in_(ACTIVE_STATES))
            .returning(col(CheckRequest.id))).first()
        queued = inserted is not None
    else:
        session.add(CheckRequest(**values))
        session.flush()
        queued = True
    found = active_request(session=session, source_id=source_id)
    assert found is not None, "a request was inserted or found active"
    if queued:
        # Who asked for which check, in the trail like every other thing a person does in the browser.
        append_event(session=session, actor=actor, action="source.check_requested", entity_type="source",
                     entity_id=source_id, after={"request": found.id}, at=now)
    return found


def _expire_stale(session: Session, source_id: str, now: datetime, stale_after: timedelta) -> None:
    session.execute(sa.update(CheckRequest).where(
        col(CheckRequest.source_id) == source_id, col(CheckRequest.state) == "running",
        col(CheckRequest.started_at) < now - stale_after,
    ).values(state="failed", outcome="failed", finished_at=now,
             error=f"abandoned: no outcome {stale_after.total_seconds():.0f}s after it started "
                   "(the process running it stopped)"))


def claim_check_requests(*, session: Session, limit: int, now: datetime | None = None,
                         exclude: Collection[str] = (), source_id: str | None = None) -> list[CheckRequest]:
    """Move up to `limit` queued requests (oldest first; not those of the excluded sources) to running."""
    now = now or utcnow()
    query = select(CheckRequest).where(CheckRequest.state == "queued").order_by(col(CheckRequest.id)).limit(limit)
    if source_id is not None:
        query = query.where(CheckRequest.source_id == source_id)
    claimed: list[CheckRequest] = []
    for req in session.exec(query).all():
        if req.source_id in exclude:
            continue
        moved = session.execute(sa.update(CheckRequest).where(col(CheckRequest.id) == req.id,
                                                              col(CheckRequest.state) == "queued")
                                .values(state="running", started_at=now))
        if getattr(moved, "rowcount", 0) == 1:
            session.refresh(req)
            claimed.append(req)
    return claimed


def finish_check_request(*, session: Session, request_id: int, outcome: str, error: str | None = None,
                         now: datetime | None = None) -> CheckRequest | None:
    """Record a running (or queued) request's outcome: done, or failed when the outcome is `failed`."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    state = "failed" if outcome == "failed" else "done"
    session.execute(sa.update(CheckRequest).where(col(CheckRequest.id) == request_id,
                                                  col(CheckRequest.state).in_(ACTIVE_STATES))
                    .values(state=state, outcome=outcome, error=error, finished_at=now or utcnow()))
    req = session.get(CheckRequest, request_id)
    if req is not None:
        session.refresh(req)
    return req


def settle_check_requests(*, session: Session, now: datetime | None = None, timeout: float | None = None,
                          source_ids: Collection[str] | None = None) -> list[CheckRequest]:
    """Finish the running requests whose source has been checked since they started (outcome from its
    CheckState), whose source was disabled, or (given timeout seconds) that waited longer than that."""
    now = now or utcnow()
    query = select(CheckRequest).where(CheckRequest.state == "running")
    if source_ids is not None:
        query = query.where(col(CheckRequest.source_id).in_(list(source_ids)))
    settled = []
    for req in session.exec(query).all():
        assert req.id is not None
        outcome, error = _outcome(session, req, now, timeout)
        if outcome is not None:
            settled.append(finish_check_request(session=session, request_id=req.id, outcome=outcome,
                                                error=error, now=now))
    return [r for r in settled if r is not None]


def _outcome(session: Session, req: CheckRequest, now: datetime,
             timeout: float | None) -> tuple[str | None, str | None]:
    state = session.get(CheckState, req.source_id)
    if state is not None and state.last_checked_at is not None and req.started_at is not None \
            and state.last_checked_at >= req.started_at and state.last_result in OUTCOMES:
        return state.last_result, state.last_error if state.last_result == "failed" else None
    source = session.get(Source, req.source_id)
    if source is None or not source.enabled:
        return "failed", "the source was disabled before it was checked"
    if timeout is not None and req.started_at is not None and now - req.started_at > timedelta(seconds=timeout):
        return "failed", f"no check was recorded within {timeout:g}s of the request being picked up"
    return None, None


def run_check_now(*, settings: Settings, engine: Engine, source_id: str, actor: str,
                  crawler: Any = None) -> CheckRequest:
    """Check one source here and now, in a crawl subprocess (when no `tracker run` is alive), and record the
    outcome on its request. Refused (CheckBusy) while a check of that source is running."""
    with session_scope(engine) as s:
        req = request_check(session=s, source_id=source_id, actor=actor)
        claimed = claim_check_requests(session=s, limit=1, source_id=source_id) if req.state == "queued" else []
        if not claimed:
            raise CheckBusy(f"a check of {source_id} is already running (requested by {req.requested_by} at "
                            f"{req.requested_at:%Y-%m-%d %H:%M:%SZ}): wait for its outcome")
        request_id = claimed[0].id
        assert request_id is not None
    crawler = crawler or SubprocessCrawler(settings)
    result: CrawlResult = crawler.run([source_id], timeout=settings.crawl_timeout, abandon=threading.Event())
    with session_scope(engine) as s:
        done = settle_check_requests(session=s, source_ids=[source_id])
        if not done:
            finish_check_request(session=s, request_id=request_id, outcome="failed",
                                 error=_crawl_error(result, settings))
        final = s.get(CheckRequest, request_id)
        assert final is not None
        return final


def _crawl_error(result: CrawlResult, settings: Settings) -> str:
    if result.killed == "timeout":
        return (f"the crawl was killed after {settings.crawl_timeout:g}s (TRACKER_CRAWL_TIMEOUT) before it "
                "checked the source")
    return f"the crawl ended (exit code {result.exit_code}) without checking the source: {result.tail or 'no output'}"
