"""One check of one source: load the baseline, extract, compare, record. Called by the pipeline.

Like urlwatch's job handler, a check is a small lifecycle: it keeps the last good version as the
baseline whatever goes wrong, counts failures, and treats "not modified" as its own outcome.
Raw bytes are kept, compressed and content-addressed, for every new version and for the first
occurrence of each error; an unchanged fetch only updates the check state.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from tracker.check.dates import find_dates
from tracker.check.diff import diff_blocks
from tracker.check.extract import (
    Block,
    ExtractionError,
    Rules,
    blocks_from_json,
    blocks_hash,
    blocks_to_json,
)
from tracker.check.kinds import extract_kind
from tracker.check.limits import DEFAULT_LIMITS, Limits
from tracker.check.shapes import is_stream
from tracker.store.db import utcnow
from tracker.store.models import Blob, Change, CheckState, Snapshot, Source, Version
from tracker.store.search import index_change, index_version

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


def store_blob(*, session: Session, data: bytes) -> str:
    """Keep bytes once, compressed, under their SHA-256; returns the hash."""
    digest = hashlib.sha256(data).hexdigest()
    # Level 1: a page compresses in ~1 ms instead of ~3.6 ms at level 6 (a quarter of a new
    # page's recording time), for ~30% more bytes (0.29 vs 0.22 of the raw size on the corpus).
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        # One INSERT that keeps the existing row, instead of a lookup (and the autoflush before it)
        # and then an INSERT: every new version stores a blob, and it is almost always new.
        from sqlalchemy.dialects import postgresql, sqlite

        insert = sqlite.insert(Blob) if dialect == "sqlite" else postgresql.insert(Blob)
        session.execute(insert.values(sha256=digest, size=len(data), data=zlib.compress(data, 1))
                        .on_conflict_do_nothing(index_elements=["sha256"]))
    elif session.get(Blob, digest) is None:
        session.add(Blob(sha256=digest, size=len(data), data=zlib.compress(data, 1)))
        session.flush()
    return digest


def load_blob(*, session: Session, sha256: str) -> bytes:
    """The raw bytes stored under a hash."""
    blob = session.get(Blob, sha256)
    if blob is None:
        raise KeyError(f"no stored content {sha256}")
    return zlib.decompress(blob.data)


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
    return Rules(select=tuple(source.select), remove=tuple(source.remove), kind=source.kind)


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
    if keep_body and first_time:
        # Keep what the server sent the first time an error is seen, for inspection.
        sha = store_blob(session=session, data=fetch.body) if fetch.body else None
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
    state.last_checked_at = state.last_success_at = fetch.fetched_at
    state.last_result = result
    state.last_status = fetch.status
    state.last_error = None
    state.error_since = None
    state.consecutive_failures = 0
    state.checks += 1
    headers = {k.lower(): v for k, v in fetch.headers.items()}
    if fetch.status == 200:
        # Validators come from the response that carried the content (a 304 may repeat them).
        state.etag = headers.get("etag")
        state.last_modified = headers.get("last-modified")
    if fetch.facts.get("cursor"):
        state.cursor = fetch.facts["cursor"]


def snapshot_of(*, session: Session, source: Source, fetch: Fetch) -> Snapshot:
    """The raw response behind new versions, stored once."""
    sha = store_blob(session=session, data=fetch.body)
    snapshot = Snapshot(source_id=source.id, fetched_at=fetch.fetched_at, url=fetch.final_url or fetch.url,
                        http_status=fetch.status, headers=_headers(fetch), content_sha256=sha,
                        purpose="version")
    session.add(snapshot)
    session.flush()
    return snapshot


def _dates_of(fetch: Fetch, blocks: Sequence[Block]) -> dict[str, Any]:
    """A document change's dates: what the kind's API said (fetch.facts), else its text's sentences."""
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    if fetch.facts.get("effective_on"):
        values["effective_on"] = date.fromisoformat(fetch.facts["effective_on"])
        where["effective_on"] = fetch.facts.get("effective_from", "the source")
    for name, found in find_dates("\n".join(b.text for b in blocks)).items():
        if name not in values:
            values[name], where[name] = found.on, found.sentence
    return values | ({"dates_from": where} if where else {})


# record_check's "look it up yourself" default for baseline_ref (None means: known to have no version).
LOOK_UP: Any = object()


