"""The pieces of one check that the document and stream recorders share: the Fetch the spider
hands over, the CheckOutcome, blobs, baselines, locks, the check state and snapshots.

Kept apart from tracker.check.record (which dispatches to tracker.check.streams) so that neither
recorder imports the other.
"""

from __future__ import annotations

import hashlib
import re
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import object_session
from sqlmodel import Session, col, select

from tracker.check.blocks import Rules
from tracker.store.db import conflict_insert_for, hot_statement, insert_returning_id, table_of, utcnow
from tracker.store.models import Blob, Change, CheckState, Snapshot, Source, Version

# Response headers worth keeping with a snapshot.
KEPT_HEADERS = ("content-type", "etag", "last-modified", "content-length", "date", "location",
                "retry-after", "server")

NEW, CHANGED, UNCHANGED, NOT_MODIFIED, FAILED = "new", "changed", "unchanged", "not_modified", "failed"
RESULTS = (NEW, CHANGED, UNCHANGED, NOT_MODIFIED, FAILED)
_DIGITS = re.compile(r"\d+")


@dataclass
class Fetch:
    """What the crawler got for one source."""

    source_id: str
    url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    final_url: str | None = None
    error: str | None = None
    fetched_at: datetime = field(default_factory=utcnow)
    # What the kind's spider learned besides the body: cursor (kept for the next check),
    # effective_on and effective_from (where that date comes from).
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304 and self.error is None

    def not_modified_copy(self) -> Fetch:
        """This fetch as "not modified": the kind's spider found nothing new to fetch."""
        return Fetch(source_id=self.source_id, url=self.url, status=304, fetched_at=self.fetched_at,
                     facts=dict(self.facts))


@dataclass
class CheckOutcome:
    """What a check found, for progress output and summaries."""

    source_id: str
    result: str
    error: str | None = None
    version_id: int | None = None
    change_id: int | None = None
    sections: list[str] = field(default_factory=list)
    technical: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"source_id": self.source_id, "result": self.result, "error": self.error,
                "version_id": self.version_id, "change_id": self.change_id, "sections": self.sections,
                "technical": self.technical}


# Called with the session and each new Change, inside the transaction that records it
# (SOP impact mapping registers here).
# Its return value is ignored.
ChangeHook = Callable[[Session, Change], object]


# Raw pages are stored compressed by Zstandard at level 1: a 65 KB page in ~0.17 ms to 0.26 of its size,
# where zlib at level 1 took ~0.5 ms for 0.32 (docs/performance.md). Blobs stored before are zlib streams;
# the two are told apart by their first bytes (a Zstandard frame starts with its magic number, a zlib
# stream with 0x78), so nothing stored needs rewriting.
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_codecs = threading.local()  # a compressor per thread: one may not be used by two threads at once


def pack(data: bytes) -> bytes:
    """data as a blob stores it (a Zstandard frame that records its content size)."""
    compressor = getattr(_codecs, "compressor", None)
    if compressor is None:
        import zstandard  # here: a re-check that stores nothing never needs it (~5 ms of a start)

        compressor = _codecs.compressor = zstandard.ZstdCompressor(level=1)
    return compressor.compress(data)


def unpack(stored: bytes) -> bytes:
    """A blob's bytes as they were fetched, whichever way they were stored."""
    if stored.startswith(ZSTD_MAGIC):
        import zstandard

        return zstandard.decompress(stored)
    return zlib.decompress(stored)


def store_blob(*, session: Session, data: bytes) -> str:
    """Keep bytes once, compressed, under their SHA-256; returns the hash."""
    digest = hashlib.sha256(data).hexdigest()
    insert = hot_statement(session, "insert blob", _blob_insert)
    if insert is not None:
        # One INSERT that keeps the existing row, instead of a lookup (and the autoflush before it)
        # and then an INSERT: every new version stores a blob, and it is almost always new.
        session.connection().execute(insert, {"sha256": digest, "size": len(data), "data": pack(data)})
    elif session.get(Blob, digest) is None:
        session.add(Blob(sha256=digest, size=len(data), data=pack(data)))
        session.flush()
    return digest


def load_blob(*, session: Session, sha256: str) -> bytes:
    """The raw bytes stored under a hash."""
    blob = session.get(Blob, sha256)
    if blob is None:
        raise KeyError(f"no stored content {sha256}")
    return unpack(blob.data)


def latest_version(*, session: Session, source_id: str) -> Version | None:
    """The baseline: the newest version recorded for a source."""
    return session.exec(
        select(Version).where(Version.source_id == source_id).order_by(col(Version.id).desc()).limit(1)
    ).first()


