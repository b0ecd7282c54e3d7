"""The scheduled service: who runs the scheduler (heartbeat), what its jobs did, and APScheduler's job store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tracker.store.db import UTCDateTime, utcnow

# APScheduler's SQLAlchemyJobStore table, declared here so that the migrations create it (and
# APScheduler finds it present): one row per job, its next run as a UTC timestamp, and its
# pickled state (trigger, function reference, arguments).
APSCHEDULER_JOBS = sa.Table(
    "apscheduler_jobs",
    SQLModel.metadata,
    sa.Column("id", sa.Unicode(191), primary_key=True),
    sa.Column("next_run_time", sa.Float(25), index=True),
    sa.Column("job_state", sa.LargeBinary(), nullable=False),
)


class SchedulerState(SQLModel, table=True):
    """The one scheduler of this database: who holds it and its last heartbeat (a single row, id 1)."""

    __tablename__ = "scheduler_state"

    id: int = Field(default=1, primary_key=True)
    instance: str = Field(max_length=64)
    host: str
    pid: int
    started_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    heartbeat_seconds: float = 10.0
    stopped_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
    stop_reason: str | None = None


class JobRun(SQLModel, table=True):
    """One run of a scheduled job: a crawl batch (its sources) or a digest, and how it ended."""

    __tablename__ = "job_run"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20, index=True)  # crawl | digest
    started_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False, index=True)
    )
    finished_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
    # ok | failed (some sources failed) | killed (timeout) | crashed | abandoned (shutdown) | error | skipped
    result: str | None = Field(default=None, max_length=20)
    sources: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False))
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON(), nullable=False))