def record_check(*, session: Session, source: Source, fetch: Fetch, on_change: ChangeHook | None = None,
                 state: CheckState | None = None, baseline_ref: tuple[int, str] | None = LOOK_UP,
                 limits: Limits = DEFAULT_LIMITS) -> CheckOutcome:
    """Record one fetch of a source: a new version and change when its text changed, else state only.

    A caller recording many sources at once may pass what it read for all of them in one query each,
    which spares two queries per source: state (its check state, already in this session) and
    baseline_ref (the id and text hash of its newest version, or None when it has none; only valid
    until this call records a version). limits bound the extracted version (TRACKER_MAX_BLOCKS and
    TRACKER_MAX_TEXT_BYTES): a page past them fails like any extraction error, the baseline kept.
    """
    if state is None:
        state = get_check_state(session=session, source_id=source.id)
    if fetch.final_url and fetch.final_url != source.url:
        source.final_url = fetch.final_url
    elif fetch.final_url == source.url:
        source.final_url = None
    if fetch.error is not None:
        return fail_check(session=session, source=source, state=state, fetch=fetch, error=fetch.error,
                          keep_body=bool(fetch.body))
    ref = _baseline_ref(session=session, source_id=source.id) if baseline_ref is LOOK_UP else baseline_ref
    if fetch.not_modified:
        if ref is None:
            # Only a request carrying validators may be answered 304, and those need a baseline.
            return fail_check(session=session, source=source, state=state, fetch=fetch, keep_body=False,
                              error=f"HTTP 304 (not modified) from {fetch.final_url or fetch.url} although no "
                              "version is stored yet: the server answers 304 to unconditional requests")
        succeed_check(state, fetch, NOT_MODIFIED)
        return CheckOutcome(source.id, NOT_MODIFIED)
    if fetch.status is not None and not 200 <= fetch.status < 300:
        return fail_check(session=session, source=source, state=state, fetch=fetch,
                          error=f"HTTP {fetch.status} from {fetch.final_url or fetch.url}", keep_body=True)

    if is_stream(source.kind):
        from tracker.check.streams import record_stream

        return record_stream(session=session, source=source, state=state, fetch=fetch, on_change=on_change)
    rules = rules_for(source)
    content_type = {k.lower(): v for k, v in fetch.headers.items()}.get("content-type")
    try:
        new_blocks = extract_kind(fetch.body, rules, content_type, limits=limits).blocks
    except ExtractionError as exc:
        return fail_check(session=session, source=source, state=state, fetch=fetch, error=str(exc),
                          keep_body=True)

    text_hash = blocks_hash(new_blocks)
    if ref is not None and ref[1] == text_hash:
        # Unchanged: the baseline's blocks are never loaded (the common case of an unvalidated fetch).
        succeed_check(state, fetch, UNCHANGED)
        return CheckOutcome(source.id, UNCHANGED, version_id=ref[0])
    baseline = session.get(Version, ref[0]) if ref is not None else None

    snapshot = snapshot_of(session=session, source=source, fetch=fetch)
    version = Version(source_id=source.id, snapshot_id=snapshot.id, created_at=fetch.fetched_at,
                      text_hash=text_hash, blocks=blocks_to_json(new_blocks),
                      block_count=len(new_blocks), rules=rules.to_json(), rules_hash=rules.hash)
    session.add(version)
    session.flush()
    index_version(session=session, version=version)
    if baseline is None:
        succeed_check(state, fetch, NEW)
        return CheckOutcome(source.id, NEW, version_id=version.id)

    old_blocks = blocks_from_json(baseline.blocks)
    technical = False
    if baseline.rules_hash != rules.hash:
        # The rules changed since the baseline: re-extract its raw page with today's rules, so
        # that what the new rules alone changed is recorded as technical, never as policy.
        rebased = _reextract(session=session, baseline=baseline, rules=rules, limits=limits)
        if rebased is not None:
            if blocks_hash(rebased) == text_hash:
                technical = True
            else:
                old_blocks = rebased
    diff = diff_blocks(old_blocks, new_blocks)
    if not diff:
        # Same blocks and words, only the heading structure moved (an <h2> became an <h3>): the
        # new version keeps the paths current, but there is no change for anyone to read.
        succeed_check(state, fetch, UNCHANGED)
        return CheckOutcome(source.id, UNCHANGED, version_id=version.id)
    change = Change(source_id=source.id, from_version_id=baseline.id or 0, to_version_id=version.id or 0,
                    detected_at=fetch.fetched_at, technical=technical, sections=diff.sections,
                    added=diff.added, removed=diff.removed, modified=diff.modified, diff=diff.to_json(),
                    **_dates_of(fetch, new_blocks))
    session.add(change)
    session.flush()
    index_change(session=session, change=change)
    if on_change is not None and not technical:
        on_change(session, change)
    succeed_check(state, fetch, CHANGED)
    return CheckOutcome(source.id, CHANGED, version_id=version.id, change_id=change.id,
                        sections=diff.sections, technical=technical)


def _reextract(*, session: Session, baseline: Version, rules: Rules, limits: Limits) -> list[Block] | None:
    snapshot = session.get(Snapshot, baseline.snapshot_id) if baseline.snapshot_id else None
    if snapshot is None or snapshot.content_sha256 is None:
        return None
    try:
        return extract_kind(load_blob(session=session, sha256=snapshot.content_sha256), rules,
                            snapshot.headers.get("content-type"), limits=limits).blocks
    except ExtractionError:
        return None
