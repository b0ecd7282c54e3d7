"""Managing sources, SOPs and teams through the JSON API (editors and admins, X-CSRF-Token on every call).

A body is one entry of a sources file or an SOP file, in the file's form (what GET …/spec returns):
it is validated by the same code as a sync, with the same messages. POST creates (managed in the
UI), PUT replaces the whole entry, PATCH changes the keys given (null removes one). A row managed in
its file answers 409 unless `take_over=true` is given, which makes it UI-managed (audited). 422
lists every problem; 409 also answers a duplicate id; 404 an unknown one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request, Response
from sqlmodel import Session

from tracker.declare.manage import (
    create_sop,
    create_source,
    create_team,
    set_sop_enabled,
    set_source_enabled,
    set_team_enabled,
    sop_to_spec_dict,
    source_to_spec_dict,
    team_to_spec_dict,
    update_sop,
    update_source,
    update_team,
)
from tracker.notify.secrets import mask_templates
from tracker.store.db import session_scope
from tracker.store.models import Sop, Source, Team
from tracker.web.context import CurrentUser, EditorUser, ReadSession, ctx
from tracker.web.errors import answer
from tracker.web.manage_sources import kinds

router = APIRouter(prefix="/api", tags=["api"])

Entry = Annotated[dict[str, Any], Body(description="one entry in the file's form: the same keys, the same checks")]
Result = dict[str, Any] | Response


def _changes(changes: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    return {k: {"before": b, "after": a} for k, (b, a) in changes.items()}


def _spec_of(s: Session, model: type[Source] | type[Sop] | type[Team], entity_id: str) -> dict[str, Any]:
    row: Source | Sop | Team | None = s.get(model, entity_id)  # type: ignore[assignment]
    if row is None:
        raise HTTPException(404, f"no {model.__name__.lower()} {entity_id!r}")
    if isinstance(row, Source):
        spec = source_to_spec_dict(row)
    elif isinstance(row, Sop):
        spec = sop_to_spec_dict(row)
    else:
        spec = mask_templates(team_to_spec_dict(row)) or {}  # channel URLs may hold tokens
    return {"managed_by": row.managed_by, "spec": spec}


def _save(request: Request, model: type[Source] | type[Sop] | type[Team], entity_id: str | None,
          do: Any) -> Result:
    """Run a mutation in one transaction; its changes and the row's entry after it, or the refusal."""
    def work() -> dict[str, Any]:
        with session_scope(ctx(request).engine) as s:
            done = do(s)
            row_id = entity_id if entity_id is not None else done.id
            after = _spec_of(s, model, row_id)
            changes = _changes(done) if isinstance(done, dict) else None
            return {"id": row_id, **after} | ({"changes": changes} if changes is not None else {})
    return answer(work)


# --- sources ----------------------------------------------------------------------------------------


@router.get("/sources/{source_id}/spec")
def source_spec(source_id: str, user: CurrentUser, s: ReadSession) -> dict[str, Any]:
    """A source as its sources-file entry (what PUT takes), and where it is managed (file or ui)."""
    return _spec_of(s, Source, source_id)


@router.post("/sources", status_code=201, response_model=None)
def post_source(request: Request, body: Entry, user: EditorUser) -> Result:
    """Add a source managed in the UI (audited as source.added); 409 when the id exists."""
    return _save(request, Source, None, lambda s: create_source(session=s, data=body, actor=user.email,
                                                                kinds=kinds()))


@router.put("/sources/{source_id}", response_model=None)
def put_source(request: Request, source_id: str, body: Entry, user: EditorUser, take_over: bool = False) -> Result:
    """Replace a UI-managed source's entry (audited as source.updated); `enabled` is kept unless given."""
    return _save(request, Source, source_id, lambda s: update_source(
        session=s, source_id=source_id, data=body, actor=user.email, kinds=kinds(), take_over=take_over))


@router.patch("/sources/{source_id}", response_model=None)
def patch_source(request: Request, source_id: str, body: Entry, user: EditorUser, take_over: bool = False) -> Result:
    """Change the keys given of a UI-managed source (null removes one), audited as source.updated."""
    return _save(request, Source, source_id, lambda s: update_source(
        session=s, source_id=source_id, data=body, actor=user.email, kinds=kinds(), take_over=take_over,
        partial=True))


@router.post("/sources/{source_id}/disable", response_model=None)
def disable_source(request: Request, source_id: str, user: EditorUser, take_over: bool = False) -> Result:
    """Disable a source: no more checks, its history kept (audited as source.disabled)."""
    return _save(request, Source, source_id, lambda s: set_source_enabled(
        session=s, source_id=source_id, enabled=False, actor=user.email, take_over=take_over))


@router.post("/sources/{source_id}/enable", response_model=None)
def enable_source(request: Request, source_id: str, user: EditorUser, take_over: bool = False) -> Result:
    """Enable a source again (audited as source.enabled)."""
    return _save(request, Source, source_id, lambda s: set_source_enabled(
        session=s, source_id=source_id, enabled=True, actor=user.email, take_over=take_over))


