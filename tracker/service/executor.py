"""Where `tracker run` sends a batch of due sources: `local` (crawl it here, as always) or `celery`.

With `TRACKER_EXECUTOR=celery` the scheduler never crawls. It groups due sources by worker queue
and host, writes one `crawl_task` row per batch (the ledger: sources, and each source's check
count at that moment), then publishes the task. The database, not the broker, is the record of
what is owed: a batch the broker refused stays `unsent` and is sent again every poll (a broker
outage pauses crawling, `tracker status` shows it, and it resumes without a restart); a batch
still unfinished after TRACKER_TASK_EXPIRES is expired (Celery drops its message at the same
moment) and its unchecked sources sent again. A source already in an unfinished batch is not
sent twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlparse

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tracker.config import Settings
from tracker.service.celery_app import CRAWL_TASK, DEFAULT_QUEUE, make_app
from tracker.store.db import session_scope, utcnow
from tracker.store.models import CheckState, CrawlTask, CrawlWorker, Source
from tracker.store.models.cluster import UNFINISHED

log = logging.getLogger("tracker.service")


def _event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    log.log(level, name, extra={"fields": fields})


class Executor(Protocol):
    """What the service hands due batches to."""

    def submit(self, source_ids: list[str]) -> None: ...

    def tick(self) -> None: ...


@dataclass
class LocalExecutor:
    """Today's behaviour: the service's crawl thread runs each batch in a subprocess, one at a time."""

    run_batch: Callable[[list[str]], Any]

    def submit(self, source_ids: list[str]) -> None:
        self.run_batch(source_ids)

    def tick(self) -> None:
        pass


def host_of(url: str) -> str:
    """The host a source is polite to (Scrapy's download slot): its URL's netloc, lowercased."""
    return urlparse(url).netloc.lower()


def queue_of(source: Source) -> str:
    """The worker queue a source must be fetched from (`queue:` in the sources file)."""
    return str((source.options or {}).get("queue") or DEFAULT_QUEUE)


@dataclass
class CeleryExecutor:
    """Sends batches to Celery workers through the ledger (see the module docstring)."""

    settings: Settings
    engine: Engine
    clock: Callable[[], datetime] = utcnow
    app: Any = None
    _broker_down: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.app = self.app or make_app(self.settings)

    def submit(self, source_ids: list[str]) -> None:
        """Plan batches for the due sources not already owed to a worker, and send them."""
        planned = self._plan(source_ids)
        for i, (task_id, queue) in enumerate(planned):
            if error := self._send(task_id, queue):
                # The broker is down: the rest stay unsent too, and every poll sends them again.
                self._mark_unsent([tid for tid, _ in planned[i + 1:]], error)
                break

    def tick(self) -> None:
        """Expire batches that waited too long (sending their sources again), then resend unsent ones."""
        again = self._expire()
        if again:
            self.submit(again)
        with Session(self.engine) as s:
            # Only batches the broker refused: one being sent right now by submit() has no error yet.
            unsent = [(t.id, t.queue) for t in s.exec(select(CrawlTask).where(
                CrawlTask.state == "unsent", col(CrawlTask.error).is_not(None)).order_by(col(CrawlTask.created_at)))]
        for task_id, queue in unsent:
            if self._send(task_id, queue):
                break

    # -- planning ------------------------------------------------------------------------
    def _plan(self, source_ids: list[str]) -> list[tuple[str, str]]:
        now = self.clock()
        with session_scope(self.engine) as s:
            owed = owed_sources(session=s, now=now)
            if busy := [sid for sid in source_ids if sid in owed]:
                _event("crawl.skipped", sources=busy, reason="previous check still queued or running on a worker")
            wanted = [sid for sid in source_ids if sid not in owed]
            rows = list(s.exec(select(Source).where(col(Source.id).in_(wanted), Source.enabled == True)))  # noqa: E712
            checks = dict(s.exec(select(CheckState.source_id, CheckState.checks)
                                 .where(col(CheckState.source_id).in_(wanted))).all())
            planned = []
            for (queue, host), group in group_batches(rows, self.settings.task_batch):
                task = CrawlTask(id=uuid.uuid4().hex, queue=queue, host=host, sources=group,
                                 baseline={sid: int(checks.get(sid, 0)) for sid in group}, created_at=now,
                                 expires_at=now + timedelta(seconds=self.settings.task_expires))
                s.add(task)
                planned.append((task.id, queue))
        return planned

    def _send(self, task_id: str, queue: str) -> str | None:
        """Publish one batch; the broker's error when it refused (the batch then stays unsent)."""
        with Session(self.engine) as s:
            task = s.get(CrawlTask, task_id)
            expires = task.expires_at if task else None
        try:
            self.app.send_task(CRAWL_TASK, args=[task_id], queue=queue, expires=expires, retry=False)
        except Exception as exc:  # kombu's OperationalError and friends: the broker is unreachable
            error = f"broker unreachable ({type(exc).__name__}: {exc})"[:500]
            self._mark_unsent([task_id], error)
            return error
        with session_scope(self.engine) as s:
            task = s.get(CrawlTask, task_id)
            if task is not None:
                task.attempts += 1
                task.error = None
                if task.state == "unsent":  # a fast worker may already have started it
                    task.state, task.sent_at = "queued", self.clock()
        if self._broker_down:
            self._broker_down = False
            _event("broker.reachable", broker=_safe(self.settings.broker_url))
        _event("crawl.sent", task=task_id, queue=queue)
        return None

    def _mark_unsent(self, task_ids: list[str], error: str) -> None:
        with session_scope(self.engine) as s:
            for task in s.exec(select(CrawlTask).where(col(CrawlTask.id).in_(task_ids))):
                task.error = error
        if not self._broker_down:
            self._broker_down = True
            _event("broker.unreachable", logging.ERROR, broker=_safe(self.settings.broker_url), error=error,
                   action="crawling paused; batches are kept and sent when the broker answers")

    def _expire(self) -> list[str]:
        now = self.clock()
        again: list[str] = []
        with session_scope(self.engine) as s:
            for task in s.exec(select(CrawlTask).where(col(CrawlTask.state).in_(UNFINISHED),
                                                       col(CrawlTask.expires_at) < now)):
                task.state, task.finished_at, task.result = "expired", now, "expired"
                again.extend(unchecked_of(session=s, task=task))
        if again:
            _event("crawl.expired", logging.WARNING, sources=again, action="sent again")
        return again


def owed_sources(*, session: Session, now: datetime) -> set[str]:
    """Sources in a batch that is unsent, queued or running, and not expired."""
    owed: set[str] = set()
    for sources in session.exec(select(CrawlTask.sources).where(col(CrawlTask.state).in_(UNFINISHED),
                                                                 col(CrawlTask.expires_at) >= now)):
        owed.update(sources)
    return owed


def unchecked_of(*, session: Session, task: CrawlTask) -> list[str]:
    """The task's sources with no check recorded since the task was made (their count did not grow)."""
    checks = dict(session.exec(select(CheckState.source_id, CheckState.checks)
                               .where(col(CheckState.source_id).in_(task.sources))).all())
    return [sid for sid in task.sources if int(checks.get(sid, 0)) <= int(task.baseline.get(sid, 0))]


def group_batches(sources: Iterable[Source], size: int) -> list[tuple[tuple[str, str], list[str]]]:
    """Due sources grouped by (queue, host), each group cut into batches of at most `size`."""
    groups: dict[tuple[str, str], list[str]] = {}
    for src in sorted(sources, key=lambda s: s.id):
        groups.setdefault((queue_of(src), host_of(src.url)), []).append(src.id)
    return [(key, ids[i:i + size]) for key, ids in sorted(groups.items()) for i in range(0, len(ids), size)]


def make_executor(settings: Settings, *, engine: Engine, run_batch: Callable[[list[str]], Any],
                  clock: Callable[[], datetime] = utcnow) -> Executor:
    """The executor TRACKER_EXECUTOR names."""
    if settings.executor == "celery":
        return CeleryExecutor(settings=settings, engine=engine, clock=clock)
    return LocalExecutor(run_batch)


def worker_alive(worker: CrawlWorker, now: datetime) -> bool:
    """A worker is alive when it has not stopped and beat within three intervals (at least 10 s)."""
    if worker.stopped_at is not None:
        return False
    return now - worker.heartbeat_at <= timedelta(seconds=max(3 * worker.heartbeat_seconds, 10.0))


def cluster_status(*, session: Session, now: datetime) -> dict[str, Any]:
    """What `tracker status` shows of Celery workers: each worker, the batches by state, a broker outage."""
    workers = [{"name": w.name, "host": w.host, "pid": w.pid, "queues": w.queues, "concurrency": w.concurrency,
                "started_at": w.started_at, "heartbeat_at": w.heartbeat_at, "running": w.running,
                "state": "running" if worker_alive(w, now) else ("stopped" if w.stopped_at else "lost")}
               for w in session.exec(select(CrawlWorker).order_by(col(CrawlWorker.name)))]
    counts = dict.fromkeys(UNFINISHED, 0)
    oldest_unsent: CrawlTask | None = None
    for task in session.exec(select(CrawlTask).where(col(CrawlTask.state).in_(UNFINISHED))
                             .order_by(col(CrawlTask.created_at))):
        counts[task.state] += 1
        if task.state == "unsent" and oldest_unsent is None:
            oldest_unsent = task
    broker = None
    if oldest_unsent is not None:
        broker = {"reachable": False, "since": oldest_unsent.created_at, "error": oldest_unsent.error,
                  "unsent": counts["unsent"]}
    return {"workers": workers, "tasks": counts, "broker": broker}


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]
