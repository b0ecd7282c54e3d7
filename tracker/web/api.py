"""The JSON API under /api: the same reads and actions as the pages (endpoints listed at /docs).

Authentication is the session cookie from POST /login; every mutation also needs the session's
CSRF token in the X-CSRF-Token header (GET /api/me returns it).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field
from sqlmodel import col, select

from tracker.check.diff import Diff, render_text
from tracker.impacts.statuses import STATUSES
from tracker.impacts.workflow import WorkflowError, add_note, mark_change, mark_impact
from tracker.notify.secrets import mask_templates
from tracker.public import audit_event_public, change_public, impact_public
from tracker.store.db import session_scope
from tracker.store.models import Change, Sop, Source, Team
from tracker.web import queries as q
from tracker.web.context import CurrentUser, EditorUser, ReadSession, ctx
from tracker.web.diffview import page_of
from tracker.web.errors import HTTP_CODES, http_code, refused
from tracker.web.filters import DateRange, only_filters

router = APIRouter(prefix="/api", tags=["api"])
__all__ = ["HTTP_CODES", "http_code", "router"]  # refusals become HTTP codes in tracker.web.errors


class ImpactUpdate(BaseModel):
    """Any of: a new status (with a note; dismissing needs one), an assignee ("" unassigns), a due date."""

    status: str | None = Field(None, description=f"one of {', '.join(STATUSES)}")
    note: str | None = None
    assignee: str | None = None
    due: date | None = None


class NoteIn(BaseModel):
    """A note to add to an impact."""

    text: str


class ChangeMark(BaseModel):
    """A status for every impact of a change (all or nothing)."""

    status: str
    note: str | None = None


def _note_limit(request: Request) -> int:
    return ctx(request).settings.max_note_chars


@router.get("/me")
def me(user: CurrentUser) -> dict[str, Any]:
    """The logged-in user, their role, and the CSRF token to send as X-CSRF-Token on mutations."""
    return {"email": user.email, "role": user.role, "can_edit": user.can_edit, "csrf_token": user.csrf}


@router.get("/impacts")
def impacts(
    request: Request, user: CurrentUser, s: ReadSession, team: str = "", source: str = "", status: str = "",
    assignee: str = "", since: str = "", until: str = "",
) -> list[dict[str, Any]]:
    """Impacts (open ones unless a status is given), overdue first; assignee "-" means unassigned;
    since/until (ISO 8601) narrow by when they were raised."""
    only_filters(request, ("team", "source", "status", "assignee", "since", "until"))
    if status and status not in STATUSES:
        raise HTTPException(400, f"unknown status {status!r}; statuses are {', '.join(STATUSES)}")
    rng = DateRange.parse(since, until)
    return [r.to_json() for r in q.impact_rows(s, q.Filters(team, source, status, assignee, rng.since, rng.until))]


@router.get("/impacts/{impact_id}")
def impact(impact_id: int, user: CurrentUser, s: ReadSession) -> dict[str, Any]:
    """One impact with its notes."""
    row = q.impact_row(s, impact_id)
    if row is None:
        raise HTTPException(404, f"no impact {impact_id}")
    return row.to_json() | {
        "notes": [
            {"id": n.id, "author": n.author, "text": n.text, "created_at": n.created_at}
            for n in q.notes_of(s, impact_id)
        ]
    }


@router.post("/impacts/{impact_id}")
def update_impact(request: Request, impact_id: int, body: ImpactUpdate, user: EditorUser) -> dict[str, Any]:
    """Change an impact's status, assignee and/or due date (one audit event each)."""
    try:
        with session_scope(ctx(request).engine) as s:
            done = mark_impact(
                session=s,
                impact_id=impact_id,
                by=user.email,
                status=body.status,
                note=body.note,
                assignee=body.assignee,
                due=body.due,
                max_note_chars=_note_limit(request),
            )
            result = impact_public(done)
    except WorkflowError as exc:
        raise refused(exc) from None
    return result


@router.post("/impacts/{impact_id}/notes", status_code=201)
def post_note(request: Request, impact_id: int, body: NoteIn, user: EditorUser) -> dict[str, Any]:
    """Add a note to an impact."""
    try:
        with session_scope(ctx(request).engine) as s:
            note = add_note(session=s, impact_id=impact_id, by=user.email, text=body.text,
                            max_note_chars=_note_limit(request))
            result = {
                "id": note.id,
                "impact_id": note.impact_id,
                "author": note.author,
                "text": note.text,
                "created_at": note.created_at,
            }
    except WorkflowError as exc:
        raise refused(exc) from None
    return result


