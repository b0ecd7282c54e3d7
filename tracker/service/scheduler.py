"""What the service schedules, and when: one crawl job per enabled source and the daily digest.

The jobs live in APScheduler's SQLAlchemyJobStore on the tracker's own database, so their next
run times survive restarts. `reconcile` makes the stored jobs match the sources without touching
a job whose schedule did not change: its stored next run time is kept, so a run missed while the
service was down fires once on start (coalesced), and a restart never adds a run.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import undefined
from sqlmodel import Session

from tracker.config import Settings
from tracker.declare.schedules import parse_schedule
from tracker.store.models import APSCHEDULER_JOBS, Source

log = logging.getLogger("tracker.scheduler")

SOURCE_JOB = "source:"
DIGEST_JOB = "digest"
# A one-off re-run of a digest that found another run sending; the service adds it, reconcile keeps it.
DIGEST_RETRY_JOB = "digest-retry"
# Interval schedules count from a fixed anchor, so a source's run times do not drift with restarts.
ANCHOR = datetime(2024, 1, 1, tzinfo=UTC)
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class ScheduleConfigError(ValueError):
    """A schedule setting (digest time, timezone) that cannot be used."""


class JobHandler(Protocol):
    """What the scheduled job functions call: the running service."""

    def on_source_due(self, source_id: str) -> None: ...

    def on_digest_due(self, attempt: int = 0) -> None: ...


_handler: JobHandler | None = None


def set_handler(handler: JobHandler | None) -> None:
    """Route fired jobs to this handler (the running service), or to nobody."""
    global _handler
    _handler = handler


def source_due(source_id: str) -> None:
    """Job function: a source's scheduled check is due (stored by reference in the job store)."""
    if _handler is None:
        log.warning("source job fired with no service running source=%s", source_id)
        return
    _handler.on_source_due(source_id)


def digest_due() -> None:
    """Job function: the daily digest is due."""
    if _handler is None:
        log.warning("digest job fired with no service running")
        return
    _handler.on_digest_due()


def digest_retry_due(attempt: int) -> None:
    """Job function: a retry of a digest that was skipped because another run held the send lease."""
    if _handler is None:
        log.warning("digest retry fired with no service running attempt=%s", attempt)
        return
    _handler.on_digest_due(attempt=attempt)


def next_digest_after(settings: Settings, now: datetime) -> datetime | None:
    """The first daily digest strictly after `now` (a retry must not run into it)."""
    nxt = digest_trigger(settings).get_next_fire_time(None, now + timedelta(seconds=1))
    return nxt.astimezone(UTC) if nxt else None


def schedule_digest_retry(scheduler: BaseScheduler, *, at: datetime, attempt: int) -> None:
    """Store the one pending digest retry (replacing any earlier one): a date job, gone once it ran."""
    scheduler.add_job(digest_retry_due, trigger=DateTrigger(run_date=at), id=DIGEST_RETRY_JOB,
                      name=f"digest retry {attempt}", args=[attempt], replace_existing=True)


class ShiftedTrigger(BaseTrigger):  # type: ignore[misc]
    """Another trigger's fire times moved later by a fixed number of seconds (spreads one host's sources)."""

    def __init__(self, inner: BaseTrigger, shift_seconds: float):
        self.inner = inner
        self.shift_seconds = float(shift_seconds)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        # Shift in UTC: wall-clock arithmetic on a zoned datetime would be wrong across DST changes.
        shift = timedelta(seconds=self.shift_seconds)
        prev = previous_fire_time.astimezone(UTC) - shift if previous_fire_time else None
        nxt = self.inner.get_next_fire_time(prev, now.astimezone(UTC) - shift)
        return nxt.astimezone(UTC) + shift if nxt else None

    def __str__(self) -> str:
        return f"{self.inner} +{self.shift_seconds:g}s"

    def __repr__(self) -> str:
        return f"<ShiftedTrigger {self.inner!r} +{self.shift_seconds:g}s>"


def timezone_of(settings: Settings) -> ZoneInfo:
    """The configured timezone (TRACKER_TIMEZONE), or a clear error."""
    try:
        return ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleConfigError(
            f"TRACKER_TIMEZONE={settings.timezone!r} is not a known IANA timezone (e.g. Europe/Dublin, UTC)"
        ) from exc


def digest_trigger(settings: Settings) -> CronTrigger:
    """Every day at TRACKER_DIGEST_AT, local time in TRACKER_TIMEZONE (so DST moves it in UTC, not locally)."""
    m = _CLOCK.match(settings.digest_at.strip())
    if not m:
        raise ScheduleConfigError(f"TRACKER_DIGEST_AT={settings.digest_at!r} is not a time of day HH:MM (e.g. 07:00)")
    return CronTrigger(hour=int(m.group(1)), minute=int(m.group(2)), timezone=timezone_of(settings))


def effective_schedule(source: Source, settings: Settings) -> str:
    """The source's own schedule, or TRACKER_DEFAULT_SCHEDULE."""
    return source.schedule or settings.default_schedule


