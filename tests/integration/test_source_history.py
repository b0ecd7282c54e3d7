"""A source's history (tracker.check.history): versions with their changes, failures, recoveries and edits,
newest first, a page at a time, recorded by the real record_check on real policy versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from spiders import KINDS
from tests.support.policy_site import page
from tests.support.web_seed import _document
from tracker.audit.trail import append_event
from tracker.check.history import ERROR, FAILING, RECOVERY, VERSION, source_history
from tracker.check.record import record_check
from tracker.check.state import Fetch
from tracker.store.db import session_scope
from tracker.store.models import Change, Snapshot, Source

SLUG = "reddit-community-guidelines"
# Checks after the source was added (its audit event is stamped now).
T0 = datetime.now(UTC) + timedelta(days=1)  # (the module may be imported minutes before a test runs)


def _check(engine: Engine, when: datetime, *, version: int | None = None, error: str | None = None,
           status: int = 200) -> None:
    with session_scope(engine) as s:
        src = s.get(Source, SLUG)
        assert src is not None
        body = page(_document(SLUG), version).encode() if version is not None else b""
        record_check(kinds=KINDS, session=s, source=src, fetch=Fetch(
            source_id=SLUG, url=src.url, status=None if error else status, error=error, body=body,
            headers={"Content-Type": "text/html; charset=utf-8"}, fetched_at=when))


def _source(engine: Engine) -> None:
    with session_scope(engine) as s:
        s.add(Source(id=SLUG, name="Reddit", url="https://policies.example.com/r", select=["article.policy"],
                     remove=[".cookie-banner", "nav"]))
        append_event(session=s, actor="editor@example.com", action="source.added", entity_type="source",
                     entity_id=SLUG, after={"id": SLUG, "name": "Reddit"})


def test_history_merges_versions_changes_failures_recoveries_and_edits(engine: Engine) -> None:
    _source(engine)
    _check(engine, T0, version=0)
    _check(engine, T0 + timedelta(hours=6), error="Connection refused")
    _check(engine, T0 + timedelta(hours=12), error="Connection refused")  # the same streak: kept once
    _check(engine, T0 + timedelta(hours=18), version=0)  # unchanged: the recovery is the only trace
    _check(engine, T0 + timedelta(days=1), version=1)
    _check(engine, T0 + timedelta(days=2), status=500)
    with Session(engine) as s:
        change = s.exec(select(Change)).one()
        history = source_history(session=s, source_id=SLUG)
    kinds = [(e.kind, e.title) for e in history.events]
    assert kinds[0][0] == FAILING and "1 check in a row" in kinds[0][1]
    assert kinds[1] == (ERROR, "check failed (HTTP 500)")
    assert kinds[2] == (VERSION, f"change #{change.id} (version v{change.to_version_id})")
    assert history.events[2].change_id == change.id and history.events[2].sections
    assert kinds[3] == (RECOVERY, "recovered")
    assert kinds[4] == (ERROR, "check failed")
    assert "Connection refused" in history.events[4].detail
    assert kinds[5][0] == VERSION and kinds[5][1].startswith("first version")
    assert kinds[6][0] == "edit" and kinds[6][1].endswith("by editor@example.com")
    assert history.more is False and history.page == 1


def test_recovery_inferred_for_streaks_recorded_before_recoveries_were(engine: Engine) -> None:
    """An error snapshot, then a version: the checks had succeeded by then, though no recovery row says so."""
    _source(engine)
    _check(engine, T0, version=0)
    with session_scope(engine) as s:
        s.add(Snapshot(source_id=SLUG, fetched_at=T0 + timedelta(hours=1), url="u", purpose="error", error="boom"))
    _check(engine, T0 + timedelta(days=1), version=1)
    with Session(engine) as s:
        events = source_history(session=s, source_id=SLUG).events
    assert [e.kind for e in events[:3]] == [VERSION, RECOVERY, ERROR]
    assert "by the next version" in events[1].detail


def test_history_comes_a_page_at_a_time(engine: Engine) -> None:
    _source(engine)
    for n in range(7):
        _check(engine, T0 + timedelta(days=n), version=n % 2)
    with Session(engine) as s:
        first = source_history(session=s, source_id=SLUG, per_page=3)
        second = source_history(session=s, source_id=SLUG, page=2, per_page=3)
        third = source_history(session=s, source_id=SLUG, page=3, per_page=3)
        ids = list(s.exec(select(Change.id).order_by(col(Change.id).desc())).all())
    assert first.more and second.more and not third.more
    shown = [e.change_id for page_ in (first, second, third) for e in page_.events if e.change_id]
    assert shown == ids
    assert [e.kind for e in third.events][-1] == "edit"
    assert all(e.at >= f.at for e, f in zip(first.events + second.events, (first.events + second.events)[1:],
                                            strict=False))


def test_history_tells_take_overs_and_the_checks_people_asked_for(engine: Engine) -> None:
    from tracker.declare.manage import set_managed_by
    from tracker.service.checknow import finish_check_request, request_check

    _source(engine)
    with session_scope(engine) as s:
        set_managed_by(session=s, entity="source", entity_id=SLUG, managed_by="ui", actor="pm@example.com")
    with session_scope(engine) as s:
        req = request_check(session=s, source_id=SLUG, actor="pm@example.com")
        finish_check_request(session=s, request_id=req.id or 0, outcome="failed", error="HTTP 503 from there")
    with Session(engine) as s:
        events = source_history(session=s, source_id=SLUG).events
    titles = [e.title for e in events]
    assert f"check #{req.id} asked for by pm@example.com" in titles
    assert "taken over in the browser by pm@example.com" in titles
    asked = next(e for e in events if e.title.startswith("check #"))
    assert asked.detail == "failed: HTTP 503 from there"