@router.get("/changes")
def changes(request: Request, user: CurrentUser, s: ReadSession, source: str = "", limit: int = 100,
            since: str = "", until: str = "") -> list[dict[str, Any]]:
    """Detected changes, newest first; since/until (ISO 8601) narrow by when they were detected."""
    only_filters(request, ("source", "since", "until"))
    rng = DateRange.parse(since, until)
    return [change_public(c) for c in q.recent_changes(s, source=source, limit=max(1, min(limit, 1000)),
                                                       since=rng.since, until=rng.until)]


@router.get("/changes/{change_id}")
def change(change_id: int, user: CurrentUser, s: ReadSession, page: int = 1) -> dict[str, Any]:
    """A change with its diff (blocks with word runs, and as text) and its impacts.

    The diff comes in pages of PAGE_CHANGES block changes: diff_pages says how many there are,
    diff_next is the path of the next one (None on the last).
    """
    found = s.get(Change, change_id)
    if found is None:
        raise HTTPException(404, f"no change {change_id}")
    shown, page, pages, first = page_of(Diff.from_json(found.diff), page)
    return change_public(found) | {
        "diff": shown.to_json(),
        "diff_text": render_text(shown),
        "diff_page": page, "diff_pages": pages, "diff_first": first,
        "diff_next": f"/api/changes/{change_id}?page={page + 1}" if page < pages else None,
        "impacts": [r.to_json() for r in q.impacts_of_change(s, change_id)],
    }


@router.post("/changes/{change_id}/mark")
def mark(request: Request, change_id: int, body: ChangeMark, user: EditorUser) -> list[dict[str, Any]]:
    """Move every impact of a change to a status; the impacts that changed are returned."""
    try:
        with session_scope(ctx(request).engine) as s:
            done = [
                impact_public(i)
                for i in mark_change(session=s, change_id=change_id, by=user.email, status=body.status,
                                     note=body.note, max_note_chars=_note_limit(request))
            ]
    except WorkflowError as exc:
        raise refused(exc) from None
    return done


@router.get("/sops")
def sops(user: CurrentUser, s: ReadSession) -> list[dict[str, Any]]:
    """Every SOP."""
    return [sop.model_dump() for sop in s.exec(select(Sop).order_by(col(Sop.id))).all()]


@router.get("/sops/{sop_id}")
def sop(sop_id: str, user: CurrentUser, s: ReadSession) -> dict[str, Any]:
    """An SOP with its watches, team and impact history."""
    found = s.get(Sop, sop_id)
    if found is None:
        raise HTTPException(404, f"no SOP {sop_id!r}")
    team = s.get(Team, found.team_id) if found.team_id else None
    return found.model_dump() | {
        "team": mask_templates(team.model_dump()) if team else None,  # channel URLs may hold tokens
        "impacts": [r.to_json() for r in q.impacts_of_sop(s, sop_id)],
    }


@router.get("/sources")
def sources(request: Request, user: CurrentUser, s: ReadSession) -> list[dict[str, Any]]:
    """Sources with their health."""
    return [h.to_json() for h in q.source_health(s, default_schedule=ctx(request).settings.default_schedule)]


@router.get("/sources/{source_id}")
def source(request: Request, source_id: str, user: CurrentUser, s: ReadSession) -> dict[str, Any]:
    """One source with its health."""
    if s.get(Source, source_id) is None:
        raise HTTPException(404, f"no source {source_id!r}")
    for h in q.source_health(s, default_schedule=ctx(request).settings.default_schedule):
        if h.source.id == source_id:
            return h.to_json()
    raise HTTPException(404, f"no source {source_id!r}")


@router.get("/audit")
def audit(
    request: Request, user: CurrentUser, s: ReadSession, before: int | None = None, limit: int = 100,
    entity: str = "", since: str = "", until: str = "",
) -> list[dict[str, Any]]:
    """Audit events newest first; `before` pages back by seq; entity "impact:12" and since/until narrow."""
    only_filters(request, ("entity", "since", "until"))
    rng = DateRange.parse(since, until)
    events = q.audit_page(s, before=before, limit=max(1, min(limit, 1000)), entity=entity, since=rng.since,
                          until=rng.until)
    return [audit_event_public(e) for e in events]


@router.get("/audit/verify")
def audit_verify(user: CurrentUser, s: ReadSession) -> dict[str, Any]:
    """Walk the audit hash chain: ok, the head, or the first bad event and why."""
    v = q.verification(s)
    return {
        "ok": v.ok,
        "count": v.count,
        "head_seq": v.head_seq,
        "head_hash": v.head_hash,
        "bad_seq": v.bad_seq,
        "problem": v.problem,
    }
