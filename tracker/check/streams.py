"""Recording a check of a stream (a feed, a Federal Register query): entries, not versions.

Each entry the stream lists is remembered (stream_entry) by its id; a check records, for each
entry never seen before and each known entry whose content changed, a Version holding the
entry's blocks and a Change that adds (or modifies) them, mapped to SOPs like any change. An
entry that is no longer listed is simply not seen: a feed's window moving on is not a removal.

The first check of a stream is its baseline: what it lists is remembered without any change,
so a query matching thousands of past documents floods nobody, unless the source declares
`since: DATE`, when entries published from that date on are news (a backfill).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from sqlmodel import Session, col, select

from tracker.check.blocks import Block, ExtractionError, blocks_from_json, blocks_hash, blocks_to_json
from tracker.check.dates import find_dates
from tracker.check.diff import diff_blocks
from tracker.check.entry import StreamEntry
from tracker.check.kinds import Extraction, Kinds
from tracker.check.shapes import since_of
from tracker.check.state import (
    CHANGED,
    NEW,
    UNCHANGED,
    ChangeHook,
    CheckOutcome,
    Fetch,
    fail_check,
    rules_for,
    snapshot_of,
    succeed_check,
)
from tracker.store.models import Change, CheckState, Source, StreamEntryRecord, Version
from tracker.store.search import index_change

# A stream listing more entries than this in one check is cut (the newest kept, in its order).
MAX_ENTRIES_PER_CHECK = 5000


def stream_cursors(*, session: Session, sources: Sequence[Source], states: dict[str, CheckState],
                   with_baseline: set[str], kinds: Kinds) -> dict[str, str]:
    """Where each source's next check starts: the kind's cursor, or the newest entry recorded (for the
    kinds whose cursor_from_entries is set)."""
    out = {s.id: st.cursor for s in sources if (st := states.get(s.id)) is not None and st.cursor
           and s.id in with_baseline}
    ids = [s.id for s in sources if (kind := kinds.get(s.kind)) is not None and kind.cursor_from_entries]
    if ids:
        rows = session.exec(select(StreamEntryRecord.source_id, sa.func.max(StreamEntryRecord.published))
                            .where(col(StreamEntryRecord.source_id).in_(ids))
                            .group_by(col(StreamEntryRecord.source_id)))
        out.update({sid: str(newest)[:10] for sid, newest in rows if newest})
    return out


def _published_on(entry: StreamEntry) -> date | None:
    try:
        return date.fromisoformat(entry.published[:10]) if entry.published else None
    except ValueError:
        return None


def _entry_dates(entry: StreamEntry) -> tuple[dict[str, date], dict[str, str]]:
    """Effective and comment dates: the API's fields when it has them, else sentences of the text."""
    dates: dict[str, date] = {}
    where: dict[str, str] = {}
    for name in ("effective_on", "comments_close_on"):
        raw = entry.fields.get(name)
        if isinstance(raw, str):
            dates[name] = date.fromisoformat(raw)
            where[name] = f"{name} of the Federal Register document"
    for name, found in find_dates(f"{entry.title}. {entry.summary}").items():
        if name not in dates:
            dates[name], where[name] = found.on, found.sentence
    return dates, where


def _record_entry(*, session: Session, source: Source, fetch: Fetch, snapshot_id: int | None,
                  entry: StreamEntry, anchor_id: int, known: StreamEntryRecord | None) -> Change | None:
    blocks = entry.blocks()
    rules = rules_for(source)
    version = Version(source_id=source.id, snapshot_id=snapshot_id, created_at=fetch.fetched_at,
                      text_hash=blocks_hash(blocks), blocks=blocks_to_json(blocks), block_count=len(blocks),
                      rules=rules.to_json(), rules_hash=rules.hash)
    session.add(version)
    session.flush()
    old: list[Block] = []
    from_id = anchor_id
    if known is not None and known.version_id is not None:
        previous = session.get(Version, known.version_id)
        if previous is not None:
            # The entry's blocks (the baseline's version holds every entry it listed).
            under = (*entry.path, known.title)
            old = [b for b in blocks_from_json(previous.blocks) if b.path[:len(under)] == under]
            from_id = known.version_id
    diff = diff_blocks(old, blocks)
    dates, where = _entry_dates(entry)
    change = Change(source_id=source.id, from_version_id=from_id, to_version_id=version.id or 0,
                    detected_at=fetch.fetched_at, sections=diff.sections, added=diff.added,
                    removed=diff.removed, modified=diff.modified, diff=diff.to_json(),
                    entry=entry.public() | {"fields": entry.fields, "update": known is not None},
                    effective_on=dates.get("effective_on"), updated_on=dates.get("updated_on"),
                    comments_close_on=dates.get("comments_close_on"), dates_from=where or None)
    session.add(change)
    _remember(session=session, source=source, entry=entry, fetch=fetch, known=known, version_id=version.id)
    return change


