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

from sqlmodel import Session

from tracker.check.blocks import Block, ExtractionError, Rules, blocks_from_json, blocks_hash, blocks_to_json
from tracker.check.cosmetic import is_cosmetic
from tracker.check.dates import find_dates
from tracker.check.diff import diff_blocks
from tracker.check.kinds import Extraction, Kinds, Shape, extract_kind
from tracker.check.limits import DEFAULT_LIMITS, Limits
from tracker.check.reverts import earlier_version, is_quiet_flap
from tracker.check.state import (
    CHANGED,
    FAILED,
    KEPT_HEADERS,
    NEW,
    NOT_MODIFIED,
    RESULTS,
    UNCHANGED,
    ChangeHook,
    CheckOutcome,
    Fetch,
    _baseline_ref,
    baseline_refs,
    fail_check,
    get_check_state,
    latest_version,
    load_blob,
    lock_sources,
    rules_for,
    snapshot_of,
    store_blob,
    succeed_check,
)
from tracker.check.streams import record_stream
from tracker.check.volatile import masked
from tracker.store.db import insert_returning_id
from tracker.store.models import Change, CheckState, Snapshot, Source, Version
from tracker.store.search import index_change, queue_version

# Re-exported from tracker.check.state: what callers have always imported from here.
__all__ = ["KEPT_HEADERS", "NEW", "CHANGED", "UNCHANGED", "NOT_MODIFIED", "FAILED", "RESULTS", "Fetch", "CheckOutcome",
           "ChangeHook", "store_blob", "load_blob", "latest_version", "baseline_refs", "lock_sources",
           "rules_for", "get_check_state", "fail_check", "succeed_check", "snapshot_of", "LOOK_UP",
           "record_check"]


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


