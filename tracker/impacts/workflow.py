"""The PM workflow on impacts: status transitions, assignment, due dates, notes — each audited.

    open ──► needs_update ──► in_progress ──► updated
      └──────────┴────────────────┴─────────► dismissed   (a reason is required)
    updated | dismissed ──► open                          (reopening is explicit)

Every function here takes the caller's session and never commits: an impact's change and its
audit events commit together.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from tracker.audit.trail import SYSTEM, append_event
from tracker.config import DEFAULT_MAX_NOTE_CHARS
from tracker.impacts.statuses import FINAL, STATUSES, TRANSITIONS
from tracker.store.db import utcnow
from tracker.store.models import Impact, ImpactNote

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class WorkflowError(ValueError):
    """An action on an impact was refused; the message says what and what is allowed."""


class NotFound(WorkflowError):
    """The impact or change acted on does not exist, or has no impacts (the API answers 404)."""


class Conflict(WorkflowError):
    """The action does not fit the impact's current state (the API answers 409)."""


class NoteTooLong(WorkflowError):
    """A note or dismissal reason is longer than TRACKER_MAX_NOTE_CHARS (the API answers 413)."""

    def __init__(self, what: str, length: int, limit: int) -> None:
        super().__init__(f"{what}: the note is {length:,} characters; notes and dismissal reasons may be at most "
                         f"{limit:,} (TRACKER_MAX_NOTE_CHARS): shorten it, or split it into several notes")
        self.length, self.limit = length, limit


def check_note(what: str, note: str | None, limit: int) -> None:
    """Raise NoteTooLong when the note is over the limit: notes are kept forever, in the audit trail too."""
    if note is not None and len(note) > limit:
        raise NoteTooLong(what, len(note), limit)


def allowed_next(status: str) -> tuple[str, ...]:
    """The statuses an impact in `status` may move to."""
    return TRANSITIONS.get(status, ())


def check_transition(impact_id: int | None, current: str, target: str, note: str | None) -> None:
    """Raise WorkflowError unless current -> target is legal (with a note when dismissing)."""
    if target not in STATUSES:
        raise WorkflowError(f"impact {impact_id}: unknown status {target!r}; statuses are {', '.join(STATUSES)}")
    allowed = allowed_next(current)
    if target == current:
        raise Conflict(f"impact {impact_id} is already {current}; allowed next: {_list(allowed)}")
    if target not in allowed:
        raise Conflict(f"impact {impact_id}: cannot go from {current} to {target}; "
                            f"allowed from {current}: {_list(allowed)}")
    if target == "dismissed" and not (note and note.strip()):
        raise WorkflowError(f"impact {impact_id}: dismissing needs a reason (give a note saying why)")


def _list(statuses: tuple[str, ...]) -> str:  # members of ImpactStatus are their text
    return ", ".join(statuses) if statuses else "none"


def check_actor(by: str) -> str:
    """The actor of an action: an email address, or "system"."""
    by = (by or "").strip()
    if by != SYSTEM and not _EMAIL.match(by):
        raise WorkflowError(f"who is acting must be an email address (or 'system'), got {by!r}")
    return by


def due_date_for(*, detected_at: datetime, review_days: int, effective_on: date | None = None,
                 lead_days: int = 14) -> date:
    """The date an impact is due: the change's detection day (UTC) plus the SOP's review days, or
    earlier when the change takes effect sooner: lead_days before its effective date, if that
    day is still ahead of the detection day (a rule effective tomorrow cannot be due last week)."""
    when = detected_at if detected_at.tzinfo else detected_at.replace(tzinfo=UTC)
    detected = when.astimezone(UTC).date()
    due = detected + timedelta(days=review_days)
    if effective_on is not None:
        before = effective_on - timedelta(days=lead_days)
        if detected < before < due:
            due = before
        elif detected < effective_on < due:  # too close for the lead: never due after it applies
            due = effective_on
    return due


def is_overdue(impact: Impact, *, today: date | None = None) -> bool:
    """True when the impact is not decided yet and its due date has passed."""
    if impact.status in FINAL or impact.due_date is None:
        return False
    return impact.due_date < (today or utcnow().date())


def _lock(session: Session, where: str, value: int) -> None:
    """Serialise decisions: whoever decides second sees the first decision (no lost update)."""
    if session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks: a write that changes nothing takes the database write lock
        # before we read (PostgreSQL gets SELECT … FOR UPDATE instead).
        session.execute(sa.text(f"UPDATE impact SET id = id WHERE {where} = :v"), {"v": value})


def _load(session: Session, impact_id: int) -> Impact:
    _lock(session, "id", impact_id)
    impact = session.exec(select(Impact).where(Impact.id == impact_id).with_for_update()
                          .execution_options(populate_existing=True)).first()
    if impact is None:
        raise NotFound(f"no impact {impact_id}: see `tracker impacts list`")
    return impact


