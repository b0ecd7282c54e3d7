"""A source's history as one timeline: versions and their changes, failed checks, recoveries, edits.

What is stored says it: each Version (the first one is the baseline; every later one is the
`to_version` of a Change, marked technical, cosmetic, reverted or quiet), the error Snapshots a
failing streak keeps (the first response of each kind of error), the check state (a streak still
going on), the audit events of the source itself (added, edited, disabled, enabled, taken over),
and the checks people asked for (Check now) with how each ended.

The check that ends a failing streak is kept as a `recovery` snapshot (a check that succeeds
without a new text leaves no other trace). For streaks recorded before that, a recovery is shown
where the stored history proves it: before the first version recorded after a failure (the
checks had succeeded again by then), or at the latest success when the source has been healthy
since.

Newest first, a page at a time: each table is read only as far as the page needs (never a
version's blocks or a change's diff), so a source with years of history costs one page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from tracker.store.models import AuditEvent, Change, CheckRequest, CheckState, Snapshot, Version

PAGE = 30
MAX_PAGES = 100
VERSION, ERROR, RECOVERY, FAILING, EDIT, REQUEST = "version", "error", "recovery", "failing", "edit", "request"


@dataclass(frozen=True)
class HistoryEvent:
    """One line of the timeline."""

    at: datetime
    kind: str  # version | error | recovery | failing | edit | request
    title: str
    detail: str = ""
    tags: tuple[str, ...] = ()
    change_id: int | None = None
    version_id: int | None = None
    sections: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind, "title": self.title, "detail": self.detail,
                "tags": list(self.tags), "change_id": self.change_id, "version_id": self.version_id,
                "sections": list(self.sections)}


@dataclass
class History:
    """A page of a source's timeline, newest first, and whether older events follow."""

    events: list[HistoryEvent] = field(default_factory=list)
    page: int = 1
    more: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"page": self.page, "more": self.more, "events": [e.to_json() for e in self.events]}


def _change_tags(c: Any) -> tuple[str, ...]:
    tags = [name for name, on in (("technical", c.technical), ("cosmetic", c.cosmetic), ("quiet", c.quiet)) if on]
    if c.reverts_to_version_id is not None:
        tags.append("reverted")
    return tuple(tags)


def _change_detail(c: Any) -> str:
    parts = [f"+{c.added} −{c.removed} ~{c.modified} blocks"]
    if c.reverts_to_at is not None:
        parts.append(f"the text of {c.reverts_to_at.date().isoformat()} again")
    return "; ".join(parts)


_CHANGE_COLUMNS = ("id", "to_version_id", "technical", "cosmetic", "quiet", "reverts_to_version_id", "reverts_to_at",
                   "sections", "added", "removed", "modified")


def _versions(session: Session, source_id: str, limit: int) -> list[HistoryEvent]:
    rows = list(session.exec(select(Version.id, Version.created_at, Version.block_count)
                             .where(Version.source_id == source_id)
                             .order_by(col(Version.id).desc()).limit(limit)).all())
    ids = [vid for vid, _, _ in rows]
    columns = [col(getattr(Change, name)) for name in _CHANGE_COLUMNS]  # never the diff: it can be large
    changes = {c.to_version_id: c for c in session.execute(
        sa.select(*columns).where(col(Change.to_version_id).in_(ids))).all()} if ids else {}
    first = session.exec(select(Version.id).where(Version.source_id == source_id)
                         .order_by(col(Version.id)).limit(1)).first()
    out = []
    for vid, at, blocks in rows:
        c = changes.get(vid)
        if c is None:
            title = f"first version v{vid}" if vid == first else f"version v{vid}"
            out.append(HistoryEvent(at, VERSION, title, f"{blocks} blocks", version_id=vid))
            continue
        tags = _change_tags(c)
        what = "technical change" if c.technical else "change"
        out.append(HistoryEvent(at, VERSION, f"{what} #{c.id} (version v{vid})", _change_detail(c), tags,
                                change_id=c.id, version_id=vid, sections=tuple(c.sections or ())))
    return out


def _checks(session: Session, source_id: str, limit: int) -> list[HistoryEvent]:
    """Failed checks (the first of each streak and each new kind of error) and the recoveries that ended them."""
    rows = session.exec(select(Snapshot.fetched_at, Snapshot.purpose, Snapshot.error, Snapshot.http_status)
                        .where(Snapshot.source_id == source_id, col(Snapshot.purpose).in_((ERROR, RECOVERY)))
                        .order_by(col(Snapshot.fetched_at).desc(), col(Snapshot.id).desc()).limit(limit)).all()
    return [HistoryEvent(at, ERROR, "check failed" + (f" (HTTP {status})" if status else ""), error or "")
            if purpose == ERROR else HistoryEvent(at, RECOVERY, "recovered", "the check succeeded again")
            for at, purpose, error, status in rows]