def record_check(*, session: Session, source: Source, fetch: Fetch, kinds: Kinds | None = None,
                 on_change: ChangeHook | None = None, state: CheckState | None = None,
                 baseline_ref: tuple[int, str] | None = LOOK_UP, limits: Limits = DEFAULT_LIMITS) -> CheckOutcome:
    """Record one fetch of a source: a new version and change when its text changed, else state only.

    kinds is the registry of source kinds (spiders.KINDS), handed down by the caller: a fetch that
    answered is read with its source's kind. A failed fetch is recorded without it.

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

    kind = _kind_of(source, kinds)
    if kind is None:
        return fail_check(session=session, source=source, state=state, fetch=fetch, keep_body=True,
                          error=f"kind {source.kind!r} is not one this version of the tracker reads "
                                f"(known: {', '.join(sorted(kinds or {}))}); fix the source's kind")
    if kind.shape is Shape.STREAM:
        return record_stream(session=session, source=source, state=state, fetch=fetch, on_change=on_change,
                             kind=kind)
    rules = rules_for(source)
    content_type = {k.lower(): v for k, v in fetch.headers.items()}.get("content-type")
    # The fingerprint of the last page read holds only for the baseline it was read against.
    known = _fingerprint_of(state, ref)
    try:
        extracted = extract_kind(fetch.body, rules, content_type, kind=kind, limits=limits, unless=known)
    except ExtractionError as exc:
        return fail_check(session=session, source=source, state=state, fetch=fetch, error=str(exc),
                          keep_body=True)
    if extracted.same_as_before and ref is not None:
        # The selected part of the page is what it was when its text was the baseline's: unchanged,
        # told without building its blocks (the common case of a page sent without validators).
        succeed_check(state, fetch, UNCHANGED)
        return CheckOutcome(source.id, UNCHANGED, version_id=ref[0])
    new_blocks = extracted.blocks

    # What the ignore patterns match takes no part in the comparison; the version keeps the whole blocks.
    compared = masked(new_blocks, rules.ignore)
    text_hash = blocks_hash(compared)
    if ref is not None and ref[1] == text_hash:
        # Unchanged: the baseline's blocks are never loaded (the common case of an unvalidated fetch).
        succeed_check(state, fetch, UNCHANGED)
        state.fingerprint = _pin(ref, extracted.fingerprint)
        return CheckOutcome(source.id, UNCHANGED, version_id=ref[0])
    baseline = session.get(Version, ref[0]) if ref is not None else None

    snapshot_id = snapshot_of(session=session, source=source, fetch=fetch)
    values: dict[str, Any] = {"source_id": source.id, "snapshot_id": snapshot_id, "created_at": fetch.fetched_at,
                              "text_hash": text_hash, "blocks": blocks_to_json(new_blocks),
                              "block_count": len(new_blocks), "rules": rules.to_json(), "rules_hash": rules.hash}
    # Inserted without the unit of work or a Version object, as its snapshot is (session.get loads it).
    version_id = insert_returning_id(session, Version, values)
    queue_version(session=session, source_id=source.id, version_id=version_id)
    state.fingerprint = _pin((version_id, text_hash), extracted.fingerprint)
    if baseline is None:
        succeed_check(state, fetch, NEW)
        return CheckOutcome(source.id, NEW, version_id=version_id)

    old_blocks = masked(blocks_from_json(baseline.blocks), rules.ignore)
    technical = False
    if baseline.rules_hash != rules.hash:
        # The rules changed since the baseline: re-extract its raw page with today's rules, so
        # that what the new rules alone changed is recorded as technical, never as policy.
        rebased = _reextract(session=session, baseline=baseline, rules=rules, kind=kind, limits=limits)
        if rebased is not None:
            rebased = masked(rebased, rules.ignore)
            if blocks_hash(rebased) == text_hash:
                technical = True
            else:
                old_blocks = rebased
    diff = diff_blocks(old_blocks, compared)
    if not diff:
        # Same blocks and words, only the heading structure moved (an <h2> became an <h3>): the
        # new version keeps the paths current, but there is no change for anyone to read.
        succeed_check(state, fetch, UNCHANGED)
        return CheckOutcome(source.id, UNCHANGED, version_id=version_id)
    change = Change(source_id=source.id, from_version_id=baseline.id or 0, to_version_id=version_id,
                    detected_at=fetch.fetched_at, technical=technical, sections=diff.sections,
                    added=diff.added, removed=diff.removed, modified=diff.modified, diff=diff.to_json(),
                    **_dates_of(fetch, new_blocks))
    if not technical:
        _tell_apart(session=session, source=source, change=change, old=old_blocks, new=compared,
                    text_hash=text_hash, before_id=baseline.id or 0)
    session.add(change)
    session.flush()
    index_change(session=session, change=change)
    if on_change is not None and not technical:
        on_change(session, change)
    succeed_check(state, fetch, CHANGED)
    return CheckOutcome(source.id, CHANGED, version_id=version_id, change_id=change.id,
                        sections=diff.sections, technical=technical)


def _tell_apart(*, session: Session, source: Source, change: Change, old: Sequence[Block],
                new: Sequence[Block], text_hash: str, before_id: int) -> None:
    """Mark a change cosmetic, a revert (to which version, from when), and a quiet flap. text_hash: the
    new version's (it is not in the session, so it is passed rather than loaded again)."""
    change.cosmetic = is_cosmetic(old, new)
    earlier = earlier_version(session=session, source_id=source.id, text_hash=text_hash, before_id=before_id)
    if earlier is not None:
        change.reverts_to_version_id, change.reverts_to_at = earlier.id, earlier.created_at
        change.quiet = is_quiet_flap(session=session, source=source, change=change)


def _pin(baseline: tuple[int, str], fingerprint: str | None) -> str | None:
    """check_state.fingerprint: the page's fingerprint tied to the version its text was (id and text hash)."""
    return f"{baseline[0]}:{baseline[1][:16]}:{fingerprint}" if fingerprint is not None else None


def _fingerprint_of(state: CheckState, ref: tuple[int, str] | None) -> str | None:
    """The last page's fingerprint when it was read against the current baseline (the same version,
    with the same text), else None: the page is read in full, and a baseline recorded or rewritten
    since, by whatever means, is never vouched for."""
    if ref is None or not state.fingerprint:
        return None
    pinned, _, fingerprint = state.fingerprint.rpartition(":")
    return fingerprint if fingerprint and pinned == f"{ref[0]}:{ref[1][:16]}" else None


def _kind_of(source: Source, kinds: Kinds | None) -> Extraction | None:
    if kinds is None:
        raise TypeError("record_check needs kinds= (spiders.KINDS) to read a fetch that answered")
    return kinds.get(source.kind)


def _reextract(*, session: Session, baseline: Version, rules: Rules, kind: Extraction,
               limits: Limits) -> list[Block] | None:
    snapshot = session.get(Snapshot, baseline.snapshot_id) if baseline.snapshot_id else None
    if snapshot is None or snapshot.content_sha256 is None:
        return None
    try:
        return extract_kind(load_blob(session=session, sha256=snapshot.content_sha256), rules,
                            snapshot.headers.get("content-type"), kind=kind, limits=limits).blocks
    except ExtractionError:
        return None
