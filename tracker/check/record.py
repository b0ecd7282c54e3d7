"""One check of one source: load the baseline, extract, compare, record. Called by the pipeline.

Like urlwatch's job handler, a check is a small lifecycle: it keeps the last good version as the
baseline whatever goes wrong, counts failures, and treats "not modified" as its own outcome.
Raw bytes are kept, compressed and content-addressed, for every new version and for the first
occurrence of each error; an unchanged fetch only updates the check state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from tracker.check.blocks import Block, ExtractionError, Rules, blocks_from_json, blocks_hash, blocks_to_json
from tracker.check.checks import (
    CHANGED,
    NEW,
    NOT_MODIFIED,
    UNCHANGED,
    ChangeHook,
    CheckOutcome,
    Fetch,
    fail_check,
    get_check_state,
    load_blob,
    rules_for,
    snapshot_of,
    succeed_check,
)
from tracker.check.dates import find_dates
from tracker.check.diff import diff_blocks
from tracker.check.kinds import extract_kind
from tracker.check.limits import DEFAULT_LIMITS, Limits
from tracker.check.shapes import is_stream
from tracker.store.models import Change, CheckState, Snapshot, Source, Version


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
