"""Suggested SOPs on the change page: accept (opens an impact) or dismiss, for editors (CSRF checked)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tracker.impacts.suggest import SuggestionError, accept, dismiss
from tracker.store.db import session_scope
from tracker.store.models import Change
from tracker.web.context import EditorUser, ctx, flash

router = APIRouter(include_in_schema=False)


def _act(request: Request, change_id: int, sop_id: str, by: str, *, accepting: bool) -> Response:
    back = f"/changes/{change_id}"
    response = RedirectResponse(back, status_code=303)
    try:
        with session_scope(ctx(request).engine) as s:
            change = s.get(Change, change_id)
            if change is None:
                raise SuggestionError(f"no change #{change_id}")
            if accepting:
                impact = accept(session=s, change=change, sop_id=sop_id, by=by)
                message = f"impact #{impact.id} opened on {sop_id} (suggested, accepted by {by})"
            else:
                dismiss(session=s, change=change, sop_id=sop_id, by=by)
                message = f"{sop_id} is no longer suggested for change #{change_id}"
    except SuggestionError as exc:
        flash(request, response, str(exc), "error")
        return response
    flash(request, response, message)
    return response


@router.post("/changes/{change_id}/suggestions/{sop_id}/accept")
def accept_suggestion(request: Request, change_id: int, sop_id: str, user: EditorUser) -> Response:
    """Open an impact of the change on the suggested SOP."""
    return _act(request, change_id, sop_id, user.email, accepting=True)


@router.post("/changes/{change_id}/suggestions/{sop_id}/dismiss")
def dismiss_suggestion(request: Request, change_id: int, sop_id: str, user: EditorUser) -> Response:
    """Do not suggest this SOP for this change again."""
    return _act(request, change_id, sop_id, user.email, accepting=False)