# --- SOPs -------------------------------------------------------------------------------------------


@router.get("/sops/{sop_id}/spec")
def sop_spec(sop_id: str, user: CurrentUser, s: ReadSession) -> dict[str, Any]:
    """An SOP as its SOP-file entry, watches included (what PUT takes), and where it is managed."""
    return _spec_of(s, Sop, sop_id)


@router.post("/sops", status_code=201, response_model=None)
def post_sop(request: Request, body: Entry, user: EditorUser) -> Result:
    """Add an SOP managed in the UI (audited as sop.added); its team and watched sources must exist."""
    return _save(request, Sop, None, lambda s: create_sop(session=s, data=body, actor=user.email))


@router.put("/sops/{sop_id}", response_model=None)
def put_sop(request: Request, sop_id: str, body: Entry, user: EditorUser, take_over: bool = False) -> Result:
    """Replace a UI-managed SOP's entry, watches included (audited as sop.updated)."""
    return _save(request, Sop, sop_id, lambda s: update_sop(session=s, sop_id=sop_id, data=body, actor=user.email,
                                                            take_over=take_over))


@router.patch("/sops/{sop_id}", response_model=None)
def patch_sop(request: Request, sop_id: str, body: Entry, user: EditorUser, take_over: bool = False) -> Result:
    """Change the keys given of a UI-managed SOP (`watches` replaces every watch), audited as sop.updated."""
    return _save(request, Sop, sop_id, lambda s: update_sop(session=s, sop_id=sop_id, data=body, actor=user.email,
                                                            take_over=take_over, partial=True))


@router.post("/sops/{sop_id}/disable", response_model=None)
def disable_sop(request: Request, sop_id: str, user: EditorUser, take_over: bool = False) -> Result:
    """Disable an SOP: no new impacts, its impacts kept (audited as sop.disabled)."""
    return _save(request, Sop, sop_id, lambda s: set_sop_enabled(session=s, sop_id=sop_id, enabled=False,
                                                                 actor=user.email, take_over=take_over))


@router.post("/sops/{sop_id}/enable", response_model=None)
def enable_sop(request: Request, sop_id: str, user: EditorUser, take_over: bool = False) -> Result:
    """Enable an SOP again (audited as sop.enabled)."""
    return _save(request, Sop, sop_id, lambda s: set_sop_enabled(session=s, sop_id=sop_id, enabled=True,
                                                                 actor=user.email, take_over=take_over))


# --- teams ------------------------------------------------------------------------------------------


@router.get("/teams")
def teams(user: CurrentUser, s: ReadSession) -> list[dict[str, Any]]:
    """Every team as its SOP-file entry (channel URLs masked) and where it is managed."""
    from sqlmodel import col, select

    return [{"id": t.id, **_spec_of(s, Team, t.id)} for t in s.exec(select(Team).order_by(col(Team.id))).all()]


@router.post("/teams", status_code=201, response_model=None)
def post_team(request: Request, body: Entry, user: EditorUser) -> Result:
    """Add a team managed in the UI (audited as team.added)."""
    return _save(request, Team, None, lambda s: create_team(session=s, data=body, actor=user.email))


@router.put("/teams/{team_id}", response_model=None)
def put_team(request: Request, team_id: str, body: Entry, user: EditorUser, take_over: bool = False) -> Result:
    """Replace a UI-managed team's entry (audited as team.updated)."""
    return _save(request, Team, team_id, lambda s: update_team(session=s, team_id=team_id, data=body,
                                                               actor=user.email, take_over=take_over))


@router.patch("/teams/{team_id}", response_model=None)
def patch_team(request: Request, team_id: str, body: Entry, user: EditorUser, take_over: bool = False) -> Result:
    """Change the keys given of a UI-managed team (audited as team.updated)."""
    return _save(request, Team, team_id, lambda s: update_team(session=s, team_id=team_id, data=body,
                                                               actor=user.email, take_over=take_over, partial=True))


@router.post("/teams/{team_id}/disable", response_model=None)
def disable_team(request: Request, team_id: str, user: EditorUser, take_over: bool = False) -> Result:
    """Disable a team (audited as team.disabled)."""
    return _save(request, Team, team_id, lambda s: set_team_enabled(session=s, team_id=team_id, enabled=False,
                                                                    actor=user.email, take_over=take_over))


@router.post("/teams/{team_id}/enable", response_model=None)
def enable_team(request: Request, team_id: str, user: EditorUser, take_over: bool = False) -> Result:
    """Enable a team again (audited as team.enabled)."""
    return _save(request, Team, team_id, lambda s: set_team_enabled(session=s, team_id=team_id, enabled=True,
                                                                    actor=user.email, take_over=take_over))
