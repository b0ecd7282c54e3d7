"""SOPs, their watches, and teams managed in the browser (editors and admins).

/sops/new and /sops/ID/edit hold the watch builder: per watch, the source, its section tree to
pick from (the script fills the globs; globs can still be typed), keywords, and the changes of the
last 20 the draft would have matched (tracker.web.watch_builder). /teams lists the teams, with
/teams/new and /teams/ID/edit. Validation, refusals (ManagedElsewhere for file-managed rows unless
taken over) and audit events are the data layer's (tracker.declare.manage), as for sources.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from tracker.declare.manage import (
    create_sop,
    create_team,
    set_sop_enabled,
    set_team_enabled,
    sop_to_spec_dict,
    team_to_spec_dict,
    update_sop,
    update_team,
)
from tracker.impacts.workflow import WorkflowError
from tracker.notify.secrets import mask_url
from tracker.store.db import session_scope
from tracker.store.models import Sop, Source, Team
from tracker.web.context import CurrentUser, EditorUser, Problem, ReadSession, Viewer, ctx, flash, render
from tracker.web.errors import http_code, problems_json
from tracker.web.forms import sop_entry, sop_form, team_entry
from tracker.web.manage_sources import must_edit

router = APIRouter(include_in_schema=False)
BLANK_WATCH = {"source": "", "sections": "", "keywords": "", "agencies": "", "types": "", "alert": "",
               "include_cosmetic": False}


async def _form(request: Request) -> dict[str, Any]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def _choices(s: Session) -> dict[str, Any]:
    return {"sources": list(s.exec(select(Source).order_by(col(Source.name))).all()),
            "teams": list(s.exec(select(Team).order_by(col(Team.name))).all())}


def _posted(form: dict[str, Any]) -> dict[str, Any]:
    """What was typed, in the template's form (watches as a list), to show it again."""
    shown = sop_form(sop_entry(form)) | {k: v for k, v in form.items() if not k.startswith("watch-")}
    shown["watches"] = shown.get("watches") or []
    return shown


def _sop_page(request: Request, user: Viewer, s: Session, *, form: dict[str, Any], sop: Sop | None,
              problems: list[str] | None = None, status: int = 200, take_over: bool = False) -> Response:
    watches = [*form.get("watches", []), dict(BLANK_WATCH)]
    return render(request, "sop_form.html", user, status=status, form=form, watches=watches, sop=sop,
                  problems=problems or [], take_over=take_over, nav="sops", **_choices(s))


def _row(s: Session, model: type[Sop] | type[Team], entity_id: str) -> Any:
    row = s.get(model, entity_id)
    if row is None:
        what, where = ("SOP", "/sops") if model is Sop else ("team", "/teams")
        raise Problem(404, f"no {what} {entity_id!r}: see the list at {where}")
    return row


@router.get("/sops/new")
def new_sop_page(request: Request, user: CurrentUser, s: ReadSession, source: str = "") -> Response:
    """The add-SOP form with the watch builder (source=ID starts the first watch on that source)."""
    must_edit(user)
    form: dict[str, Any] = {"watches": [dict(BLANK_WATCH, source=source)] if source else []}
    return _sop_page(request, user, s, form=form, sop=None)


@router.post("/sops/new")
async def new_sop(request: Request, user: EditorUser, s: ReadSession) -> Response:
    """Add an SOP managed in the browser (audited as sop.added)."""
    form = await _form(request)
    try:
        with session_scope(ctx(request).engine) as ws:
            sop_id = create_sop(session=ws, data=sop_entry(form), actor=user.email).id
    except WorkflowError as exc:
        return _sop_page(request, user, s, form=_posted(form), sop=None, problems=problems_json(exc),
                         status=http_code(exc))
    response = RedirectResponse(f"/sops/{sop_id}", status_code=303)
    flash(request, response, f"SOP {sop_id} added: the changes its watches match from now on open impacts")
    return response


@router.get("/sops/{sop_id}/edit")
def edit_sop_page(request: Request, sop_id: str, user: CurrentUser, s: ReadSession) -> Response:
    """The edit form of an SOP and its watches."""
    must_edit(user)
    row = _row(s, Sop, sop_id)
    return _sop_page(request, user, s, form=sop_form(sop_to_spec_dict(row)), sop=row)


@router.post("/sops/{sop_id}/edit")
async def edit_sop(request: Request, sop_id: str, user: EditorUser, s: ReadSession) -> Response:
    """Save an SOP and its watches (audited as sop.updated); a file-managed one only with take_over ticked."""
    row = _row(s, Sop, sop_id)
    form = await _form(request)
    take_over = bool(form.get("take_over"))
    entry = sop_entry(form)
    entry.pop("id", None)
    try:
        with session_scope(ctx(request).engine) as ws:
            changes = update_sop(session=ws, sop_id=sop_id, data=entry, actor=user.email, take_over=take_over)
    except WorkflowError as exc:
        return _sop_page(request, user, s, form=_posted(form), sop=row, problems=problems_json(exc),
                         status=http_code(exc), take_over=take_over)
    response = RedirectResponse(f"/sops/{sop_id}", status_code=303)
    flash(request, response, f"SOP {sop_id} saved ({', '.join(sorted(changes)) or 'nothing changed'})")
    return response


