"""Crawls spread over Celery workers: the ledger of crawl tasks and the workers' heartbeats.

The broker carries tasks; the database keeps the truth about them. Each task the scheduler sends
is first a `crawl_task` row (its sources and how many checks each had when it was sent), so a
task is idempotent: a worker that receives it again (a redelivery after a crash, a copy sent
after a broker outage) checks only the sources that were not checked since. Workers write a
`crawl_worker` row every few seconds, which `tracker status` reads to show who is alive.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tracker.store.db import UTCDateTime, utcnow

# Task states: unsent (the broker refused it; sent again every poll), queued, running, done, expired.
TASK_STATES = ("unsent", "queued", "running", "done", "expired")
UNFINISHED = ("unsent", "queued", "running")


def _ts(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable))


class CrawlTask(SQLModel, table=True):
    """One batch of one host's due sources, sent to a worker queue."""

    __tablename__ = "crawl_task"

    id: str = Field(primary_key=True, max_length=32)
    queue: str = Field(max_length=40)
    host: str = Field(max_length=255)
    sources: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False))
    # Each source's CheckState.checks when the task was made: a higher count means already checked.
    baseline: dict[str, int] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON(), nullable=False))
    state: str = Field(default="unsent", max_length=12, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    sent_at: datetime | None = _ts()
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()
    worker: str | None = Field(default=None, max_length=255)
    attempts: int = 0
    result: str | None = Field(default=None, max_length=20)
    error: str | None = None


class CrawlWorker(SQLModel, table=True):
    """A `tracker worker`: its queues, what it runs now and its last heartbeat."""

    __tablename__ = "crawl_worker"

    name: str = Field(primary_key=True, max_length=255)
    host: str = Field(max_length=255)
    pid: int
    queues: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False))
    concurrency: int = 1
    started_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    heartbeat_seconds: float = 10.0
    running: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False))
    stopped_at: datetime | None = _ts()