def spread_window(schedule: str, settings: Settings) -> float:
    """Seconds over which runs may be moved: TRACKER_SCHEDULE_SPREAD, at most half an interval."""
    parsed = parse_schedule(schedule)
    if parsed.interval is not None:
        return min(settings.schedule_spread, parsed.interval.total_seconds() / 2)
    return settings.schedule_spread


def spread_offsets(sources: Iterable[Source], settings: Settings) -> dict[str, float]:
    """A fixed offset per source: the sources of one host are spaced evenly over the spread window."""
    by_host: dict[str, list[Source]] = {}
    for src in sources:
        by_host.setdefault(urlparse(src.url).netloc.lower(), []).append(src)
    offsets: dict[str, float] = {}
    for host, group in by_host.items():
        group.sort(key=lambda s: s.id)
        n = len(group)
        # A per-host phase, so the first sources of different hosts do not all fire at :00.
        phase = (zlib.crc32(host.encode()) % 1000) / 1000 / n
        for i, src in enumerate(group):
            window = spread_window(effective_schedule(src, settings), settings)
            offsets[src.id] = round(window * (i / n + phase), 3)
    return offsets


def source_trigger(schedule: str, offset: float, tz: ZoneInfo) -> ShiftedTrigger:
    """The trigger for a schedule text: a cron expression (in the configured timezone) or an interval."""
    parsed = parse_schedule(schedule)
    inner: BaseTrigger
    if parsed.interval is not None:
        inner = IntervalTrigger(seconds=parsed.interval.total_seconds(), start_date=ANCHOR, timezone=UTC)
    else:
        inner = CronTrigger.from_crontab(parsed.cron or schedule, timezone=tz)
    return ShiftedTrigger(inner, offset)


@dataclass(frozen=True)
class JobSpec:
    """A job the scheduler should have; its name records the schedule, so a change is visible."""

    id: str
    func: Any
    trigger: BaseTrigger
    name: str
    args: tuple[str, ...] = ()
    # The first run of a new job, when it must not wait for the trigger (a never-checked source).
    first_run: datetime | None = None


@dataclass
class ReconcileReport:
    """What a reconcile changed in the job store."""

    added: list[str] = field(default_factory=list)
    rescheduled: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.rescheduled or self.removed)

    def summary(self) -> str:
        return f"{len(self.added)} added, {len(self.rescheduled)} rescheduled, {len(self.removed)} removed"


def desired_jobs(*, session: Session, settings: Settings, now: datetime,
                 checked: Iterable[str] = ()) -> list[JobSpec]:
    """The jobs the database calls for: one per enabled source, and the digest.

    `checked` names sources that have been checked before; the others get a first run now
    (plus their offset) instead of waiting a whole interval for their first version.
    """
    from sqlmodel import select

    tz = timezone_of(settings)
    sources = list(session.exec(select(Source).where(Source.enabled == True)).all())  # noqa: E712
    offsets = spread_offsets(sources, settings)
    seen = set(checked)
    specs: list[JobSpec] = []
    for src in sorted(sources, key=lambda s: s.id):
        schedule = effective_schedule(src, settings)
        try:
            trigger = source_trigger(schedule, offsets[src.id], tz)
        except ValueError as exc:
            log.error("bad schedule source=%s schedule=%r error=%s", src.id, schedule, exc)
            continue
        first = None if src.id in seen else now + timedelta(seconds=offsets[src.id])
        specs.append(JobSpec(id=SOURCE_JOB + src.id, func=source_due, args=(src.id,), trigger=trigger,
                             name=f"crawl {src.id} [{schedule} +{offsets[src.id]:g}s {tz.key}]", first_run=first))
    specs.append(JobSpec(id=DIGEST_JOB, func=digest_due, trigger=digest_trigger(settings),
                         name=f"digest [{settings.digest_at} {tz.key}]"))
    return specs


def reconcile(scheduler: BaseScheduler, specs: list[JobSpec]) -> ReconcileReport:
    """Make the stored jobs match the specs; jobs whose schedule is unchanged keep their next run."""
    report = ReconcileReport()
    existing = {job.id: job for job in scheduler.get_jobs()}
    for spec in specs:
        job = existing.pop(spec.id, None)
        if job is None:
            scheduler.add_job(spec.func, trigger=spec.trigger, id=spec.id, name=spec.name, args=list(spec.args),
                              next_run_time=spec.first_run or undefined, replace_existing=True)
            report.added.append(spec.id)
        elif job.name != spec.name:
            scheduler.modify_job(spec.id, name=spec.name)
            scheduler.reschedule_job(spec.id, trigger=spec.trigger)
            report.rescheduled.append(spec.id)
    existing.pop(DIGEST_RETRY_JOB, None)  # the service's own pending retry: not derived from the sources
    for job_id in existing:
        # Jobs of disabled or deleted sources (or of an older layout) go; their history stays in the DB.
        scheduler.remove_job(job_id)
        report.removed.append(job_id)
    return report