async def _enable(request: Request, entity: str, entity_id: str, user: Viewer, enabled: bool) -> Response:
    form = await _form(request)
    back = f"/sops/{entity_id}" if entity == "sop" else "/teams"
    response = RedirectResponse(back, status_code=303)
    setter = set_sop_enabled if entity == "sop" else set_team_enabled
    key = "sop_id" if entity == "sop" else "team_id"
    try:
        with session_scope(ctx(request).engine) as s:
            changes = setter(session=s, enabled=enabled, actor=user.email, take_over=bool(form.get("take_over")),
                             **{key: entity_id})
    except WorkflowError as exc:
        flash(request, response, str(exc), "error")
        return response
    state = "enabled" if enabled else "disabled"
    label = "SOP" if entity == "sop" else "team"
    flash(request, response, f"{label} {entity_id} {state}" if "enabled" in changes
          else f"{label} {entity_id} was already {state}")
    return response


@router.post("/sops/{sop_id}/disable")
async def disable_sop(request: Request, sop_id: str, user: EditorUser) -> Response:
    """Disable an SOP: no new impacts; its impacts stay (audited as sop.disabled)."""
    return await _enable(request, "sop", sop_id, user, False)


@router.post("/sops/{sop_id}/enable")
async def enable_sop(request: Request, sop_id: str, user: EditorUser) -> Response:
    """Enable an SOP again (audited as sop.enabled)."""
    return await _enable(request, "sop", sop_id, user, True)


# --- teams ------------------------------------------------------------------------------------------


def _team_page(request: Request, user: Viewer, *, form: dict[str, Any], team: Team | None,
               problems: list[str] | None = None, status: int = 200, take_over: bool = False) -> Response:
    masked = [mask_url(u) for u in (team.notify if team else [])]
    return render(request, "team_form.html", user, status=status, form=form, team=team, masked=masked,
                  problems=problems or [], take_over=take_over, nav="sops")


@router.get("/teams")
def teams(request: Request, user: CurrentUser, s: ReadSession) -> Response:
    """Every team: members, channels (masked), where it is managed, and its SOPs."""
    rows = list(s.exec(select(Team).order_by(col(Team.name))).all())
    sops: dict[str | None, list[Sop]] = {}
    for sop in s.exec(select(Sop).order_by(col(Sop.id))).all():
        sops.setdefault(sop.team_id, []).append(sop)
    return render(request, "teams.html", user, teams=rows, sops=sops, masked={t.id: [mask_url(u) for u in t.notify]
                                                                             for t in rows}, nav="sops")


@router.get("/teams/new")
def new_team_page(request: Request, user: CurrentUser) -> Response:
    """The add-team form."""
    must_edit(user)
    return _team_page(request, user, form={}, team=None)


@router.post("/teams/new")
async def new_team(request: Request, user: EditorUser) -> Response:
    """Add a team managed in the browser (audited as team.added)."""
    form = await _form(request)
    try:
        with session_scope(ctx(request).engine) as s:
            team_id = create_team(session=s, data=team_entry(form), actor=user.email).id
    except WorkflowError as exc:
        return _team_page(request, user, form=form, team=None, problems=problems_json(exc), status=http_code(exc))
    response = RedirectResponse("/teams", status_code=303)
    flash(request, response, f"team {team_id} added")
    return response


@router.get("/teams/{team_id}/edit")
def edit_team_page(request: Request, team_id: str, user: CurrentUser, s: ReadSession) -> Response:
    """The edit form of a team (its channels are kept unless new ones are typed)."""
    must_edit(user)
    row = _row(s, Team, team_id)
    entry = team_to_spec_dict(row)
    return _team_page(request, user, form={"name": entry["name"], "members": "\n".join(entry.get("members", []))},
                      team=row)


@router.post("/teams/{team_id}/edit")
async def edit_team(request: Request, team_id: str, user: EditorUser, s: ReadSession) -> Response:
    """Save a team (audited as team.updated); the channels stay as they are unless replaced or cleared."""
    row = _row(s, Team, team_id)
    form = await _form(request)
    take_over = bool(form.get("take_over"))
    entry = team_entry(form)
    entry.pop("id", None)
    if "notify" not in entry and not form.get("clear_notify"):
        entry["notify"] = list(row.notify)  # shown masked, so never sent back: kept unless replaced
    try:
        with session_scope(ctx(request).engine) as ws:
            changes = update_team(session=ws, team_id=team_id, data=entry, actor=user.email, take_over=take_over)
    except WorkflowError as exc:
        return _team_page(request, user, form=form, team=row, problems=problems_json(exc), status=http_code(exc),
                          take_over=take_over)
    response = RedirectResponse("/teams", status_code=303)
    flash(request, response, f"team {team_id} saved ({', '.join(sorted(changes)) or 'nothing changed'})")
    return response


@router.post("/teams/{team_id}/disable")
async def disable_team(request: Request, team_id: str, user: EditorUser) -> Response:
    """Disable a team (audited as team.disabled)."""
    return await _enable(request, "team", team_id, user, False)


@router.post("/teams/{team_id}/enable")
async def enable_team(request: Request, team_id: str, user: EditorUser) -> Response:
    """Enable a team again (audited as team.enabled)."""
    return await _enable(request, "team", team_id, user, True)