def baseline_refs(*, session: Session, source_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """_baseline_ref for many sources in one query: source id -> (newest version id, text hash)."""
    newest = (select(sa.func.max(Version.id)).where(col(Version.source_id).in_(list(source_ids)))
              .group_by(col(Version.source_id)))
    rows = session.exec(select(Version.source_id, Version.id, Version.text_hash)
                        .where(col(Version.id).in_(newest.scalar_subquery())))
    return {sid: (vid, text_hash) for sid, vid, text_hash in rows if vid is not None}


def _baseline_ref(*, session: Session, source_id: str) -> tuple[int, str] | None:
    """The id and text hash of the newest version, without loading its blocks (hot path)."""
    row = session.exec(
        select(Version.id, Version.text_hash).where(Version.source_id == source_id)
        .order_by(col(Version.id).desc()).limit(1)
    ).first()
    return None if row is None or row[0] is None else (row[0], row[1])


def lock_sources(*, session: Session, source_ids: Sequence[str]) -> dict[str, Source]:
    """The sources, held for this transaction so that no other writer records them until it ends.

    Must come first in the transaction, before its baselines are read: two crawls recording the same
    page update would otherwise both read the old baseline and each record a version and a change.
    PostgreSQL locks the rows (in id order, so two batches never deadlock) and every later read
    sees what the previous holder committed; SQLite takes its single write lock now (BEGIN
    IMMEDIATE) instead of at the first write, and its snapshot starts there.
    """
    ids = sorted(set(source_ids))
    if session.get_bind().dialect.name == "sqlite":
        conn = session.connection()
        if not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    rows = session.exec(select(Source).where(col(Source.id).in_(ids)).order_by(col(Source.id)).with_for_update())
    return {s.id: s for s in rows}


def rules_for(source: Source) -> Rules:
    """The extraction rules a source declares."""
    return Rules(select=tuple(source.select), remove=tuple(source.remove), kind=source.kind,
                 ignore=tuple(source.options.get("ignore") or ()))


def get_check_state(*, session: Session, source_id: str) -> CheckState:
    """The source's check state, created on first use."""
    state = session.get(CheckState, source_id)
    if state is None:
        state = CheckState(source_id=source_id)
        session.add(state)
    return state


def _headers(fetch: Fetch) -> dict[str, str]:
    return {k: v for k, v in ((k.lower(), v) for k, v in fetch.headers.items()) if k in KEPT_HEADERS}


def fail_check(*, session: Session, source: Source, state: CheckState, fetch: Fetch, error: str,
               keep_body: bool) -> CheckOutcome:
    now = fetch.fetched_at
    # The first failure of a streak, or a different kind of error (numbers in messages vary).
    first_time = state.consecutive_failures == 0 or _DIGITS.sub("#", state.last_error or "") != _DIGITS.sub("#", error)
    if first_time:
        # The first time an error is seen is kept for the source's history (tracker.check.history), with
        # what the server sent when it is worth inspecting.
        sha = store_blob(session=session, data=fetch.body) if keep_body and fetch.body else None
        session.add(Snapshot(source_id=source.id, fetched_at=now, url=fetch.final_url or fetch.url,
                             http_status=fetch.status, headers=_headers(fetch), content_sha256=sha,
                             purpose="error", error=error))
    if state.consecutive_failures == 0:
        state.error_since = now
    state.consecutive_failures += 1
    state.last_error = error
    state.last_result = FAILED
    state.last_status = fetch.status
    state.last_checked_at = now
    state.checks += 1
    return CheckOutcome(source.id, FAILED, error=error)


def succeed_check(state: CheckState, fetch: Fetch, result: str) -> None:
    if state.consecutive_failures:
        # The end of a failing streak, for the source's history: a check that succeeds without a new
        # text leaves no other trace. The state is in the recording session (get_check_state added it).
        session = object_session(state)
        if session is not None:
            session.add(Snapshot(source_id=state.source_id, fetched_at=fetch.fetched_at,
                                 url=fetch.final_url or fetch.url, http_status=fetch.status, purpose="recovery"))
    state.last_checked_at = state.last_success_at = fetch.fetched_at
    state.checks += 1
    headers = {k.lower(): v for k, v in fetch.headers.items()}
    settled: dict[str, Any] = {"last_result": result, "last_status": fetch.status, "last_error": None,
                               "error_since": None, "consecutive_failures": 0}
    if fetch.status == 200:
        # Validators come from the response that carried the content (a 304 may repeat them).
        settled["etag"], settled["last_modified"] = headers.get("etag"), headers.get("last-modified")
    if fetch.facts.get("cursor"):
        settled["cursor"] = fetch.facts["cursor"]
    # Most of these are what the last check left (every check of a healthy source): only what differs is
    # set, as each set of a SQLModel attribute costs ~7 µs and an equal value changes nothing to store.
    for name, value in settled.items():
        if getattr(state, name) != value:
            setattr(state, name, value)


def snapshot_of(*, session: Session, source: Source, fetch: Fetch) -> int:
    """Store the raw response behind new versions (the bytes once) and return the new snapshot's id."""
    sha = store_blob(session=session, data=fetch.body)
    values: dict[str, Any] = {"source_id": source.id, "fetched_at": fetch.fetched_at,
                              "url": fetch.final_url or fetch.url, "http_status": fetch.status,
                              "headers": _headers(fetch), "content_sha256": sha, "purpose": "version"}
    # Inserted without the unit of work and without a Snapshot object (every new version comes here:
    # building a SQLModel object costs ~0.1 ms); load it with session.get to read or change it.
    return insert_returning_id(session, Snapshot, values)


def _blob_insert(dialect: str) -> Any:
    insert = conflict_insert_for(dialect, table_of(Blob))
    return None if insert is None else insert.on_conflict_do_nothing(index_elements=["sha256"])