def _remember(*, session: Session, source: Source, entry: StreamEntry, fetch: Fetch,
              known: StreamEntryRecord | None, version_id: int | None) -> None:
    if known is None:
        session.add(StreamEntryRecord(source_id=source.id, entry_id=entry.id, title=entry.title[:1000],
                                      url=entry.url, published=(entry.published or "")[:64] or None,
                                      content_hash=entry.content_hash, version_id=version_id,
                                      first_seen_at=fetch.fetched_at, last_seen_at=fetch.fetched_at))
        return
    known.title, known.url, known.content_hash = entry.title[:1000], entry.url, entry.content_hash
    known.last_seen_at = fetch.fetched_at
    if version_id is not None:
        known.version_id = version_id


def _anchor(*, session: Session, source: Source, fetch: Fetch, snapshot_id: int | None,
            entries: Sequence[StreamEntry]) -> tuple[int, bool]:
    """The stream's first version (every entry its baseline listed), created on the first check."""
    first = session.exec(select(Version.id).where(Version.source_id == source.id)
                         .order_by(col(Version.id)).limit(1)).first()
    if first is not None:
        return first, False
    blocks = [b for e in entries for b in e.blocks()]
    rules = rules_for(source)
    version = Version(source_id=source.id, snapshot_id=snapshot_id, created_at=fetch.fetched_at,
                      text_hash=blocks_hash(blocks), blocks=blocks_to_json(blocks), block_count=len(blocks),
                      rules=rules.to_json(), rules_hash=rules.hash)
    session.add(version)
    session.flush()
    return version.id or 0, True


def record_stream(*, session: Session, source: Source, state: CheckState, fetch: Fetch,
                  on_change: ChangeHook | None, kind: Extraction) -> CheckOutcome:
    """Record one check of a stream: new and updated entries become changes (none on the baseline)."""
    assert kind.entries is not None  # a stream kind has its entry parser (Extraction checks it)
    try:
        entries = list({e.id: e for e in kind.entries(fetch.body)}.values())
    except ExtractionError as exc:
        return fail_check(session=session, source=source, state=state, fetch=fetch,
                          error=f"{exc} from {fetch.final_url or fetch.url}", keep_body=True)
    entries = entries[:MAX_ENTRIES_PER_CHECK]
    ids = [e.id for e in entries]
    known: dict[str, StreamEntryRecord] = {}
    for i in range(0, len(ids), 500):
        known.update((r.entry_id, r) for r in session.exec(select(StreamEntryRecord).where(
            StreamEntryRecord.source_id == source.id, col(StreamEntryRecord.entry_id).in_(ids[i:i + 500]))))
    fresh = [e for e in entries if e.id not in known or known[e.id].content_hash != e.content_hash]
    if not fresh:
        for rec in known.values():
            rec.last_seen_at = fetch.fetched_at
        succeed_check(state, fetch, UNCHANGED)
        return CheckOutcome(source.id, UNCHANGED)
    snapshot_id = snapshot_of(session=session, source=source, fetch=fetch)
    anchor_id, baseline = _anchor(session=session, source=source, fetch=fetch, snapshot_id=snapshot_id,
                                  entries=entries)
    since = since_of(source.options) if baseline else None
    changes: list[Change] = []
    for entry in reversed(fresh):  # oldest first: changes are numbered in publication order
        published = _published_on(entry)
        news = not baseline or (since is not None and published is not None and published >= since)
        if not news:
            _remember(session=session, source=source, entry=entry, fetch=fetch, known=None, version_id=anchor_id)
            continue
        change = _record_entry(session=session, source=source, fetch=fetch, snapshot_id=snapshot_id,
                               entry=entry, anchor_id=anchor_id, known=known.get(entry.id))
        if change is not None:
            changes.append(change)
    session.flush()
    for change in changes:
        index_change(session=session, change=change)
        if on_change is not None:
            on_change(session, change)
    result = NEW if baseline and not changes else CHANGED if changes else UNCHANGED
    succeed_check(state, fetch, result)
    sections = list(dict.fromkeys(s for c in changes for s in c.sections))
    return CheckOutcome(source.id, result, version_id=changes[-1].to_version_id if changes else anchor_id,
                        change_id=changes[-1].id if changes else None, sections=sections)

