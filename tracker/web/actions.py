"""Form actions (POST, CSRF token, editor role): the PM workflow and, for admins, users.

Each action calls the same service as the CLI, so it writes the same audit events, with the
logged-in user as the actor; then it redirects back with a one-time message (post/redirect/get).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from tracker.accounts import UserError, add_user, set_role
from tracker.impacts.workflow import WorkflowError, add_note, mark_change, mark_impact
from tracker.store.db import session_scope
from tracker.store.models import User
from tracker.web.context import AdminUser, EditorUser, ctx, flash, safe_next

router = APIRouter(include_in_schema=False)

LABELS = {
    "needs_update": "needs update",
    "in_progress": "in progress",
    "updated": "updated",
    "dismissed": "dismissed",
    "open": "open",
}


def _do(request: Request, back: str, work: Callable[[Session], str]) -> Response:
    """Run one action in its own transaction; flash what happened (or why not) and go back."""
    response = RedirectResponse(back, status_code=303)
    try:
        with session_scope(ctx(request).engine) as s:
            message = work(s)
    except (WorkflowError, UserError) as exc:
        flash(request, response, str(exc), "error")
        return response
    flash(request, response, message)
    return response


def _limit(request: Request) -> int:
    return ctx(request).settings.max_note_chars


def _impact_back(impact_id: int, next_url: str) -> str:
    return safe_next(next_url, f"/impacts/{impact_id}")


@router.post("/impacts/{impact_id}/status")
def impact_status(
    request: Request,
    impact_id: int,
    status: Annotated[str, Form()],
    user: EditorUser,
    note: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Move an impact to needs update, in progress, updated (or back to open)."""

    def work(s: Session) -> str:
        mark_impact(session=s, impact_id=impact_id, by=user.email, status=status, note=note or None,
                    max_note_chars=_limit(request))
        return f"impact #{impact_id} marked {LABELS.get(status, status)}"

    return _do(request, _impact_back(impact_id, next), work)


@router.post("/impacts/{impact_id}/dismiss")
def impact_dismiss(
    request: Request,
    impact_id: int,
    user: EditorUser,
    reason: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Dismiss an impact: the change does not need the SOP updated; a reason is required."""

    def work(s: Session) -> str:
        mark_impact(session=s, impact_id=impact_id, by=user.email, status="dismissed", note=reason or None,
                    max_note_chars=_limit(request))
        return f"impact #{impact_id} dismissed"

    return _do(request, _impact_back(impact_id, next), work)


@router.post("/impacts/{impact_id}/assign")
def impact_assign(
    request: Request,
    impact_id: int,
    user: EditorUser,
    assignee: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Reassign an impact (an empty assignee unassigns it)."""

    def work(s: Session) -> str:
        mark_impact(session=s, impact_id=impact_id, by=user.email, assignee=assignee.strip())
        return f"impact #{impact_id} " + (f"assigned to {assignee.strip()}" if assignee.strip() else "unassigned")

    return _do(request, _impact_back(impact_id, next), work)


@router.post("/impacts/{impact_id}/due")
def impact_due(
    request: Request,
    impact_id: int,
    user: EditorUser,
    due: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Change an impact's due date."""

    def work(s: Session) -> str:
        try:
            when = date.fromisoformat(due.strip())
        except ValueError:
            raise WorkflowError(f"impact {impact_id}: due date {due!r} is not a date like 2026-12-01") from None
        mark_impact(session=s, impact_id=impact_id, by=user.email, due=when)
        return f"impact #{impact_id} is now due {when.isoformat()}"

    return _do(request, _impact_back(impact_id, next), work)


@router.post("/impacts/{impact_id}/notes")
def impact_note(
    request: Request,
    impact_id: int,
    user: EditorUser,
    text: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Add a note to an impact."""

    def work(s: Session) -> str:
        add_note(session=s, impact_id=impact_id, by=user.email, text=text, max_note_chars=_limit(request))
        return f"note added to impact #{impact_id}"

    return _do(request, _impact_back(impact_id, next), work)


@router.post("/changes/{change_id}/mark")
def change_mark(
    request: Request,
    change_id: int,
    status: Annotated[str, Form()],
    user: EditorUser,
    note: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Mark every impact of a change at once (all or nothing)."""

    def work(s: Session) -> str:
        done = mark_change(session=s, change_id=change_id, by=user.email, status=status, note=note or None,
                           max_note_chars=_limit(request))
        if not done:
            return f"every impact of change #{change_id} was already {LABELS.get(status, status)}"
        return (
            f"{len(done)} impact{'s' if len(done) != 1 else ''} of change #{change_id} marked "
            f"{LABELS.get(status, status)}"
        )

    return _do(request, safe_next(next, f"/changes/{change_id}"), work)


@router.post("/users")
def user_add(
    request: Request,
    user: AdminUser,
    email: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "viewer",
    password: Annotated[str, Form()] = "",
) -> Response:
    """Add a user (admins only; audited as user.added)."""

    def work(s: Session) -> str:
        added = add_user(session=s, email=email, password=password, role=role, by=user.email)
        return f"added {added.email} as {added.role}"

    return _do(request, "/users", work)


@router.post("/users/{user_id}/role")
def user_role(request: Request, user_id: int, role: Annotated[str, Form()], user: AdminUser) -> Response:
    """Change a user's role (admins only; audited as user.role)."""

    def work(s: Session) -> str:
        target = s.get(User, user_id)
        if target is None:
            raise UserError(f"no user #{user_id}: see the list of users")
        if target.id == user.id and role != "admin":
            raise UserError("you cannot take the admin role from yourself: ask another admin")
        set_role(session=s, email=target.email, role=role, by=user.email)
        return f"{target.email} is now {role}"

    return _do(request, "/users", work)