def job_store_kwargs() -> dict[str, Any]:
    """Defaults every job gets: a late run fires once, however late, and never overlaps itself."""
    return {"coalesce": True, "misfire_grace_time": None, "max_instances": 1}


def next_runs(*, session: Session) -> dict[str, datetime]:
    """The next scheduled run of every stored job, by job id ('source:ID', 'digest', 'digest-retry')."""
    rows = session.connection().execute(sa.select(APSCHEDULER_JOBS.c.id, APSCHEDULER_JOBS.c.next_run_time))
    return {job_id: datetime.fromtimestamp(ts, UTC) for job_id, ts in rows if ts is not None}


def next_source_runs(*, session: Session) -> dict[str, datetime]:
    """The next scheduled check of each source, by source id (for status pages)."""
    return {k.removeprefix(SOURCE_JOB): v for k, v in next_runs(session=session).items() if k.startswith(SOURCE_JOB)}


def collect_status(*, session: Session, settings: Settings, now: datetime) -> dict[str, Any]:
    """Everything `tracker status` shows: the scheduler's heartbeat, each source's health and next
    run, the digest's next and last run, a pending retry and who holds the send lease, and open and
    overdue impacts."""
    from sqlmodel import col, func, select

    from tracker.service.executor import cluster_status
    from tracker.service.jobs import heartbeat_alive
    from tracker.store.models import CheckState, Impact, JobRun, Lease, SchedulerState
    from tracker.store.models.lease import DIGEST_LEASE

    state = session.get(SchedulerState, 1)
    runs = next_runs(session=session)
    sources = []
    for src in session.exec(select(Source).order_by(Source.id)).all():
        st = session.get(CheckState, src.id)
        sources.append({
            "id": src.id, "name": src.name, "url": src.url, "enabled": src.enabled,
            "schedule": effective_schedule(src, settings),
            "last_checked_at": st.last_checked_at if st else None,
            "last_result": st.last_result if st else None,
            "last_status": st.last_status if st else None,
            "last_error": st.last_error if st else None,
            "error_since": st.error_since if st else None,
            "consecutive_failures": st.consecutive_failures if st else 0,
            "checks": st.checks if st else 0,
            "next_run": runs.get(SOURCE_JOB + src.id) if src.enabled else None,
        })
    open_statuses = ("open", "needs_update", "in_progress")
    open_count = session.exec(select(func.count()).select_from(Impact)
                              .where(col(Impact.status).in_(open_statuses))).one()
    overdue = session.exec(select(func.count()).select_from(Impact).where(
        col(Impact.status).in_(open_statuses), col(Impact.due_date) < now.date())).one()
    last_digest = session.exec(select(JobRun).where(JobRun.kind == "digest")
                               .order_by(col(JobRun.id).desc()).limit(1)).first()
    last_crawl = session.exec(select(JobRun).where(JobRun.kind == "crawl")
                              .order_by(col(JobRun.id).desc()).limit(1)).first()
    return {
        "now": now,
        "scheduler": {
            "alive": heartbeat_alive(state, now),
            "pid": state.pid if state else None, "host": state.host if state else None,
            "started_at": state.started_at if state else None,
            "heartbeat_at": state.heartbeat_at if state else None,
            "stopped_at": state.stopped_at if state else None,
            "stop_reason": state.stop_reason if state else None,
        },
        "digest": {
            "at": settings.digest_at, "timezone": settings.timezone,
            # The stored job's next run; before any `tracker run`, when the settings would schedule it.
            "next_run": runs.get(DIGEST_JOB) or _next_digest(settings, now),
            "last_run": _run_json(last_digest),
            "retry_at": runs.get(DIGEST_RETRY_JOB),
            "lease": _lease_json(session.get(Lease, DIGEST_LEASE), now),
        },
        "last_crawl": _run_json(last_crawl),
        "executor": settings.executor,
        "cluster": cluster_status(session=session, now=now),
        "impacts": {"open": open_count, "overdue": overdue},
        "sources": sources,
    }


def _lease_json(lease: Any, now: datetime) -> dict[str, Any] | None:
    """Who is sending a digest right now; None when nobody holds a live lease (an expired row is free)."""
    if lease is None or lease.expires_at < now:
        return None
    return {"name": lease.name, "host": lease.host, "pid": lease.pid, "since": lease.acquired_at,
            "until": lease.expires_at}


def _run_json(run: Any) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"id": run.id, "started_at": run.started_at, "finished_at": run.finished_at, "result": run.result,
            "sources": run.sources, "detail": {k: v for k, v in run.detail.items() if k != "output"}}


def _next_digest(settings: Settings, now: datetime) -> datetime | None:
    try:
        nxt = digest_trigger(settings).get_next_fire_time(None, now)
    except ScheduleConfigError:
        return None
    return nxt.astimezone(UTC) if nxt else None
