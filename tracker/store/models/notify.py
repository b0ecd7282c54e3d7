"""Notification deliveries (one row per channel and message, never two) and per-user feed tokens."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tracker.store.db import UTCDateTime, utcnow


class Delivery(SQLModel, table=True):
    """One message for one channel: claimed before it is sent, so two senders never both send it.

    The unique (channel, message_key) constraint is the guarantee: a sender first inserts the row
    (status "sending"); whoever loses the insert does not send. A failed row is retried later by
    whoever wins the conditional update that claims it again. `channel` is a masked name of the
    channel (team and position, plus a hash of its URL template), never a URL holding a secret.
    """

    __tablename__ = "notify_delivery"
    __table_args__ = (sa.UniqueConstraint("channel", "message_key", name="uq_notify_delivery_channel_message"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=200, index=True)
    message_key: str = Field(max_length=200)
    kind: str = Field(max_length=20)  # alert | failure | recovery | digest | test
    team_id: str | None = Field(default=None, max_length=120)
    target: str = Field(default="", max_length=500)  # the channel URL with its secrets masked
    status: str = Field(default="sending", max_length=20, index=True)  # sending | sent | failed
    title: str = ""
    body: str = ""
    attempts: int = 0
    response: str | None = None
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
    next_attempt_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))


class FeedToken(SQLModel, table=True):
    """A user's feed token: the SHA-256 of a random secret shown once; revoked tokens stop working."""

    __tablename__ = "feed_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
