"""Sources managed in the browser: /sources/new, /sources/ID/edit, disable and enable (editors and admins).

Each form posts every field of a sources-file entry (tracker.web.forms) to the data layer
(tracker.declare.manage), which validates it as `tracker sources sync` does and audits it as a sync
does. A refused form is shown again with what was typed and the sync's messages beside it. A source
managed in its file is refused (ManagedElsewhere) unless the form's "take it over in the browser"
box is ticked: it then becomes UI-managed, audited as source.managed_by, and file syncs leave it
alone until `tracker sources manage ID --by file` hands it back.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from tracker.declare.manage import create_source, set_source_enabled, source_to_spec_dict, update_source
from tracker.declare.managed import InvalidSpec
from tracker.impacts.workflow import WorkflowError
from tracker.store.db import session_scope
from tracker.store.models import Source
from tracker.web.context import CurrentUser, EditorUser, Problem, ReadSession, Viewer, ctx, flash, render
from tracker.web.errors import http_code, invalid, problems_json
from tracker.web.forms import source_entry, source_form
from tracker.web.source_preview import run_preview

router = APIRouter(include_in_schema=False)


def kinds() -> Any:
    """The registry of source kinds (spiders.KINDS; imported when a form needs it, as it imports Scrapy)."""
    from spiders import KINDS

    return KINDS


def must_edit(user: Viewer) -> None:
    """Viewers get no forms: a 403 page saying who may edit."""
    if not user.can_edit:
        raise Problem(403, f"{user.email} is a {user.role}: viewers can read but not change anything; "
                           "ask an admin for the editor role")


def _form_page(request: Request, user: Viewer, *, form: dict[str, Any], source: Source | None,
               problems: list[str] | None = None, status: int = 200, take_over: bool = False) -> Response:
    return render(request, "source_form.html", user, status=status, form=form, source=source,
                  problems=problems or [],
                  kind_options=[(name, f"{name}: {k.description}") for name, k in kinds().items()],
                  take_over=take_over, nav="sources")


async def _form(request: Request) -> dict[str, Any]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


@router.get("/sources/new")
def new_source_page(request: Request, user: CurrentUser) -> Response:
    """The add-source form, with the live rule preview."""
    must_edit(user)
    return _form_page(request, user, form={"kind": "html"}, source=None)


@router.post("/sources/new")
async def new_source(request: Request, user: EditorUser) -> Response:
    """Add a source managed in the browser (audited as source.added)."""
    form = await _form(request)
    entry, problems = source_entry(form)
    if problems:
        return _form_page(request, user, form=form, source=None, problems=problems, status=422)
    try:
        with session_scope(ctx(request).engine) as s:
            row = create_source(session=s, data=entry, actor=user.email, kinds=kinds())
            source_id = row.id
    except WorkflowError as exc:
        return _form_page(request, user, form=form, source=None, problems=problems_json(exc), status=http_code(exc))
    response = RedirectResponse(f"/sources/{source_id}", status_code=303)
    flash(request, response, f"source {source_id} added: press Check now to record its first version")
    return response


def _source(s: Any, source_id: str) -> Source:
    row = s.get(Source, source_id)
    if row is None:
        raise Problem(404, f"no source {source_id!r}: see the list of sources at /sources")
    assert isinstance(row, Source)
    return row


@router.post("/sources/preview")
async def preview_form(request: Request, user: EditorUser) -> Response:
    """The form's Preview button: the form's fields as an entry, previewed as POST /api/sources/preview does."""
    form = await _form(request)
    entry, problems = source_entry(form)
    if problems:
        return invalid(problems)
    entry.setdefault("url", "")
    try:
        return JSONResponse(jsonable_encoder(await run_in_threadpool(run_preview, request, entry)))
    except InvalidSpec as exc:
        return invalid(exc.problems)


@router.get("/sources/{source_id}/edit")
def edit_source_page(request: Request, source_id: str, user: CurrentUser, s: ReadSession) -> Response:
    """The edit form of a source: every field of its sources-file entry."""
    must_edit(user)
    row = _source(s, source_id)
    return _form_page(request, user, form=source_form(source_to_spec_dict(row)), source=row)


@router.post("/sources/{source_id}/edit")
async def edit_source(request: Request, source_id: str, user: EditorUser, s: ReadSession) -> Response:
    """Save a source's fields (audited as source.updated); a file-managed one only with take_over ticked."""
    row = _source(s, source_id)
    form = await _form(request)
    take_over = bool(form.get("take_over"))
    entry, problems = source_entry(form)
    entry.pop("id", None)
    if problems:
        return _form_page(request, user, form=form, source=row, problems=problems, status=422, take_over=take_over)
    try:
        with session_scope(ctx(request).engine) as ws:
            changes = update_source(session=ws, source_id=source_id, data=entry, actor=user.email, kinds=kinds(),
                                    take_over=take_over)
    except WorkflowError as exc:
        return _form_page(request, user, form=form, source=row, problems=problems_json(exc),
                          status=http_code(exc), take_over=take_over)
    response = RedirectResponse(f"/sources/{source_id}", status_code=303)
    what = ", ".join(sorted(changes)) if changes else "nothing changed"
    flash(request, response, f"source {source_id} saved ({what})")
    return response


async def _set_enabled(request: Request, source_id: str, user: Viewer, enabled: bool) -> Response:
    form = await _form(request)
    response = RedirectResponse(f"/sources/{source_id}", status_code=303)
    try:
        with session_scope(ctx(request).engine) as s:
            changes = set_source_enabled(session=s, source_id=source_id, enabled=enabled, actor=user.email,
                                         take_over=bool(form.get("take_over")))
    except WorkflowError as exc:  # ManagedElsewhere among them: the message says how to take it over
        flash(request, response, str(exc), "error")
        return response
    state = "enabled" if enabled else "disabled"
    flash(request, response, f"source {source_id} {state}" if "enabled" in changes
          else f"source {source_id} was already {state}")
    return response


@router.post("/sources/{source_id}/disable")
async def disable_source(request: Request, source_id: str, user: EditorUser) -> Response:
    """Disable a source: no more checks; its history stays (audited as source.disabled)."""
    return await _set_enabled(request, source_id, user, False)


@router.post("/sources/{source_id}/enable")
async def enable_source(request: Request, source_id: str, user: EditorUser) -> Response:
    """Enable a source again (audited as source.enabled)."""
    return await _set_enabled(request, source_id, user, True)
