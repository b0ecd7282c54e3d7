"""`tracker run`: the long-running service around APScheduler.

Lifecycle: take the database's scheduler lock, sync the sources and SOP files, make the stored jobs match the
sources, then loop — heartbeat, re-sync files that changed, pick up source rows changed by `tracker sources sync` —
until SIGTERM/SIGINT. Fired source jobs only queue their source; one crawl worker runs the queue in batches, each
batch in its own `tracker crawl` subprocess (Scrapy's reactor starts once per process, and a hung or crashed crawl
can then be killed without touching the scheduler). Each source's version and change commit in one transaction
inside that subprocess, so killing it never leaves half a check behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tracker.check.record import record_check
from tracker.check.state import Fetch
from tracker.config import Settings
from tracker.service import scheduler as sched
from tracker.service.checknow import claim_check_requests, settle_check_requests
from tracker.service.crawler import CRAWL_INTERRUPTED, CrawlResult, SubprocessCrawler
from tracker.service.executor import Executor, make_executor
from tracker.service.files import FileWatch, apply_file
from tracker.service.indexing import index_for_search
from tracker.service.logs import event
from tracker.store.db import make_engine, session_scope, utcnow
from tracker.store.locks import LockHeld, SchedulerLock, scheduler_lock
from tracker.store.models import CheckState, JobRun, LeaseHeld, SchedulerState, Source


class SchedulerBusy(Exception):
    """Another `tracker run` is the active scheduler of this database."""


DigestRunner = Callable[..., str]


def run_digest_job(*, engine: Engine, settings: Settings, now: datetime) -> str:
    """The digest job: send today's digest (tracker.notify.digest), returning its summary."""
    from tracker.notify.digest import run_digest  # imported late: the digest is optional for the service

    summary = str(run_digest(engine=engine, settings=settings, send=True, now=now).summary())
    from tracker.notify.alerts import send_digest_summaries  # team channels get their short summary too

    try:
        return f"{summary}; {send_digest_summaries(engine=engine, settings=settings, now=now).summary()}"
    except Exception as exc:  # the mail went out: a channel problem must not mark the digest failed
        return f"{summary}; team channels not sent: {type(exc).__name__} (see `tracker notify log`)"


# -- the service -------------------------------------------------------------------------------

