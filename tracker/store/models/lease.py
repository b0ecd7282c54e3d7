"""Leases: a named right to do one thing at a time across processes and machines sharing the database.

A lease is a row, so it works the same on SQLite and PostgreSQL and for every process that sees
the database (unlike a file lock, which PostgreSQL users on several machines would not share).
Taking one is a single atomic statement: an INSERT that fails when the name exists, or an UPDATE
that matches only an expired row. The holder renews it while it works and deletes it when done;
a holder that crashed leaves a row that expires, and the next taker replaces it.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from tracker.store.db import UTCDateTime, utcnow

# The lease a sending digest run holds (tracker.notify.digest takes it; `tracker status` shows its holder).
DIGEST_LEASE = "digest.send"


class Lease(SQLModel, table=True):
    """Who holds the lease `name` (a random token, plus host and pid for people), since when, until when."""

    __tablename__ = "lease"

    name: str = Field(primary_key=True, max_length=60)
    holder: str = Field(max_length=32)
    host: str = Field(max_length=255)
    pid: int
    acquired_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class LeaseHeld(Exception):
    """Someone else holds a live lease; `lease` says who, since when and until when."""

    def __init__(self, lease: Lease, message: str | None = None) -> None:
        self.lease = lease
        super().__init__(message or f"lease {lease.name!r} is held by {describe_holder(lease)}")


class LeaseLost(Exception):
    """The lease expired while held and another run has taken it over: stop before doing more."""


def describe_holder(lease: Lease) -> str:
    """'host, pid 123, since … UTC, until … UTC': enough for a person to find the other run."""
    return (f"{lease.host}, pid {lease.pid}, since {lease.acquired_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"lease until {lease.expires_at:%H:%M:%S} UTC")


_TABLE: sa.Table = Lease.__table__  # type: ignore[attr-defined]


@dataclass
class HeldLease:
    """A lease this process holds: renew it while working, release it when done (in a finally)."""

    engine: Engine
    name: str
    holder: str
    ttl: timedelta

    def renew(self) -> None:
        """Push the expiry ttl from now; raise LeaseLost if the row is no longer ours.

        Still ours even when past its expiry, as long as nobody took it over: nothing ran meanwhile.
        """
        with self.engine.begin() as conn:
            done = conn.execute(sa.update(_TABLE).where(_TABLE.c.name == self.name, _TABLE.c.holder == self.holder)
                                .values(expires_at=utcnow() + self.ttl))
        if done.rowcount != 1:
            raise LeaseLost(f"lease {self.name!r} expired and was taken over by another run")

    def release(self) -> None:
        """Delete the row if it is still ours (idempotent; never removes a taker's lease)."""
        with self.engine.begin() as conn:
            conn.execute(sa.delete(_TABLE).where(_TABLE.c.name == self.name, _TABLE.c.holder == self.holder))


def acquire_lease(engine: Engine, name: str, *, ttl: timedelta) -> HeldLease:
    """Take the lease `name` for ttl, or raise LeaseHeld naming the live holder.

    Each attempt is one atomic statement in its own transaction: INSERT (fails on the primary key
    when a row exists), else UPDATE … WHERE expires_at < now (matches only an expired row; on
    PostgreSQL a concurrent taker re-checks the row after the first commits and matches nothing).
    A row released between the two statements just means trying again.
    """
    token = uuid.uuid4().hex
    host, pid = socket.gethostname(), os.getpid()
    for _ in range(5):
        now = utcnow()
        values = {"holder": token, "host": host, "pid": pid, "acquired_at": now, "expires_at": now + ttl}
        try:
            with engine.begin() as conn:
                conn.execute(sa.insert(_TABLE).values(name=name, **values))
            return HeldLease(engine, name, token, ttl)
        except sa.exc.IntegrityError:
            pass  # someone has (or had) it: take it over if it expired
        with engine.begin() as conn:
            taken = conn.execute(sa.update(_TABLE).where(_TABLE.c.name == name, _TABLE.c.expires_at < now)
                                 .values(**values))
            if taken.rowcount == 1:
                return HeldLease(engine, name, token, ttl)
            row = conn.execute(sa.select(_TABLE).where(_TABLE.c.name == name)).mappings().first()
        if row is not None:
            raise LeaseHeld(Lease(**row))
    raise LeaseHeld(Lease(name=name, holder="?", host="?", pid=0, acquired_at=utcnow(), expires_at=utcnow()),
                    f"lease {name!r} changed hands five times while this run tried to take it")
