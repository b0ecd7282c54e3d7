"""One active scheduler per database: a PostgreSQL advisory lock, or an exclusive file lock for SQLite.

Both are held by the running service for its whole life and vanish with it (a crashed process
releases its flock and its PostgreSQL session), so a stale lock never needs cleaning up.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

LOCK_NAME = "policy-tracker-scheduler"
# SQLite databases without a file (":memory:") can only be locked within this process.
_MEMORY_LOCKS: dict[str, threading.Lock] = {}


class LockHeld(Exception):
    """Another scheduler holds the lock for this database."""


class SchedulerLock:
    """The lock that makes a scheduler the only one on its database."""

    description: str = ""

    def acquire(self) -> None:
        """Take the lock now, or raise LockHeld."""
        raise NotImplementedError

    def healthy(self) -> bool:
        """Whether the lock is still held (a PostgreSQL session can drop)."""
        return True

    def release(self) -> None:
        """Give the lock back (idempotent)."""
        raise NotImplementedError


class FileLock(SchedulerLock):
    """An exclusive flock on a file next to the SQLite database (works across processes)."""

    def __init__(self, path: Path):
        self.path = path
        self.description = f"file lock {path}"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        f = open(self.path, "a+")  # noqa: SIM115  (held open for the life of the service)
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            f.close()
            raise LockHeld(f"{self.path} is locked by another process") from exc
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            finally:
                self._file.close()
                self._file = None


class MemoryLock(SchedulerLock):
    """A lock for an in-memory SQLite database, which no other process can see anyway."""

    def __init__(self, key: str):
        self._lock = _MEMORY_LOCKS.setdefault(key, threading.Lock())
        self.description = "in-process lock"
        self._held = False

    def acquire(self) -> None:
        if not self._lock.acquire(blocking=False):
            raise LockHeld("another scheduler in this process holds the in-memory database")
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()


class AdvisoryLock(SchedulerLock):
    """A PostgreSQL session advisory lock on a dedicated autocommit connection.

    The key includes the current schema, so tracker databases living in separate schemas of one
    PostgreSQL database (as the tests do) each get their own scheduler.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self._conn: Connection | None = None
        self._key: int | None = None
        self.description = "PostgreSQL advisory lock"

    def acquire(self) -> None:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            schema = conn.execute(sa.text("select current_schema()")).scalar_one()
            key = conn.execute(sa.text("select hashtext(:n)"), {"n": f"{LOCK_NAME}:{schema}"}).scalar_one()
            got = conn.execute(sa.text("select pg_try_advisory_lock(:k)"), {"k": key}).scalar_one()
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            raise LockHeld(f"the advisory lock of schema {schema!r} is held by another session")
        self.description = f"PostgreSQL advisory lock {key} (schema {schema})"
        self._conn, self._key = conn, int(key)

    def healthy(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(sa.text("select 1"))
            return True
        except Exception:
            return False

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(sa.text("select pg_advisory_unlock(:k)"), {"k": self._key})
        except Exception:
            pass  # the session is gone, and the lock with it
        finally:
            conn.close()


def scheduler_lock(engine: Engine) -> SchedulerLock:
    """The right lock for the engine's database."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return AdvisoryLock(engine)
    if url.get_backend_name() == "sqlite":
        db: Any = url.database
        if not db or db == ":memory:" or str(db).startswith("file::memory:"):
            return MemoryLock(str(url))
        return FileLock(Path(db).resolve().with_name(Path(db).name + ".scheduler.lock"))
    raise ValueError(f"no scheduler lock for {url.get_backend_name()} databases (use SQLite or PostgreSQL)")
