"""Checks asked for by a person ("check now"), queued for the running service or run on the spot."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tracker.store.db import UTCDateTime, utcnow

# The states in which a request still holds its source: at most one such request per source.
ACTIVE_STATES = ("queued", "running")
_ACTIVE = sa.text("state IN ('queued', 'running')")


class CheckRequest(SQLModel, table=True):
    """One "check this source now": queued -> running -> done | failed, with the check's outcome."""

    __tablename__ = "check_request"
    # The partial unique index makes a second active request of one source fail in the database,
    # so two people pressing the button at once get one check (tracker.service.checknow).
    __table_args__ = (sa.Index("uq_check_request_active", "source_id", unique=True,
                               sqlite_where=_ACTIVE, postgresql_where=_ACTIVE),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(foreign_key="source.id", max_length=120, index=True)
    requested_by: str
    requested_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    state: str = Field(default="queued", max_length=12)  # queued | running | done | failed
    started_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
    outcome: str | None = Field(default=None, max_length=20)  # new | changed | unchanged | not_modified | failed
    error: str | None = None
