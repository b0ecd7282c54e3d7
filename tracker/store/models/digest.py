"""Digests: one row per run and recipient, remembering what was delivered."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tracker.store.db import UTCDateTime, utcnow


class Digest(SQLModel, table=True):
    """One digest email for one recipient in one run: what it carried and whether it was delivered.

    Only rows with status "sent" count as delivered; a "failed" row keeps the error and the ids
    it would have carried, and the next run offers those again.
    """

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=32, index=True)
    recipient: str = Field(index=True, max_length=320)
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))
    status: str = Field(default="sent", max_length=20)  # sent | failed
    subject: str = ""
    # An explicit re-send (--since): what it carried was already counted on its first delivery.
    since: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
    change_ids: list[int] = Field(default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False))
    impact_ids: list[int] = Field(default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False))
    failing_source_ids: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False))
    message_id: str | None = None
    error: str | None = None
