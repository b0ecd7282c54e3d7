"""`tracker worker`: a Celery worker that crawls the batches `tracker run` sends (TRACKER_EXECUTOR=celery).

Politeness across workers: the scheduler groups due sources by host, and a worker crawls a
host's batch only while it holds that host's lease in the database (tracker.store.models.lease:
one row per host, renewed every third of TRACKER_HOST_LEASE_SECONDS). One crawl per host at a
time, cluster-wide, so the crawl's own Scrapy slot (TRACKER_DOWNLOAD_DELAY,
TRACKER_CONCURRENCY_PER_DOMAIN, per-source overrides) is the host's whole load. When the crawl
ends the lease is kept for the host's download delay, so the next batch, on any worker, does
not start sooner than the delay. A batch whose host is leased elsewhere is retried shortly.

Nothing lost, nothing doubled: the task is acknowledged after its batch is recorded (acks_late);
the batches of a worker that stopped beating are sent again by a live one (rescue_lost); a batch
received again checks only the sources whose check count has not grown since the
scheduler made it (tracker.service.executor), and a source is in one host's batch, under that
host's lease, so it is never checked by two workers at once. Each crawl runs in its own
subprocess (as under `tracker run`) started through a guard that makes the kernel kill it when
the worker dies, and the crawl is killed when the lease cannot be renewed: a crawl never
outlives the claim that allowed it.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tracker.config import Settings
from tracker.service.celery_app import CRAWL_TASK, make_app
from tracker.service.crawler import CrawlResult, SubprocessCrawler
from tracker.service.executor import host_of, unchecked_of, worker_alive
from tracker.service.jobs import Service
from tracker.service.logs import event
from tracker.store.db import session_scope, utcnow
from tracker.store.models import CrawlTask, CrawlWorker, Lease, LeaseHeld, LeaseLost, Source
from tracker.store.models.lease import HeldLease, acquire_lease

# Linux: the crawl gets SIGKILL when the worker thread that started it dies (PR_SET_PDEATHSIG = 1),
# then becomes the crawl (exec keeps the setting); it exits at once if the worker already died.
_GUARD = ("import ctypes,os,sys;ctypes.CDLL(None).prctl(1,9);"
          "os.getppid()==int(sys.argv[1]) or os._exit(137);os.execv(sys.executable,[sys.executable,*sys.argv[2:]])")


def host_lease_name(host: str) -> str:
    """The lease of one host (lease names hold 60 characters: a long host is cut and hashed)."""
    import hashlib

    name = f"host:{host}"
    return name if len(name) <= 60 else f"host:{host[:37]}~{hashlib.sha256(host.encode()).hexdigest()[:16]}"


class GuardedCrawler(SubprocessCrawler):
    """A crawl subprocess that the kernel kills when its worker dies (kill -9, OOM), on Linux."""

    def command(self, source_ids: list[str]) -> list[str]:
        if not sys.platform.startswith("linux"):
            return super().command(source_ids)
        return [sys.executable, "-I", "-c", _GUARD, str(os.getpid()), *super().command(source_ids)[1:]]


@dataclass
class FencedCrawler:
    """Runs the crawl while renewing the host lease; kills the crawl when the lease is lost."""

    settings: Settings
    lease: HeldLease
    lost: bool = False

    def run(self, source_ids: list[str], *, timeout: float, abandon: threading.Event) -> CrawlResult:
        stop, fence = threading.Event(), threading.Event()
        renewer = threading.Thread(target=self._renew, args=(stop, fence, abandon), daemon=True)
        renewer.start()
        try:
            return GuardedCrawler(self.settings).run(source_ids, timeout=timeout, abandon=fence)
        finally:
            stop.set()
            renewer.join()

    def _renew(self, stop: threading.Event, fence: threading.Event, abandon: threading.Event) -> None:
        ttl = self.lease.ttl.total_seconds()
        last_ok = time.monotonic()
        while not stop.wait(min(ttl / 3, 1.0) if abandon.is_set() else ttl / 3):
            if abandon.is_set():
                fence.set()
            try:
                self.lease.renew()
                last_ok = time.monotonic()
            except LeaseLost:
                self._lose(fence, "taken over by another worker")
                return
            except Exception as exc:  # the database is unreachable: stop before the lease could expire
                if time.monotonic() - last_ok > ttl * 2 / 3:
                    self._lose(fence, f"not renewed: {exc!r}")
                    return

    def _lose(self, fence: threading.Event, why: str) -> None:
        self.lost = True
        event("crawl.lease_lost", logging.ERROR, lease=self.lease.name, reason=why, action="crawl killed")
        fence.set()


@dataclass
class WorkerContext:
    """One `tracker worker`: its settings, engine, name, and the batches it is running."""

    settings: Settings
    engine: Engine
    name: str
    queues: list[str]
    concurrency: int
    app: Any = None
    running: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run_task(self, task: Any, task_id: str) -> str:
        """The body of the crawl task: take the host's lease (else retry soon), crawl what is unchecked."""
        with Session(self.engine) as s:
            row = s.get(CrawlTask, task_id)
            if row is None or row.state in ("done", "expired"):
                return "nothing to do" if row is None else f"already {row.state}"
            host = row.host
        try:
            lease = acquire_lease(self.engine, host_lease_name(host),
                                  ttl=timedelta(seconds=self.settings.host_lease_seconds))
        except LeaseHeld as exc:
            wait = (exc.lease.expires_at - utcnow()).total_seconds()
            raise task.retry(countdown=max(0.5, min(wait, 3.0)), max_retries=None) from None
        with self._lock:
            self.running[task_id] = host
        delay = self.settings.download_delay
        try:
            outcome, delay = self._crawl(task_id, lease)
        finally:
            with self._lock:
                self.running.pop(task_id, None)
            release_after(self.engine, lease, delay)
        if outcome == "lease lost":
            raise task.retry(countdown=1.0, max_retries=None)
        return outcome

    def _crawl(self, task_id: str, lease: HeldLease) -> tuple[str, float]:
        with session_scope(self.engine) as s:
            row = s.get(CrawlTask, task_id)
            if row is None or row.state in ("done", "expired"):
                return ("already done", 0.0)
            sources = {src.id: src for src in s.exec(select(Source).where(col(Source.id).in_(row.sources)))}
            todo = [sid for sid in unchecked_of(session=s, task=row)
                    if sid in sources and host_of(sources[sid].url) == row.host]
            delay = max([self.settings.download_delay,
                         *(float((src.options or {}).get("download_delay", 0)) for src in sources.values())])
            row.state, row.worker, row.started_at = "running", self.name, utcnow()
        event("crawl.task_started", task=task_id, host=row.host, sources=todo, worker=self.name)
        outcome = "ok"
        if todo:
            crawler = FencedCrawler(self.settings, lease)
            result = Service(settings=self.settings, engine=self.engine, crawler=crawler).run_batch(todo)
            if crawler.lost:
                return ("lease lost", 0.0)
            outcome = {0: "ok", 3: "failed", None: "nothing"}.get(result.exit_code, result.killed or "crashed")
        with session_scope(self.engine) as s:
            row = s.get(CrawlTask, task_id)
            if row is not None:
                row.state, row.finished_at, row.result = "done", utcnow(), outcome
        return (outcome, delay)

    # -- heartbeat -----------------------------------------------------------------------
    def beat(self, *, started: bool = False, stopped: bool = False) -> None:
        """Write this worker's row: queues, running batches, heartbeat (and start or stop)."""
        now = utcnow()
        with self._lock:
            running = [f"{host} ({task_id[:8]})" for task_id, host in self.running.items()]
        with session_scope(self.engine) as s:
            row = s.get(CrawlWorker, self.name)
            if row is None or started:
                row = row or CrawlWorker(name=self.name, host=socket.gethostname(), pid=os.getpid())
                row.host, row.pid, row.started_at, row.stopped_at = socket.gethostname(), os.getpid(), now, None
                s.add(row)
            row.queues, row.concurrency, row.running = list(self.queues), self.concurrency, running
            row.heartbeat_at, row.heartbeat_seconds = now, self.settings.worker_heartbeat
            if stopped:
                row.stopped_at = now

    def heartbeat_forever(self, stop: threading.Event) -> None:
        """Beat every TRACKER_WORKER_HEARTBEAT seconds until stopped; a database hiccup is logged, not fatal."""
        while not stop.wait(self.settings.worker_heartbeat):
            try:
                self.beat()
                self.rescue_lost()
            except Exception as exc:
                event("worker.heartbeat_failed", logging.ERROR, worker=self.name, error=repr(exc))

    def rescue_lost(self) -> None:
        """Send again the batches a lost worker (no heartbeat for three intervals) was running.

        The broker would deliver them again too (RabbitMQ at once, Redis only after its visibility
        timeout); one UPDATE per batch decides which live worker sends it, and the task is
        idempotent, so a batch delivered both ways is still checked once.
        """
        now = utcnow()
        with Session(self.engine) as s:
            lost = [w.name for w in s.exec(select(CrawlWorker).where(col(CrawlWorker.stopped_at).is_(None)))
                    if w.name != self.name and not worker_alive(w, now)]
        for name in lost:
            with session_scope(self.engine) as s:
                tasks = list(s.exec(select(CrawlTask).where(CrawlTask.state == "running", CrawlTask.worker == name)))
            for task in tasks:
                with self.engine.begin() as conn:
                    table: Any = CrawlTask.__table__  # type: ignore[attr-defined]
                    won = conn.execute(sa.update(table).where(table.c.id == task.id, table.c.state == "running",
                                                              table.c.worker == name)
                                       .values(state="queued", worker=None)).rowcount == 1
                if won and self.app is not None:
                    self.app.send_task(CRAWL_TASK, args=[task.id], queue=task.queue, expires=task.expires_at)
                    event("crawl.rescued", logging.WARNING, task=task.id, host=task.host, lost_worker=name,
                          worker=self.name)