@dataclass
class Service:
    """The scheduler service of one database. `start`, then `serve_forever` (or `tick`), then `stop`."""

    settings: Settings
    engine: Engine | None = None
    crawler: Any = None
    digest_runner: DigestRunner | None = None
    clock: Callable[[], datetime] = utcnow
    batch_window: float = 0.5
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        self._own_engine = self.engine is None
        self.db: Engine = self.engine or make_engine(self.settings.database_url)
        self.engine = self.db
        self.crawler = self.crawler or SubprocessCrawler(self.settings)
        self.digest_runner = self.digest_runner or run_digest_job
        self.lock: SchedulerLock = scheduler_lock(self.db)
        # TRACKER_EXECUTOR: crawl due batches here (local) or send them to Celery workers.
        self.executor: Executor = make_executor(self.settings, engine=self.db, run_batch=self.run_batch,
                                                clock=self.clock)
        self.scheduler: BackgroundScheduler | None = None
        self.files = [FileWatch(Path(p), kind) for p, kind in
                      ((self.settings.sources_file, "sources"), (self.settings.sops_file, "sops")) if p]
        self._queue: queue.Queue[str] = queue.Queue()
        self._pending: set[str] = set()  # queued or in flight: never queued twice
        self._pending_lock = threading.Lock()
        self._stop_requested = threading.Event()
        self._stopping = threading.Event()
        self._abandon = threading.Event()
        self._worker: threading.Thread | None = None
        self._db_fingerprint: str | None = None
        self._abandoned: list[str] = []
        self.exit_code = 0
        self.started = False

    # -- start ---------------------------------------------------------------------------
    def start(self, *, wait: bool = False, paused: bool = False) -> None:
        """Become the database's scheduler (or raise SchedulerBusy), sync, schedule, start the worker."""
        self._acquire(wait=wait)
        try:
            self._write_state(started=True)
            for watch in self.files:
                self._sync_file(watch, initial=True)
            self.scheduler = BackgroundScheduler(
                jobstores={"default": SQLAlchemyJobStore(engine=self.db)},
                executors={"default": ThreadPoolExecutor(4)},
                job_defaults=sched.job_store_kwargs(), timezone=sched.timezone_of(self.settings))
            sched.set_handler(self)
            self.scheduler.start(paused=True)
            self.refresh(force=True)
            self._worker = threading.Thread(target=self._work, name="crawl-worker", daemon=True)
            self._worker.start()
            if not paused:
                self.scheduler.resume()
        except BaseException as exc:
            if self.scheduler is not None and self.scheduler.running:
                self.scheduler.remove_jobstore("default", shutdown=False)
                self.scheduler.shutdown(wait=False)
            self._stopping.set()
            try:
                self._write_state(stopped=f"failed to start: {exc}")
            except Exception:
                pass  # the database itself may be what failed
            self.lock.release()
            sched.set_handler(None)
            raise
        self.started = True
        event("service.started", instance=self.instance, pid=os.getpid(), lock=self.lock.description,
              jobs=len(self.scheduler.get_jobs()), timezone=self.settings.timezone,
              digest_at=self.settings.digest_at)

    def _acquire(self, *, wait: bool) -> None:
        announced = False
        while True:
            try:
                self.lock.acquire()
                return
            except LockHeld as exc:
                message = self._busy_message(exc)
                if not wait:
                    raise SchedulerBusy(message) from exc
                if not announced:
                    event("service.waiting_for_lock", message=message)
                    announced = True
                if self._stop_requested.wait(2.0):
                    raise SchedulerBusy("stopped while waiting for the scheduler lock") from exc

    def _busy_message(self, exc: Exception) -> str:
        holder = ""
        try:
            with Session(self.db) as s:
                st = s.get(SchedulerState, 1)
            if st is not None and st.stopped_at is None:
                age = (self.clock() - st.heartbeat_at).total_seconds()
                holder = (f" (pid {st.pid} on {st.host}, running since {st.started_at:%Y-%m-%d %H:%M:%SZ}, "
                          f"last heartbeat {age:.0f}s ago)")
        except Exception:
            pass
        return (f"another `tracker run` is already the scheduler of this database{holder}: {exc}. "
                "Stop it first, or start this one with --wait to take over when it stops.")

    # -- the loop --------------------------------------------------------------------------
    def serve_forever(self) -> int:
        """Tick every TRACKER_SERVICE_POLL_INTERVAL seconds until a stop is requested; then stop."""
        while not self._stop_requested.wait(self.settings.service_poll_interval):
            try:
                self.tick()
            except Exception as exc:  # the service outlives a bad poll
                event("service.tick_failed", logging.ERROR, error=repr(exc))
        self.stop(self._stop_reason)
        return self.exit_code

    _stop_reason = "requested"

    def request_stop(self, reason: str = "requested") -> None:
        """Ask the loop to stop (signal handlers call this); a second request abandons the in-flight crawl."""
        if self._stop_requested.is_set():
            event("service.abandon_requested", reason=reason)
            self._abandon.set()
            return
        self._stop_reason = reason
        event("service.stop_requested", reason=reason)
        self._stop_requested.set()

    def tick(self) -> None:
        """One round: heartbeat, lock check, file re-sync, pick up source changes from the database."""
        if not self.lock.healthy():
            event("service.lock_lost", logging.ERROR, lock=self.lock.description)
            self.exit_code = 1
            self.request_stop("lock lost")
            return
        self._write_state()
        for watch in self.files:
            self._sync_file(watch)
        self.refresh()
        self._pick_up_check_requests()
        self.executor.tick()

    def _pick_up_check_requests(self) -> None:
        """Queued "check now" requests join the crawl queue, unless their source is queued or being checked
        already (they wait for the next tick: a check that started before the request is not its answer)."""
        with session_scope(self.db) as s:
            settle_check_requests(session=s, timeout=2 * self.settings.crawl_timeout + 60)
        if self._stopping.is_set():
            return
        with self._pending_lock:
            with session_scope(self.db) as s:
                claimed = [r.source_id for r in claim_check_requests(session=s, limit=100, exclude=self._pending)]
            self._pending.update(claimed)
        for sid in claimed:
            self._queue.put(sid)
        if claimed:
            event("check_now.queued", sources=claimed)

    def refresh(self, *, force: bool = False) -> sched.ReconcileReport | None:
        """Reconcile the jobs with the sources when the source rows changed (or when forced)."""
        assert self.scheduler is not None
        with Session(self.db) as s:
            rows = sorted((r.id, r.enabled, r.updated_at, r.schedule, r.url) for r in s.exec(select(Source)).all())
            fingerprint = hashlib.sha256(repr(rows).encode()).hexdigest()
            if not force and fingerprint == self._db_fingerprint:
                return None
            checked = s.exec(select(CheckState.source_id).where(col(CheckState.last_checked_at).is_not(None))).all()
            specs = sched.desired_jobs(session=s, settings=self.settings, now=self.clock(), checked=checked)
        report = sched.reconcile(self.scheduler, specs)
        self._db_fingerprint = fingerprint
        if report.changed or force:
            event("schedule.reconciled", added=report.added, rescheduled=report.rescheduled,
                  removed=report.removed, jobs=len(specs))
        return report

    def _sync_file(self, watch: FileWatch, *, initial: bool = False) -> None:
        data = watch.read_if_changed()
        if data is None:
            if initial and watch.failed_digest == "missing":
                raise FileNotFoundError(f"the {watch.kind} file {watch.path} cannot be read "
                                        f"(TRACKER_{watch.kind.upper()}_FILE)")
            return
        digest = hashlib.sha256(data).hexdigest()
        try:
            summary = apply_file(watch, engine=self.db)
        except Exception as exc:
            watch.failed_digest = digest
            event("sync.failed", logging.ERROR, file=str(watch.path), kind=watch.kind, error=str(exc),
                  action="kept the last good state; fix the file and it is re-read")
            if initial:
                raise
            return
        watch.digest, watch.failed_digest = digest, None
        event("sync.done", file=str(watch.path), kind=watch.kind, summary=summary)

    def _write_state(self, *, started: bool = False, stopped: str | None = None) -> None:
        now = self.clock()
        with session_scope(self.db) as s:
            st = s.get(SchedulerState, 1)
            if st is None:
                st = SchedulerState(id=1, instance=self.instance, host=socket.gethostname(), pid=os.getpid())
                s.add(st)
            if started:
                st.instance, st.host, st.pid = self.instance, socket.gethostname(), os.getpid()
                st.started_at, st.stopped_at, st.stop_reason = now, None, None
            if st.instance != self.instance:
                return  # not ours (cannot happen while we hold the lock)
            st.heartbeat_at = now
            st.heartbeat_seconds = self.settings.service_poll_interval
            if stopped is not None:
                st.stopped_at, st.stop_reason = now, stopped

    # -- jobs ------------------------------------------------------------------------------
    def on_source_due(self, source_id: str) -> None:
        """A source's check is due: queue it, unless it is already queued or being checked."""
        if self._stopping.is_set():
            self._abandoned.append(source_id)  # due again at the next start
            return
        with self._pending_lock:
            if source_id in self._pending:
                event("crawl.skipped", source=source_id, reason="previous check still queued or running")
                return
            self._pending.add(source_id)
        self._queue.put(source_id)

    def on_digest_due(self, attempt: int = 0) -> None:
        """The daily digest (attempt 0) or a retry of it is due: run it here (no reactor involved) and
        record the run; when another run holds the send lease, schedule a retry."""
        started = self.clock()
        run = self._job_run_start("digest", [], at=started)
        retry: dict[str, Any] = {}
        try:
            assert self.digest_runner is not None
            summary = self.digest_runner(engine=self.db, settings=self.settings, now=started)
            result, level = "ok", logging.INFO
            detail: dict[str, Any] = {"summary": summary}
        except ImportError as exc:
            result, detail, level = "skipped", {"error": f"the digest is not available: {exc}"}, logging.ERROR
        except LeaseHeld as exc:
            # Someone's `tracker digest --send` is sending right now. It sends only what the
            # recipients it was asked for have not had; everyone else would wait a whole day, so
            # try again shortly (only this outcome: an error is not cured by waiting a few minutes).
            result, detail, level = "skipped", {"reason": str(exc)}, logging.WARNING
            retry = self._schedule_digest_retry(started, attempt + 1)
        except Exception as exc:
            result, detail, level = "error", {"error": repr(exc)}, logging.ERROR
        if attempt:
            detail["attempt"] = attempt
        detail.update(retry)
        self._job_run_finish(run, result, detail)
        event("digest.finished", level, result=result, job_run=run, **detail)

    def _schedule_digest_retry(self, now: datetime, attempt: int) -> dict[str, Any]:
        """Store a retry TRACKER_DIGEST_RETRY_SECONDS from now, unless it would fall at or after the next
        daily digest (which sends the same backlog); returns what to record on the skipped run."""
        at = now + timedelta(seconds=self.settings.digest_retry_seconds)
        next_daily = sched.next_digest_after(self.settings, now)
        if self.scheduler is None or not self.started or self._stopping.is_set():
            event("digest.retry_not_scheduled", logging.ERROR, attempt=attempt, reason="the service is not running")
            return {"retry": "none: the service is not running"}
        if next_daily is not None and at >= next_daily:
            event("digest.retry_not_scheduled", logging.ERROR, attempt=attempt, next_daily=next_daily,
                  reason="the retry would fall after the next daily digest, which sends what this one would have")
            return {"retry": f"none: the next daily digest at {next_daily.isoformat()} sends it"}
        try:
            sched.schedule_digest_retry(self.scheduler, at=at, attempt=attempt)
        except Exception as exc:  # e.g. the job store detached by a stop under way
            event("digest.retry_not_scheduled", logging.ERROR, attempt=attempt, reason=repr(exc))
            return {"retry": f"none: {exc!r}"}
        event("digest.retry_scheduled", logging.WARNING, attempt=attempt, retry_at=at,
              in_seconds=self.settings.digest_retry_seconds)
        return {"retry_at": at.isoformat(), "retry_attempt": attempt}

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + self.batch_window
            while (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(self._queue.get(timeout=left))
                except queue.Empty:
                    break
            batch = list(dict.fromkeys(batch))
            try:
                self.executor.submit(batch)
            except Exception as exc:
                event("crawl.batch_failed", logging.ERROR, sources=batch, error=repr(exc))
            finally:
                with self._pending_lock:
                    self._pending.difference_update(batch)

    def run_batch(self, source_ids: list[str]) -> CrawlResult:
        """Check these sources in one crawl subprocess; record a kill or crash on the sources it left unchecked."""
        with Session(self.db) as s:
            enabled = set(s.exec(select(Source.id).where(col(Source.id).in_(source_ids), Source.enabled == True)).all())  # noqa: E712
        if dropped := [sid for sid in source_ids if sid not in enabled]:
            # Disabled or removed since their job fired: `tracker crawl` would refuse the whole batch.
            event("crawl.dropped", sources=dropped, reason="no longer an enabled source")
            source_ids = [sid for sid in source_ids if sid in enabled]
            if not source_ids:
                return CrawlResult(exit_code=None, seconds=0.0, output="nothing to check")
        started = self.clock()
        run = self._job_run_start("crawl", source_ids)
        event("crawl.started", sources=source_ids, job_run=run)
        result: CrawlResult = self.crawler.run(source_ids, timeout=self.settings.crawl_timeout, abandon=self._abandon)
        detail: dict[str, Any] = {"exit_code": result.exit_code, "seconds": round(result.seconds, 2),
                                  "output": result.tail}
        unchecked = self._unchecked(source_ids, since=started)
        if result.killed == "shutdown":
            outcome = "abandoned"
            self._abandoned.extend(unchecked)
        elif result.killed == "timeout":
            outcome = "killed"
            self._record_errors(unchecked, f"crawl killed after {self.settings.crawl_timeout:g}s "
                                           "(TRACKER_CRAWL_TIMEOUT) before this source was checked: "
                                           "the site did not answer in time")
        elif result.exit_code in (0, 3):
            outcome = "ok" if result.exit_code == 0 else "failed"
        elif result.exit_code == 2:
            outcome = "error"  # a usage/configuration error: nothing was checked, nothing to blame a source for
        elif result.exit_code == CRAWL_INTERRUPTED:
            outcome = "interrupted"  # someone signalled the crawl: a stop, not the sources' failure
        else:
            outcome = "crashed"
            self._record_errors(unchecked, f"crawl process crashed (exit code {result.exit_code}) before this "
                                           f"source was checked: {result.tail or 'no output'}")
        detail["unchecked"] = unchecked
        if outcome in ("killed", "crashed") and unchecked:
            # The crawl sends alerts when it ends; one killed or crashed never did, so its failures go out now.
            self._send_alerts()
        self._job_run_finish(run, outcome, detail)
        level = logging.INFO if outcome in ("ok", "failed", "abandoned") else logging.ERROR
        event("crawl.finished", level, sources=source_ids, result=outcome, job_run=run, **detail)
        with session_scope(self.db) as s:  # "check now" requests of these sources get their outcome at once
            settle_check_requests(session=s, source_ids=source_ids)
        index_for_search(self.db)
        return result

    def _send_alerts(self) -> None:
        """Failure alerts (and any others due) to team channels; a notification problem never stops the service."""
        from tracker.notify.alerts import send_alerts  # imported late: notifications are optional for the service

        try:
            report = send_alerts(engine=self.db, settings=self.settings)
        except Exception as exc:
            event("notify.failed", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            return
        if report.sent or report.failed:
            event("notify.sent", sent=len(report.sent), failed=len(report.failed))

    def _unchecked(self, source_ids: list[str], *, since: datetime) -> list[str]:
        with Session(self.db) as s:
            done = set(s.exec(select(CheckState.source_id).where(
                col(CheckState.source_id).in_(source_ids), col(CheckState.last_checked_at) >= since)).all())
        return [sid for sid in source_ids if sid not in done]

    def _record_errors(self, source_ids: list[str], error: str) -> None:
        for sid in source_ids:
            with session_scope(self.db) as s:
                source = s.get(Source, sid)
                if source is not None:
                    record_check(session=s, source=source, fetch=Fetch(source_id=sid, url=source.url, error=error,
                                                                        fetched_at=self.clock()))

    def _job_run_start(self, kind: str, sources: list[str], at: datetime | None = None) -> int:
        with session_scope(self.db) as s:
            run = JobRun(kind=kind, sources=sources, started_at=at or self.clock())
            s.add(run)
            s.flush()
            assert run.id is not None
            return run.id

    def _job_run_finish(self, run_id: int, result: str, detail: dict[str, Any]) -> None:
        with session_scope(self.db) as s:
            run = s.get(JobRun, run_id)
            if run is not None:
                run.finished_at, run.result, run.detail = self.clock(), result, detail

    # -- stop ------------------------------------------------------------------------------
    def stop(self, reason: str = "requested") -> None:
        """Stop scheduling, let the in-flight crawl finish within TRACKER_SHUTDOWN_GRACE (else kill it),
        make unfinished checks due at the next start, and give the lock back."""
        if not self.started:
            return
        self.started = False
        assert self.scheduler is not None
        self.scheduler.pause()
        with self.scheduler._jobstores_lock:  # a job round already under way ends before we go on
            pass
        self._stopping.set()
        if self._worker is not None:
            self._worker.join(self.settings.shutdown_grace)
            if self._worker.is_alive():
                event("service.abandoning_crawl", grace=self.settings.shutdown_grace)
                self._abandon.set()
                self._worker.join()
        leftover = list(self._abandoned)
        while True:
            try:
                leftover.append(self._queue.get_nowait())
            except queue.Empty:
                break
        now = self.clock()
        for sid in dict.fromkeys(leftover):
            # Due again at once: the next start runs what this one could not finish.
            if self.scheduler.get_job(sched.SOURCE_JOB + sid) is not None:
                self.scheduler.modify_job(sched.SOURCE_JOB + sid, next_run_time=now)
        # Detach the job store first: APScheduler's shutdown wakes its loop for one last round
        # that would advance (and so lose) any job due at that moment.
        self.scheduler.remove_jobstore("default", shutdown=False)
        self.scheduler.shutdown(wait=True)
        sched.set_handler(None)
        try:
            self._write_state(stopped=reason)
        finally:
            self.lock.release()
            if self._own_engine:
                self.db.dispose()
        event("service.stopped", reason=reason, rescheduled=sorted(set(leftover)))


def install_signal_handlers(service: Service) -> None:
    """SIGTERM and SIGINT stop the service cleanly; a second one abandons the in-flight crawl."""
    def handler(signum: int, _frame: Any) -> None:
        service.request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