_EDITS = {"added": "added", "updated": "edited", "disabled": "disabled", "enabled": "enabled"}


def _edit_title(action: str, actor: str, after: Mapping[str, Any] | None) -> str:
    verb = action.removeprefix("source.")
    if verb == "managed_by":
        where = (after or {}).get("managed_by")
        what = "taken over in the browser" if where == "ui" else "handed back to its file"
        return f"{what} by {actor}"
    return f"{_EDITS.get(verb, verb.replace('_', ' '))} by {actor}"


def _edits(session: Session, source_id: str, limit: int) -> list[HistoryEvent]:
    rows = session.exec(select(AuditEvent.at, AuditEvent.action, AuditEvent.actor, AuditEvent.after)
                        .where(AuditEvent.entity_type == "source", AuditEvent.entity_id == source_id,
                               # The timeline tells check requests from their own table, with outcomes.
                               AuditEvent.action != "source.check_requested")
                        .order_by(col(AuditEvent.seq).desc()).limit(limit)).all()
    out = []
    for at, action, actor, after in rows:
        keys = ", ".join(sorted(k for k in (after or {}) if k != "id")) if action == "source.updated" else ""
        out.append(HistoryEvent(at, EDIT, _edit_title(action, actor, after), f"fields: {keys}" if keys else ""))
    return out


def _requests(session: Session, source_id: str, limit: int) -> list[HistoryEvent]:
    """Checks a person asked for (Check now), with how each ended."""
    rows = session.exec(select(CheckRequest).where(CheckRequest.source_id == source_id)
                        .order_by(col(CheckRequest.id).desc()).limit(limit)).all()
    out = []
    for r in rows:
        if r.state == "done":
            ended = f"done: {(r.outcome or '').replace('_', ' ')}"
        else:
            ended = f"{r.state}: {r.error}" if r.error else r.state
        out.append(HistoryEvent(r.requested_at, REQUEST, f"check #{r.id} asked for by {r.requested_by}", ended))
    return out


def _inferred_recoveries(events: list[HistoryEvent], state: CheckState | None) -> list[HistoryEvent]:
    """Recoveries of streaks recorded before recoveries were (see the module docstring), from events newest first."""
    out: list[HistoryEvent] = []
    newer: HistoryEvent | None = None
    for e in events:  # newest first: `newer` is the event just after e in time
        if e.kind == ERROR and newer is not None and newer.kind == VERSION:
            out.append(HistoryEvent(newer.at - timedelta(microseconds=1), RECOVERY, "recovered",
                                    "checks succeeded again by the next version"))
        if e.kind in (ERROR, VERSION, RECOVERY):
            newer = e
    latest = next((e for e in events if e.kind in (ERROR, VERSION, RECOVERY)), None)
    if (latest is not None and latest.kind == ERROR and state is not None and state.consecutive_failures == 0
            and state.last_success_at is not None and state.last_success_at > latest.at):
        out.append(HistoryEvent(state.last_success_at, RECOVERY, "recovered",
                                "checks succeed again (this is the latest successful check)"))
    return out


def _failing(state: CheckState | None) -> list[HistoryEvent]:
    if state is None or not state.consecutive_failures or state.last_checked_at is None:
        return []
    n = state.consecutive_failures
    since = f" since {state.error_since:%Y-%m-%d %H:%M} UTC" if state.error_since else ""
    return [HistoryEvent(state.last_checked_at, FAILING, f"failing: {n} check{'s' if n != 1 else ''} in a row{since}",
                         state.last_error or "")]


def source_history(*, session: Session, source_id: str, page: int = 1, per_page: int = PAGE) -> History:
    """A page (1-based, at most MAX_PAGES) of a source's timeline, newest first."""
    page = max(1, min(page, MAX_PAGES))
    need = page * per_page + 1  # each kind is read as far as this page and one more event
    state = session.get(CheckState, source_id)
    events = sorted(_versions(session, source_id, need) + _checks(session, source_id, need)
                    + _edits(session, source_id, need) + _requests(session, source_id, need),
                    key=lambda e: e.at, reverse=True)
    # The streak still going on comes before the failure that is its latest check.
    events = sorted(events + _inferred_recoveries(events, state) + _failing(state),
                    key=lambda e: (e.at, e.kind == FAILING), reverse=True)
    start = (page - 1) * per_page
    shown = events[start:start + per_page]
    return History(shown, page, len(events) > start + per_page and page < MAX_PAGES)
