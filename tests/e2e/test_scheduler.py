"""The scheduler with time under control: jobs follow the sources, missed runs fire once, one
scheduler per database, and the digest keeps its local time across DST changes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import apscheduler.schedulers.base as aps_base
import pytest
import yaml
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_SUBMITTED, JobSubmissionEvent
from sqlalchemy.engine import Engine

from spiders import KINDS
from tests.conftest import run_tracker
from tracker.config import Settings
from tracker.declare.sources import SourceSpec, sync_sources
from tracker.service.crawler import CrawlResult
from tracker.service.jobs import SchedulerBusy, Service
from tracker.service.scheduler import DIGEST_JOB, SOURCE_JOB, digest_trigger, next_runs, spread_offsets
from tracker.store.db import session_scope, utcnow

DUBLIN = ZoneInfo("Europe/Dublin")


class RecordingCrawler:
    """Stands in for the crawl subprocess: remembers each batch it was given."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.ran = threading.Event()

    def run(self, source_ids: list[str], *, timeout: float, abandon: threading.Event) -> CrawlResult:
        self.batches.append(list(source_ids))
        self.ran.set()
        return CrawlResult(exit_code=0, seconds=0.0, output="checked")


class FakeClock:
    """A clock the test moves; APScheduler's own `datetime.now` is routed to it."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock(datetime(2027, 1, 1, tzinfo=UTC))

    class ClockDateTime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return clock.now.astimezone(tz) if tz else clock.now.replace(tzinfo=None)

    monkeypatch.setattr(aps_base, "datetime", ClockDateTime)
    return clock


def sources_yaml(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"sources": entries}, sort_keys=False))
    return path


def src(sid: str, host: str = "a.example", schedule: str | None = "6h", **extra: Any) -> dict[str, Any]:
    return {"id": sid, "name": sid.title(), "url": f"https://{host}/{sid}", "schedule": schedule, **extra}


def settings_for(db_url: str, **kw: Any) -> Settings:
    base: dict[str, Any] = {"database_url": db_url, "schedule_spread": 60, "service_poll_interval": 1,
                            "shutdown_grace": 5}
    return Settings(**(base | kw))


@pytest.fixture
def services() -> Iterator[list[Service]]:
    """Services a test starts; any left running are stopped at the end."""
    started: list[Service] = []
    yield started
    for svc in started:
        svc.stop("test over")


def start(services: list[Service], settings: Settings, **kw: Any) -> Service:
    svc = Service(settings=settings, crawler=kw.pop("crawler", RecordingCrawler()), **kw)
    svc.start(paused=True)
    services.append(svc)
    return svc


def jobs(svc: Service) -> dict[str, Any]:
    assert svc.scheduler is not None
    return {j.id: j for j in svc.scheduler.get_jobs()}


def test_jobs_follow_the_sources_file_and_database(db_url: str, engine: Engine, tmp_path: Path,
                                                   services: list[Service]) -> None:
    path = sources_yaml(tmp_path / "sources.yaml", [src("alpha"), src("beta", schedule="0 6 * * *"),
                                                    src("gamma", schedule=None), src("delta", host="b.example")])
    svc = start(services, settings_for(db_url, sources_file=str(path), default_schedule="12h"))

    have = jobs(svc)
    assert set(have) == {SOURCE_JOB + s for s in ("alpha", "beta", "gamma", "delta")} | {DIGEST_JOB}
    assert "[6h " in have[SOURCE_JOB + "alpha"].name
    assert "[0 6 * * * " in have[SOURCE_JOB + "beta"].name
    assert "[12h " in have[SOURCE_JOB + "gamma"].name  # TRACKER_DEFAULT_SCHEDULE
    # Never-checked sources run soon (within the spread window), not a whole interval later.
    now = utcnow()
    for sid in ("alpha", "beta", "gamma", "delta"):
        assert have[SOURCE_JOB + sid].next_run_time <= now + timedelta(seconds=61)
    # The sources of one host are spread apart.
    offsets = [float(have[SOURCE_JOB + s].name.split("+")[1].split("s")[0]) for s in ("alpha", "beta", "gamma")]
    assert len(set(offsets)) == 3 and max(offsets) - min(offsets) >= 60 / 3 - 0.01
    digest_next = have[SOURCE_JOB + "delta"].next_run_time
    assert digest_next is not None

    # The file changes: a schedule changes, a source goes, one is added, one is disabled.
    before_alpha = have[SOURCE_JOB + "alpha"].next_run_time
    sources_yaml(path, [src("alpha"), src("beta", schedule="30m"), src("delta", host="b.example", enabled=False),
                        src("epsilon", host="c.example", schedule="2h")])
    svc.tick()
    have = jobs(svc)
    assert set(have) == {SOURCE_JOB + "alpha", SOURCE_JOB + "beta", SOURCE_JOB + "epsilon", DIGEST_JOB}
    assert "[30m " in have[SOURCE_JOB + "beta"].name
    assert have[SOURCE_JOB + "beta"].next_run_time <= utcnow() + timedelta(minutes=30)
    # alpha's host lost a source, so its slot moved; its run is still within one interval.
    assert have[SOURCE_JOB + "alpha"].next_run_time <= max(before_alpha, utcnow()) + timedelta(hours=6)

    # A `tracker sources sync` by someone else (a direct DB change) is picked up without a restart.
    with session_scope(engine) as s:
        sync_sources(session=s, specs=[SourceSpec(**src("alpha", schedule="1d")),
                                       SourceSpec(**src("beta", schedule="30m")),
                                       SourceSpec(**src("zeta", host="d.example", schedule="45m"))])
    svc.tick()
    have = jobs(svc)
    assert set(have) == {SOURCE_JOB + "alpha", SOURCE_JOB + "beta", SOURCE_JOB + "zeta", DIGEST_JOB}
    assert "[1d " in have[SOURCE_JOB + "alpha"].name

    # A broken file is reported and the last good state is kept.
    path.write_text("sources:\n  - id: Not A Slug\n")
    svc.tick()
    assert set(jobs(svc)) == set(have)


def test_restart_keeps_schedules_and_a_missed_run_fires_once(db_url: str, tmp_path: Path,
                                                            services: list[Service]) -> None:
    path = sources_yaml(tmp_path / "sources.yaml", [src("alpha", schedule="1h")])
    settings = settings_for(db_url, sources_file=str(path))
    first = start(services, settings)
    assert first.scheduler is not None
    # The service goes down, and stays down for five and a half of alpha's hourly runs.
    missed = utcnow() - timedelta(hours=5, minutes=30)
    first.scheduler.modify_job(SOURCE_JOB + "alpha", next_run_time=missed)
    digest_next = jobs(first)[DIGEST_JOB].next_run_time
    first.stop("restart")

    crawler = RecordingCrawler()
    second = start(services, settings, crawler=crawler)
    submitted: list[JobSubmissionEvent] = []
    assert second.scheduler is not None
    second.scheduler.add_listener(submitted.append, EVENT_JOB_SUBMITTED)
    # The restart re-synced the same file: the stored jobs were kept, not recreated.
    assert jobs(second)[SOURCE_JOB + "alpha"].next_run_time == missed
    assert jobs(second)[DIGEST_JOB].next_run_time == digest_next
    second.scheduler.resume()
    assert crawler.ran.wait(15), "the missed run did not fire on start"
    second.scheduler._process_jobs()  # one more round, to be sure nothing else is due
    assert [e.job_id for e in submitted] == [SOURCE_JOB + "alpha"]
    assert len(submitted[0].scheduled_run_times) == 1  # five missed runs coalesced into one
    assert crawler.batches == [["alpha"]]
    nxt = jobs(second)[SOURCE_JOB + "alpha"].next_run_time
    assert utcnow() < nxt <= utcnow() + timedelta(hours=1)
    second.stop("restart")

    # Another restart right away: nothing is due, nothing runs twice.
    crawler3 = RecordingCrawler()
    third = start(services, settings, crawler=crawler3)
    assert third.scheduler is not None
    submitted3: list[JobSubmissionEvent] = []
    third.scheduler.add_listener(submitted3.append, EVENT_JOB_SUBMITTED)
    assert jobs(third)[SOURCE_JOB + "alpha"].next_run_time == nxt
    third.scheduler.resume()
    third.scheduler._process_jobs()
    assert submitted3 == [] and crawler3.batches == []


def test_a_second_scheduler_on_the_same_database_is_refused(db_url: str, services: list[Service]) -> None:
    settings = settings_for(db_url)
    first = start(services, settings)
    second = Service(settings=settings, crawler=RecordingCrawler())
    with pytest.raises(SchedulerBusy) as err:
        second.start(paused=True)
    message = str(err.value)
    assert "already the scheduler of this database" in message and f"pid {first_pid()}" in message
    assert "--wait" in message

    # The real command says so and exits 2.
    out = run_tracker(db_url, "run", timeout=90)
    assert out.returncode == 2, out.stderr
    assert "already the scheduler of this database" in out.stderr

    # Once the first one stops, another can start.
    first.stop("done")
    services.remove(first)
    second.start(paused=True)
    services.append(second)


def first_pid() -> int:
    import os

    return os.getpid()


def test_wait_takes_over_when_the_first_scheduler_stops(db_url: str, services: list[Service]) -> None:
    settings = settings_for(db_url)
    first = start(services, settings)
    second = Service(settings=settings, crawler=RecordingCrawler())
    waiter = threading.Thread(target=lambda: second.start(paused=True, wait=True))
    waiter.start()
    waiter.join(1.0)
    assert waiter.is_alive()  # still waiting for the lock
    first.stop("handing over")
    services.remove(first)
    waiter.join(15)
    assert not waiter.is_alive() and second.started
    services.append(second)


def test_digest_trigger_keeps_local_time_across_dst() -> None:
    trigger = digest_trigger(Settings(digest_at="07:00", timezone="Europe/Dublin"))
    fires: list[datetime] = []
    prev = None
    now = datetime(2027, 3, 25, 12, tzinfo=UTC)
    for _ in range(7):
        nxt = trigger.get_next_fire_time(prev, now)
        assert nxt is not None
        fires.append(nxt)
        prev = now = nxt
    assert all(f.astimezone(DUBLIN).hour == 7 and f.astimezone(DUBLIN).minute == 0 for f in fires)
    # Irish Standard Time starts on the last Sunday of March (28 March 2027): 07:00 local moves to 06:00 UTC.
    assert [f.astimezone(UTC).strftime("%m-%d %H:%M") for f in fires] == [
        "03-26 07:00", "03-27 07:00", "03-28 06:00", "03-29 06:00", "03-30 06:00", "03-31 06:00", "04-01 06:00"]


def test_digest_job_fires_at_local_time_across_dst(db_url: str, fake_clock: FakeClock,
                                                   services: list[Service]) -> None:
    ran: list[datetime] = []
    fired = threading.Event()

    def digest(*, engine: Engine, settings: Settings, now: datetime) -> str:
        ran.append(now)
        return "1 digest"

    fake_clock.now = datetime(2027, 3, 27, 7, 30, tzinfo=UTC)  # Saturday 07:30 GMT, after today's digest
    svc = Service(settings=settings_for(db_url, timezone="Europe/Dublin", digest_at="07:00"),
                  crawler=RecordingCrawler(), digest_runner=digest, clock=fake_clock)
    svc.start(paused=True)
    services.append(svc)
    assert svc.scheduler is not None
    # "Fired" once the whole job is over (APScheduler would skip a round while it still runs).
    svc.scheduler.add_listener(lambda e: fired.set() if e.job_id == DIGEST_JOB else None, EVENT_JOB_EXECUTED)
    svc.scheduler.resume()

    def step(at: datetime) -> None:
        fired.clear()
        fake_clock.now = at
        svc.scheduler._process_jobs()  # type: ignore[union-attr]

    assert jobs(svc)[DIGEST_JOB].next_run_time == datetime(2027, 3, 28, 6, 0, tzinfo=UTC)  # 07:00 IST
    step(datetime(2027, 3, 28, 5, 59, tzinfo=UTC))
    assert not fired.wait(0.3) and ran == []
    step(datetime(2027, 3, 28, 6, 0, 1, tzinfo=UTC))
    assert fired.wait(10)
    assert ran == [datetime(2027, 3, 28, 6, 0, 1, tzinfo=UTC)]
    assert jobs(svc)[DIGEST_JOB].next_run_time == datetime(2027, 3, 29, 6, 0, tzinfo=UTC)

    # Autumn: the service was down for months; on its next round the digest runs once, then
    # moves back to 07:00 UTC when Irish Standard Time ends (31 October 2027).
    step(datetime(2027, 10, 30, 6, 30, tzinfo=UTC))
    assert fired.wait(10) and len(ran) == 2
    assert jobs(svc)[DIGEST_JOB].next_run_time == datetime(2027, 10, 31, 7, 0, tzinfo=UTC)
    step(datetime(2027, 10, 31, 6, 30, tzinfo=UTC))  # 06:30 GMT: not yet
    assert not fired.wait(0.3) and len(ran) == 2
    step(datetime(2027, 10, 31, 7, 0, 0, tzinfo=UTC))
    assert fired.wait(10) and len(ran) == 3
    with svc_session(svc) as s:
        assert next_runs(session=s)[DIGEST_JOB] == datetime(2027, 11, 1, 7, 0, tzinfo=UTC)


def svc_session(svc: Service) -> Any:
    from sqlmodel import Session

    return Session(svc.db)


def test_spread_offsets_separate_one_hosts_sources() -> None:
    from tracker.store.models import Source

    settings = Settings(schedule_spread=300)
    rows = [Source(id=f"s{i}", name="x", url=f"https://same.example/{i}", schedule="6h") for i in range(5)]
    rows.append(Source(id="other", name="x", url="https://other.example/", schedule="10s"))
    offsets = spread_offsets(rows, settings)
    same = sorted(offsets[f"s{i}"] for i in range(5))
    assert all(b - a == pytest.approx(60, abs=0.01) for a, b in zip(same, same[1:], strict=False))
    assert 0 <= offsets["other"] <= 5  # at most half of a 10 s interval


def test_a_batch_skips_sources_disabled_since_their_job_fired(db_url: str, engine: Engine,
                                                              services: list[Service]) -> None:
    with session_scope(engine) as s:
        sync_sources(session=s, specs=[SourceSpec(**src("alpha")), SourceSpec(**src("beta"))])
    crawler = RecordingCrawler()
    svc = start(services, settings_for(db_url), crawler=crawler)
    with session_scope(engine) as s:
        sync_sources(session=s, specs=[SourceSpec(**src("alpha"))])  # beta removed from the file
    svc.run_batch(["alpha", "beta"])
    svc.run_batch(["beta"])
    assert crawler.batches == [["alpha"]]


def test_a_broken_sources_file_stops_the_start_and_frees_the_lock(db_url: str, engine: Engine, tmp_path: Path,
                                                                   services: list[Service]) -> None:
    from sqlmodel import Session

    from tracker.declare.yamlfile import RegistryError
    from tracker.store.models import SchedulerState

    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  - id: Not A Slug\n    name: x\n    url: ftp://nowhere\n")
    svc = Service(settings=settings_for(db_url, sources_file=str(path)), crawler=RecordingCrawler())
    with pytest.raises(RegistryError) as err:
        svc.start(paused=True)
    assert "Not A Slug" in str(err.value) or "slug" in str(err.value)
    with Session(engine) as s:
        state = s.get(SchedulerState, 1)
        assert state is not None and state.stopped_at is not None and "failed to start" in (state.stop_reason or "")
    sources_yaml(path, [src("alpha")])
    start(services, settings_for(db_url, sources_file=str(path)))  # the lock was given back


def test_status_reports_sources_next_runs_heartbeat_and_impacts(db_url: str, engine: Engine, tmp_path: Path,
                                                                 services: list[Service]) -> None:
    from datetime import date

    from sqlmodel import Session

    from tracker.check.record import record_check
    from tracker.check.state import Fetch
    from tracker.service.status import collect_status
    from tracker.store.models import Change, Impact, Sop, Source, Version

    path = sources_yaml(tmp_path / "sources.yaml", [src("alpha", schedule="1h"), src("beta")])
    svc = start(services, settings_for(db_url, sources_file=str(path)))
    with session_scope(engine) as s:
        beta = s.get(Source, "beta")
        assert beta is not None
        record_check(kinds=KINDS, session=s, source=beta, fetch=Fetch(source_id="beta", url=beta.url, error="HTTP 503"))
        v1 = Version(source_id="alpha", text_hash="a", rules_hash="r")
        v2 = Version(source_id="alpha", text_hash="b", rules_hash="r")
        s.add_all([v1, v2] + [Sop(id=f"SOP-{i}", title=f"SOP {i}", owner="a@example.com") for i in (1, 2, 3)])
        s.flush()
        change = Change(source_id="alpha", from_version_id=v1.id or 0, to_version_id=v2.id or 0)
        s.add(change)
        s.flush()
        soon = utcnow().date() + timedelta(days=3)
        for sop, status, due in (("SOP-1", "open", date(2020, 1, 1)), ("SOP-2", "needs_update", soon),
                                 ("SOP-3", "dismissed", date(2020, 1, 1))):
            s.add(Impact(change_id=change.id or 0, sop_id=sop, source_id="alpha", status=status, due_date=due))
    with Session(engine) as s:
        data = collect_status(session=s, settings=svc.settings, now=utcnow())
    assert data["scheduler"]["alive"] is True
    assert data["impacts"] == {"open": 2, "overdue": 1}  # a dismissed impact is never overdue
    by_id = {x["id"]: x for x in data["sources"]}
    assert by_id["alpha"]["next_run"] is not None and by_id["alpha"]["schedule"] == "1h"
    assert by_id["beta"]["last_result"] == "failed" and by_id["beta"]["last_error"] == "HTTP 503"
    assert by_id["beta"]["error_since"] is not None and by_id["beta"]["consecutive_failures"] == 1
    assert data["digest"]["next_run"] is not None
    svc.stop("done")
    services.remove(svc)
    with Session(engine) as s:
        after = collect_status(session=s, settings=svc.settings, now=utcnow())
    assert after["scheduler"]["alive"] is False and after["scheduler"]["stop_reason"] == "done"


def test_structured_log_formats() -> None:
    import json
    import logging

    from tracker.service.logs import JsonFormatter, KeyValueFormatter

    record = logging.LogRecord("tracker.service", logging.INFO, __file__, 1, "crawl.finished", None, None)
    record.fields = {"sources": ["a", "b"], "result": "ok", "output": 'checked 2 source(s): "fine"'}
    data = json.loads(JsonFormatter().format(record))
    assert data["event"] == "crawl.finished" and data["level"] == "info" and data["sources"] == ["a", "b"]
    line = KeyValueFormatter().format(record)
    assert " level=info event=crawl.finished sources=a,b result=ok " in line
    assert 'output="checked 2 source(s): \\"fine\\""' in line
