"""Login rate limiting: attempts per client address and email, counted in the database.

An attempt is counted *before* its password is checked, in one atomic upsert that returns the
new count, so parallel requests cannot all slip under the limit: of 30 simultaneous wrong
passwords only the first `max_failures` are checked, the rest are refused unseen. A login that
succeeds clears its count, so what accumulates is failures. The count lives in the database:
every server process on one database shares it, a restart forgets nothing, and rows whose
window has passed are deleted on the next attempt, so the table only holds the current window.

The window is fixed: it starts at the first counted attempt and, once the limit is reached,
the address may try that email again when the window ends (Retry-After says when).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from tracker.store.db import UTCDateTime, utcnow
from tracker.store.models import LoginAttempt

_TABLE: sa.Table = LoginAttempt.__table__  # type: ignore[attr-defined]
MAX_ADDRESS, MAX_EMAIL = 64, 320


class LoginLimiter:
    """At most `max_failures` failed logins per (address, email) within `window` seconds."""

    def __init__(self, *, engine: Engine, max_failures: int, window: float) -> None:
        self.engine = engine
        self.max_failures = max_failures
        self.window = window

    def reserve(self, address: str, email: str, *, now: datetime | None = None) -> float:
        """Count one attempt before checking its password: seconds to wait when over the limit, else 0."""
        now = now or utcnow()
        cutoff = now - timedelta(seconds=self.window)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(_TABLE).where(_TABLE.c.window_start <= cutoff))
            attempts, start = conn.execute(self._count(address, email, now=now, cutoff=cutoff)).one()
        if attempts <= self.max_failures:
            return 0.0
        ends: datetime = start + timedelta(seconds=self.window)
        return max(1.0, (ends - now).total_seconds())

    def succeeded(self, address: str, email: str) -> None:
        """Forget the attempts of an address and email that just logged in."""
        address, email = address[:MAX_ADDRESS], email[:MAX_EMAIL]
        with self.engine.begin() as conn:
            conn.execute(sa.delete(_TABLE).where(_TABLE.c.address == address, _TABLE.c.email == email))

    def _count(self, address: str, email: str, *, now: datetime, cutoff: datetime) -> Any:
        """INSERT … ON CONFLICT DO UPDATE … RETURNING: one statement, so concurrent attempts queue on the row."""
        insert: Any = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(_TABLE).values(address=address[:MAX_ADDRESS], email=email[:MAX_EMAIL], attempts=1,
                                     window_start=now)
        stale = _TABLE.c.window_start <= cutoff
        return stmt.on_conflict_do_update(
            index_elements=[_TABLE.c.address, _TABLE.c.email],
            set_={
                "attempts": sa.case((stale, 1), else_=_TABLE.c.attempts + 1),
                "window_start": sa.case((stale, sa.literal(now, UTCDateTime())), else_=_TABLE.c.window_start),
            },
        ).returning(_TABLE.c.attempts, _TABLE.c.window_start)