def _set_status(*, session: Session, impact: Impact, by: str, status: str, note: str | None,
                now: datetime) -> None:
    before: dict[str, Any] = {"status": impact.status}
    after: dict[str, Any] = {"status": status}
    if note:
        after["note"] = note
    if status in FINAL:
        impact.resolved_at, impact.resolved_by, impact.decision_note = now, by, note
        after.update(resolved_by=by, decision_note=note)
    elif impact.status in FINAL:
        # Reopening: the earlier decision no longer stands.
        before.update(resolved_by=impact.resolved_by, decision_note=impact.decision_note)
        impact.resolved_at = impact.resolved_by = impact.decision_note = None
    impact.status = status
    append_event(session=session, actor=by, action="impact.status", entity_type="impact",
                 entity_id=impact.id or 0, before=before, after=after, at=now)


def _add_note(*, session: Session, impact: Impact, by: str, text: str, now: datetime) -> ImpactNote:
    note = ImpactNote(impact_id=impact.id or 0, author=by, text=text, created_at=now)
    session.add(note)
    session.flush()
    append_event(session=session, actor=by, action="impact.note", entity_type="impact",
                 entity_id=impact.id or 0, after={"note_id": note.id, "text": text}, at=now)
    return note


def mark_impact(*, session: Session, impact_id: int, by: str, status: str | None = None,
                note: str | None = None, assignee: str | None = None, due: date | None = None,
                max_note_chars: int = DEFAULT_MAX_NOTE_CHARS) -> Impact:
    """Change an impact's status, assignee and/or due date, with an optional note; one audit event each.

    assignee="" unassigns. A note given with a status is kept as the decision note on
    updated/dismissed (the dismissal reason) and added to the impact's notes.
    """
    by = check_actor(by)
    note = note.strip() if note and note.strip() else None
    check_note(f"impact {impact_id}", note, max_note_chars)
    if status is None and note is None and assignee is None and due is None:
        raise WorkflowError(f"impact {impact_id}: nothing to change (give a status, note, assignee or due date)")
    impact = _load(session, impact_id)
    if status is not None:
        check_transition(impact.id, impact.status, status, note)
    new_assignee: str | None = None
    if assignee is not None:
        new_assignee = assignee.strip() or None
        if new_assignee is not None and not _EMAIL.match(new_assignee):
            raise WorkflowError(f"impact {impact_id}: the assignee must be an email address, got {assignee!r}")
    now = utcnow()
    changed = False
    if status is not None:
        _set_status(session=session, impact=impact, by=by, status=status, note=note, now=now)
        changed = True
    if assignee is not None and new_assignee != impact.assignee:
        append_event(session=session, actor=by, action="impact.assigned", entity_type="impact",
                     entity_id=impact.id or 0, before={"assignee": impact.assignee},
                     after={"assignee": new_assignee}, at=now)
        impact.assignee = new_assignee
        changed = True
    if due is not None and due != impact.due_date:
        append_event(session=session, actor=by, action="impact.due_date", entity_type="impact",
                     entity_id=impact.id or 0, before={"due_date": impact.due_date},
                     after={"due_date": due}, at=now)
        impact.due_date = due
        changed = True
    if note is not None:
        _add_note(session=session, impact=impact, by=by, text=note, now=now)
        changed = True
    if changed:
        impact.updated_at = now
        session.add(impact)
        session.flush()
    return impact


def mark_change(*, session: Session, change_id: int, by: str, status: str,
                note: str | None = None, max_note_chars: int = DEFAULT_MAX_NOTE_CHARS) -> list[Impact]:
    """Move every impact of a change to `status` (those already there are left alone).

    All or nothing: when any impact cannot make the transition, nothing changes and the
    WorkflowError names each refused impact.
    """
    by = check_actor(by)
    check_note(f"change {change_id}", note.strip() if note else None, max_note_chars)
    _lock(session, "change_id", change_id)
    impacts = list(session.exec(select(Impact).where(Impact.change_id == change_id).order_by(col(Impact.id))
                                .with_for_update().execution_options(populate_existing=True)).all())
    if not impacts:
        raise NotFound(f"change {change_id} has no impacts: see `tracker impacts list`")
    todo = [i for i in impacts if i.status != status]
    refused: list[str] = []
    for impact in todo:
        try:
            check_transition(impact.id, impact.status, status, note)
        except WorkflowError as exc:
            refused.append(str(exc))
    if refused:
        raise Conflict(f"change {change_id}: nothing marked {status}, because\n  " + "\n  ".join(refused))
    return [mark_impact(session=session, impact_id=i.id or 0, by=by, status=status, note=note,
                        max_note_chars=max_note_chars) for i in todo]


def add_note(*, session: Session, impact_id: int, by: str, text: str,
             max_note_chars: int = DEFAULT_MAX_NOTE_CHARS) -> ImpactNote:
    """Add a note to an impact (audited as impact.note)."""
    by = check_actor(by)
    text = (text or "").strip()
    if not text:
        raise WorkflowError(f"impact {impact_id}: a note needs some text")
    check_note(f"impact {impact_id}", text, max_note_chars)
    impact = _load(session, impact_id)
    now = utcnow()
    note = _add_note(session=session, impact=impact, by=by, text=text, now=now)
    impact.updated_at = now
    session.add(impact)
    session.flush()
    return note


def notes_for(*, session: Session, impact_id: int) -> list[ImpactNote]:
    """An impact's notes, oldest first."""
    return list(session.exec(select(ImpactNote).where(ImpactNote.impact_id == impact_id)
                             .order_by(col(ImpactNote.id))).all())
