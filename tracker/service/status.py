"""What `tracker status` shows: the scheduler's heartbeat, each source's health and next run,
the digest's next and last run, a pending retry and who is sending, the open and overdue impacts.

A read-only view over the database and the job store: it runs in any process whether or not a
`tracker run` is alive, which is why it lives apart from the service.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from tracker.check.limits import strip_controls
from tracker.config import Settings
from tracker.service.executor import cluster_status
from tracker.service.scheduler import (
    DIGEST_JOB,
    DIGEST_RETRY_JOB,
    SOURCE_JOB,
    ScheduleConfigError,
    digest_trigger,
    effective_schedule,
    next_runs,
)
from tracker.store.models import CheckState, Delivery, Impact, JobRun, Lease, SchedulerState, Source
from tracker.store.models.lease import DIGEST_LEASE


def heartbeat_alive(state: SchedulerState | None, now: datetime) -> bool:
    """Whether a scheduler is running: not stopped, and a heartbeat within three intervals (min 30 s)."""
    if state is None or state.stopped_at is not None:
        return False
    return now - state.heartbeat_at <= timedelta(seconds=max(3 * state.heartbeat_seconds, 30.0))


def collect_status(*, session: Session, settings: Settings, now: datetime) -> dict[str, Any]:
    """Everything `tracker status` shows: the scheduler's heartbeat, each source's health and next
    run, the digest's next and last run, a pending retry and who holds the send lease, and open and
    overdue impacts."""
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
        "notifications": notification_status(session=session, now=now),
        "sources": sources,
    }


def notification_status(*, session: Session, now: datetime, failing_shown: int = 5) -> dict[str, Any]:
    """Messages sent in the last 24 hours, the newest sent, and the deliveries failing now (masked targets only:
    a Delivery never holds a secret), newest first."""
    day_ago = now - timedelta(hours=24)
    sent = session.exec(select(func.count()).select_from(Delivery).where(
        Delivery.status == "sent", col(Delivery.updated_at) >= day_ago)).one()
    last_sent = session.exec(select(func.max(Delivery.updated_at)).where(Delivery.status == "sent")).one()
    failing_count = session.exec(select(func.count()).select_from(Delivery).where(Delivery.status == "failed")).one()
    failing = session.exec(select(Delivery).where(Delivery.status == "failed")
                           .order_by(col(Delivery.updated_at).desc()).limit(failing_shown)).all()
    return {"sent_24h": sent, "last_sent_at": last_sent, "failing": failing_count,
            "failing_shown": [{"channel": d.channel, "target": d.target, "kind": d.kind, "team": d.team_id,
                               "attempts": d.attempts,
                               "error": strip_controls(d.error)[:300] if d.error else None, "since": d.created_at,
                               "last_try": d.updated_at} for d in failing]}


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
