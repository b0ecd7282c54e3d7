"""A daily digest skipped because another run held the send lease is retried, through the real
service, its real APScheduler job store and real mail to a real SMTP server (aiosmtpd); other
outcomes are not retried; `tracker status` names the lease holder. On SQLite and PostgreSQL.

Jobs are fired the way the scheduler fires them: the test moves a stored job's next run time to
now with the public `modify_job`, which wakes the running scheduler, and waits for APScheduler's
executed event.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tests.conftest import run_tracker
from tests.e2e.test_digest_lease import EVERYONE, leases, plant_lease, settings_for
from tests.e2e.test_digest_send import build_world, env
from tests.e2e.test_scheduler import RecordingCrawler
from tests.unit.test_digest_helpers import SmtpSink, smtp_sink_fixture  # noqa: F401  (smtp_sink)
from tracker.config import Settings
from tracker.service.jobs import Service
from tracker.service.scheduler import DIGEST_JOB, DIGEST_RETRY_JOB
from tracker.store.models import JobRun, Lease

JOB_TIMEOUT = 60.0  # only a safety net so that a broken job cannot hang the suite


class Fired:
    """Runs a stored job now through the running scheduler and waits until it has finished."""

    def __init__(self, svc: Service) -> None:
        assert svc.scheduler is not None
        self.svc = svc
        self.done: dict[str, threading.Event] = {}
        svc.scheduler.add_listener(self._on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def _on_event(self, ev: JobExecutionEvent) -> None:
        self.done.setdefault(ev.job_id, threading.Event()).set()
        assert ev.exception is None, ev.exception

    def __call__(self, job_id: str) -> None:
        assert self.svc.scheduler is not None
        event = self.done.setdefault(job_id, threading.Event())
        event.clear()
        self.svc.scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))
        assert event.wait(JOB_TIMEOUT), f"job {job_id} did not run"


@pytest.fixture
def started() -> Iterator[list[Service]]:
    services: list[Service] = []
    yield services
    for svc in services:
        svc.stop("test over")


def start(services: list[Service], settings: Settings, **kw: Any) -> tuple[Service, Fired]:
    svc = Service(settings=settings, crawler=RecordingCrawler(), **kw)
    svc.start(paused=True)
    services.append(svc)
    fire = Fired(svc)
    assert svc.scheduler is not None
    svc.scheduler.resume()
    return svc, fire


def digest_runs(engine: Engine) -> list[JobRun]:
    with Session(engine) as s:
        return list(s.exec(select(JobRun).where(JobRun.kind == "digest").order_by(col(JobRun.id))).all())


def retry_job(svc: Service) -> Any:
    assert svc.scheduler is not None
    return svc.scheduler.get_job(DIGEST_RETRY_JOB)


def received(sink: SmtpSink) -> list[str]:
    return sorted(r for m in sink.received for r in m.rcpt_tos)


def test_a_digest_skipped_for_a_held_lease_is_retried_until_it_sends(
        db_url: str, engine: Engine, smtp_sink: SmtpSink, started: list[Service]) -> None:
    build_world(engine)
    plant_lease(engine, host="pm-laptop", pid=777, age=timedelta(minutes=1), left=timedelta(minutes=9))
    svc, fire = start(started, settings_for(db_url, smtp_sink))

    fire(DIGEST_JOB)
    (skipped,) = digest_runs(engine)
    assert skipped.result == "skipped" and "pm-laptop, pid 777" in skipped.detail["reason"]
    assert smtp_sink.received == []
    job = retry_job(svc)
    assert job is not None and job.args == (1,)
    retry_at = datetime.fromisoformat(skipped.detail["retry_at"])
    assert job.next_run_time == retry_at
    assert retry_at - skipped.started_at == timedelta(seconds=120)  # TRACKER_DIGEST_RETRY_SECONDS's default
    # The retry is the service's own job: reconciling the jobs with the sources keeps it.
    svc.refresh(force=True)
    assert retry_job(svc) is not None
    status = run_tracker(db_url, "status", **env(smtp_sink))
    assert f"retry {retry_at.astimezone(UTC):%Y-%m-%d %H:%M:%SZ}" in status.stdout, status.stdout

    # Still held at the retry: skipped again, and the next retry is scheduled.
    fire(DIGEST_RETRY_JOB)
    runs = digest_runs(engine)
    assert [(r.result, r.detail.get("attempt")) for r in runs] == [("skipped", None), ("skipped", 1)]
    assert runs[1].detail["retry_attempt"] == 2
    assert retry_job(svc).args == (2,)
    assert smtp_sink.received == []

    # The other run is done: the retry sends everyone's digest, and nothing more is scheduled.
    with engine.begin() as conn:
        conn.execute(sa.delete(Lease.__table__))  # type: ignore[attr-defined]
    fire(DIGEST_RETRY_JOB)
    runs = digest_runs(engine)
    assert [(r.result, r.detail.get("attempt")) for r in runs] == [("skipped", None), ("skipped", 1), ("ok", 2)]
    assert "5 sent, 0 failed" in runs[2].detail["summary"]
    assert "retry_at" not in runs[2].detail
    assert received(smtp_sink) == EVERYONE
    assert retry_job(svc) is None
    assert leases(engine) == []


def test_no_retry_after_the_next_daily_digest(db_url: str, engine: Engine, smtp_sink: SmtpSink,
                                              started: list[Service]) -> None:
    build_world(engine)
    plant_lease(engine, host="pm-laptop", pid=777, age=timedelta(minutes=1), left=timedelta(minutes=9))
    # A retry a day and a half later would come after tomorrow's digest, which sends the same backlog.
    settings = settings_for(db_url, smtp_sink).model_copy(update={"digest_retry_seconds": 36 * 3600.0})
    svc, fire = start(started, settings)
    fire(DIGEST_JOB)
    (skipped,) = digest_runs(engine)
    assert skipped.result == "skipped"
    assert skipped.detail["retry"].startswith("none: the next daily digest at ")
    assert "retry_at" not in skipped.detail
    assert retry_job(svc) is None


def test_no_retry_for_a_digest_that_sent_or_failed_otherwise(db_url: str, engine: Engine, smtp_sink: SmtpSink,
                                                             started: list[Service]) -> None:
    build_world(engine)
    # Sent: nothing to retry.
    svc, fire = start(started, settings_for(db_url, smtp_sink))
    fire(DIGEST_JOB)
    (sent,) = digest_runs(engine)
    assert sent.result == "ok" and "5 sent" in sent.detail["summary"]
    assert received(smtp_sink) == EVERYONE
    assert retry_job(svc) is None
    svc.stop("next case")
    started.clear()

    # The mail server is down: every delivery fails and is recorded; the next digest carries it, no retry.
    down = settings_for(db_url, smtp_sink).model_copy(update={"smtp_port": closed_port(), "digest_send_empty": True})
    svc, fire = start(started, down)
    fire(DIGEST_JOB)
    failed = digest_runs(engine)[-1]
    assert failed.result == "ok" and "5 failed" in failed.detail["summary"], failed.detail
    assert retry_job(svc) is None
    svc.stop("next case")
    started.clear()

    # The digest itself raised: an error, not retried.
    def broken(*, engine: Engine, settings: Settings, now: datetime) -> str:
        raise RuntimeError("the digest broke")

    svc, fire = start(started, settings_for(db_url, smtp_sink), digest_runner=broken)
    fire(DIGEST_JOB)
    errored = digest_runs(engine)[-1]
    assert errored.result == "error" and "the digest broke" in errored.detail["error"]
    assert "retry_at" not in errored.detail and "retry" not in errored.detail
    assert retry_job(svc) is None


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_shows_who_holds_the_digest_lease(db_url: str, engine: Engine, smtp_sink: SmtpSink) -> None:
    plant_lease(engine, host="pm-laptop", pid=777, age=timedelta(minutes=1), left=timedelta(minutes=9))
    (lease,) = leases(engine)
    text = run_tracker(db_url, "status", **env(smtp_sink))
    assert text.returncode == 0, text.stderr
    assert (f"sending now: lease held by pm-laptop, pid 777, since {lease.acquired_at:%Y-%m-%d %H:%M:%SZ}, "
            f"until {lease.expires_at:%Y-%m-%d %H:%M:%SZ}") in text.stdout, text.stdout
    data = json.loads(run_tracker(db_url, "status", "--json", **env(smtp_sink)).stdout)
    held = data["digest"]["lease"]
    assert (held["host"], held["pid"]) == ("pm-laptop", 777)
    assert datetime.fromisoformat(held["since"]) == lease.acquired_at
    assert datetime.fromisoformat(held["until"]) == lease.expires_at

    # Free: nothing shown. A crashed run's expired row is free too.
    with engine.begin() as conn:
        conn.execute(sa.delete(Lease.__table__))  # type: ignore[attr-defined]
    assert_no_lease_shown(db_url, smtp_sink)
    plant_lease(engine, host="crashed-box", pid=31337, age=timedelta(hours=2), left=-timedelta(hours=1))
    assert_no_lease_shown(db_url, smtp_sink)


def assert_no_lease_shown(db_url: str, sink: SmtpSink) -> None:
    text = run_tracker(db_url, "status", **env(sink))
    assert text.returncode == 0 and "digest:" in text.stdout, text.stderr
    assert "sending now" not in text.stdout and "lease" not in text.stdout, text.stdout
    data = json.loads(run_tracker(db_url, "status", "--json", **env(sink)).stdout)
    assert data["digest"]["lease"] is None
