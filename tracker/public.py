"""The public (JSON) forms of domain rows, shared by the CLI's --json output and the web API."""

from __future__ import annotations

from datetime import date
from typing import Any

from tracker.audit.trail import StoredEvent
from tracker.impacts.workflow import allowed_next, is_overdue
from tracker.store.models import AuditEvent, Change, Impact, Sop


def change_public(change: Change, *, kind: str | None = None) -> dict[str, Any]:
    """A change without its diff: where, when, which sections, how many blocks, when it takes
    effect, and for a stream's change the entry it adds (id, title, url, published)."""
    entry = change.entry
    return {"id": change.id, "source_id": change.source_id, "kind": kind, "detected_at": change.detected_at,
            "from_version_id": change.from_version_id, "to_version_id": change.to_version_id,
            "technical": change.technical, "cosmetic": change.cosmetic, "reverts_to": reverts_to_public(change),
            "quiet": change.quiet, "sections": change.sections,
            "added": change.added, "removed": change.removed, "modified": change.modified,
            "effective_on": change.effective_on, "updated_on": change.updated_on,
            "comments_close_on": change.comments_close_on, "dates_from": change.dates_from,
            "entry": {k: entry.get(k) for k in ("id", "title", "url", "published")} if entry else None}


def reverts_to_public(change: Change) -> dict[str, Any] | None:
    """The earlier version a change's text returns to, and its date; None when it is no revert."""
    if change.reverts_to_version_id is None:
        return None
    return {"version_id": change.reverts_to_version_id, "date": change.reverts_to_at}


def impact_public(impact: Impact, *, change: Change | None = None, sop: Sop | None = None,
                  today: date | None = None) -> dict[str, Any]:
    """An impact with its reasons, assignment, due date, overdue flag and the moves allowed next."""
    return {"id": impact.id, "change_id": impact.change_id, "sop_id": impact.sop_id,
            "sop_title": sop.title if sop else None, "source_id": impact.source_id,
            "status": impact.status, "allowed_next": list(allowed_next(impact.status)),
            "reasons": impact.reasons, "assignee": impact.assignee, "due_date": impact.due_date,
            "overdue": is_overdue(impact, today=today),
            "detected_at": change.detected_at if change else None, "sections": change.sections if change else None,
            "created_at": impact.created_at, "updated_at": impact.updated_at, "resolved_at": impact.resolved_at,
            "resolved_by": impact.resolved_by, "decision_note": impact.decision_note}


def audit_event_public(ev: AuditEvent | StoredEvent) -> dict[str, Any]:
    """An audit event: every field its hash covers (time exactly as hashed), its id and hash."""
    return {"seq": ev.seq, "id": ev.id, "at": ev.at.isoformat(timespec="microseconds"), "actor": ev.actor,
            "action": ev.action, "entity_type": ev.entity_type, "entity_id": ev.entity_id,
            "before": ev.before, "after": ev.after, "prev_hash": ev.prev_hash, "hash": ev.hash}