def release_after(engine: Engine, lease: HeldLease, delay: float) -> None:
    """Give the host back `delay` seconds from now (its download delay), or now when there is none."""
    if delay <= 0:
        lease.release()
        return
    table: Any = Lease.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.name == lease.name, table.c.holder == lease.holder)
                     .values(expires_at=utcnow() + timedelta(seconds=delay)))


def default_name() -> str:
    """A worker name unique on this machine: tracker-PID@HOST."""
    return f"tracker-{os.getpid()}@{socket.gethostname()}"


def run_worker(*, settings: Settings, engine: Engine, queues: list[str], concurrency: int, name: str,
               loglevel: str = "WARNING") -> int:
    """Run a Celery worker (threads pool: each thread waits on a crawl subprocess) until it is stopped."""
    app = make_app(settings)
    ctx = WorkerContext(settings=settings, engine=engine, name=name, queues=queues, concurrency=concurrency, app=app)

    def crawl_batch(task: Any, task_id: str) -> str:
        return ctx.run_task(task, task_id)

    app.task(bind=True, name=CRAWL_TASK, acks_late=True, reject_on_worker_lost=True, max_retries=None)(crawl_batch)
    ctx.beat(started=True)
    stop = threading.Event()
    beater = threading.Thread(target=ctx.heartbeat_forever, args=(stop,), name="heartbeat", daemon=True)
    beater.start()
    event("worker.started", worker=name, queues=queues, concurrency=concurrency, pid=os.getpid())
    code = 0
    try:
        app.worker_main(["worker", "--pool=threads", f"--concurrency={concurrency}", f"--queues={','.join(queues)}",
                         f"--hostname={name}", f"--loglevel={loglevel}", "--without-gossip", "--without-mingle",
                         "--without-heartbeat"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        stop.set()
        beater.join()
        ctx.beat(stopped=True)
        event("worker.stopped", worker=name, exit_code=code)
    return code
