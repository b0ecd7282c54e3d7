"""SOPs, their watches, and teams added and edited in the browser: validated as an SOP file is, audited as a
sync is. `data` is one entry in the SOP file's form (what `sop_to_spec_dict` / `team_to_spec_dict` give)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from tracker.declare.managed import InvalidSpec, ManagedElsewhere, ensure_ui_managed, get_row, refuse_existing
from tracker.declare.sops import (
    SopSpec,
    TeamSpec,
    audit_row,
    save_sop_row,
    save_team_row,
    unknown_source_problem,
    unknown_team_problem,
    validate_sop_entry,
)
from tracker.store.db import utcnow
from tracker.store.models import Sop, Source, Team

_WATCH_KEYS = ("source", "sections", "keywords", "agencies", "types", "alert", "include_cosmetic")


def team_to_spec_dict(row: Team) -> dict[str, Any]:
    """The SOP-file entry of a team, non-default fields only (notify templates kept as written)."""
    out: dict[str, Any] = {"id": row.id, "name": row.name}
    if row.members:
        out["members"] = list(row.members)
    if row.notify:
        out["notify"] = list(row.notify)
    if not row.enabled:
        out["enabled"] = False
    return out


def sop_to_spec_dict(row: Sop) -> dict[str, Any]:
    """The SOP-file entry of an SOP, non-default fields only: the inverse of the sync's mapping."""
    out: dict[str, Any] = {"id": row.id, "title": row.title, "owner": row.owner}
    out |= {k: v for k, v in (("team", row.team_id), ("url", row.url), ("review_days", row.review_days),
                              ("alert", row.alert)) if v is not None}
    if row.watches:
        out["watches"] = [{k: w[k] for k in _WATCH_KEYS if w.get(k) not in (None, [], False)} for w in row.watches]
    if not row.enabled:
        out["enabled"] = False
    return out


def _entry(data: dict[str, Any], entity: str, entity_id: str | None, current: dict[str, Any] | None,
           partial: bool, enabled: bool | None) -> dict[str, Any]:
    """The whole entry to validate: data (merged over the current entry when partial), its id fixed."""
    what = f"{'SOP' if entity == 'sop' else 'team'} {entity_id or (data.get('id') if isinstance(data, dict) else '?')}"
    if not isinstance(data, dict):
        raise InvalidSpec(what, [f"each {entity} must be a mapping"])
    if entity_id is not None and "id" in data and data["id"] != entity_id:
        raise InvalidSpec(what, [f"{what}: id: cannot be changed (got {data['id']!r}): add a new one and "
                                 "disable this one"])
    wanted = {**(current or {}), **data} if partial else dict(data)
    wanted = {k: v for k, v in wanted.items() if v is not None}
    if entity_id is not None:
        wanted["id"] = entity_id
    if enabled is not None:
        wanted.setdefault("enabled", enabled)
    return wanted


def validate_team(data: dict[str, Any]) -> TeamSpec:
    """A TeamSpec from one entry, or InvalidSpec with the messages `tracker sops sync` gives."""
    where = f"team {data.get('id', '?')!s}"
    problems: list[str] = []
    spec = validate_sop_entry(data, TeamSpec, problems, where=lambda _loc: where)
    if spec is None:
        raise InvalidSpec(where, problems)
    assert isinstance(spec, TeamSpec)
    return spec


def validate_sop(session: Session, data: dict[str, Any]) -> SopSpec:
    """A SopSpec from one entry whose team and watched sources exist, or InvalidSpec with the sync's messages."""
    where = f"SOP {data.get('id', '?')!s}"
    problems: list[str] = []
    spec = validate_sop_entry(data, SopSpec, problems, where=lambda _loc: where)
    team = data.get("team")
    if isinstance(team, str) and session.get(Team, team) is None:
        problems.append(f"{where}: {unknown_team_problem(team, session.exec(select(Team.id)).all())}")
    known = set(session.exec(select(Source.id)).all())
    for n, watch in enumerate(data.get("watches") or [], 1):
        source = watch.get("source") if isinstance(watch, dict) else None
        if isinstance(source, str) and source not in known:
            problems.append(f"{where}: {unknown_source_problem(n, source)}")
    if spec is None or problems:
        raise InvalidSpec(where, problems)
    assert isinstance(spec, SopSpec)
    return spec


def create_team(*, session: Session, data: dict[str, Any], actor: str) -> Team:
    """Add a team managed in the browser, audited as team.added; an existing id is refused."""
    spec = validate_team(_entry(data, "team", None, None, False, None))
    refuse_existing(session, "team", spec.id)
    save_team_row(session, None, spec, actor, managed_by="ui")
    session.flush()
    return get_row(session, "team", spec.id)  # type: ignore[no-any-return]


def update_team(*, session: Session, team_id: str, data: dict[str, Any], actor: str, take_over: bool = False,
                partial: bool = False, managed_file: str | None = None) -> dict[str, tuple[Any, Any]]:
    """Make a UI-managed team match `data` (as update_sop does for SOPs); returns the changes."""
    row = get_row(session, "team", team_id)
    if row.managed_by != "ui" and not take_over:
        raise ManagedElsewhere("team", team_id, managed_file)
    spec = validate_team(_entry(data, "team", team_id, team_to_spec_dict(row), partial, row.enabled))
    changes = ensure_ui_managed(session, "team", row, actor=actor, take_over=take_over, managed_file=managed_file)
    changes |= save_team_row(session, row, spec, actor)[1]
    session.flush()
    return changes


def create_sop(*, session: Session, data: dict[str, Any], actor: str) -> Sop:
    """Add an SOP managed in the browser, audited as sop.added; an existing id, an unknown team or an unknown
    watched source is refused."""
    spec = validate_sop(session, _entry(data, "sop", None, None, False, None))
    refuse_existing(session, "sop", spec.id)
    save_sop_row(session, None, spec, actor, managed_by="ui")
    session.flush()
    return get_row(session, "sop", spec.id)  # type: ignore[no-any-return]


def update_sop(*, session: Session, sop_id: str, data: dict[str, Any], actor: str, take_over: bool = False,
               partial: bool = False, managed_file: str | None = None) -> dict[str, tuple[Any, Any]]:
    """Make a UI-managed SOP match `data` (its whole entry, watches included; with partial=True only the keys
    given, None removing one); `enabled` is kept unless data gives it. A file-managed SOP raises
    ManagedElsewhere unless take_over (then it becomes UI-managed, audited as sop.managed_by)."""
    row = get_row(session, "sop", sop_id)
    if row.managed_by != "ui" and not take_over:
        raise ManagedElsewhere("sop", sop_id, managed_file)
    spec = validate_sop(session, _entry(data, "sop", sop_id, sop_to_spec_dict(row), partial, row.enabled))
    changes = ensure_ui_managed(session, "sop", row, actor=actor, take_over=take_over, managed_file=managed_file)
    changes |= save_sop_row(session, row, spec, actor)[1]
    session.flush()
    return changes


def set_sop_enabled(*, session: Session, sop_id: str, enabled: bool, actor: str, take_over: bool = False,
                    managed_file: str | None = None) -> dict[str, tuple[Any, Any]]:
    """Disable or re-enable a UI-managed SOP (its impacts are kept), audited as sop.disabled / sop.enabled."""
    return _set_enabled(session, "sop", sop_id, enabled, actor, take_over, managed_file)


def set_team_enabled(*, session: Session, team_id: str, enabled: bool, actor: str, take_over: bool = False,
                     managed_file: str | None = None) -> dict[str, tuple[Any, Any]]:
    """Disable or re-enable a UI-managed team, audited as team.disabled / team.enabled."""
    return _set_enabled(session, "team", team_id, enabled, actor, take_over, managed_file)


def _set_enabled(session: Session, entity: str, entity_id: str, enabled: bool, actor: str, take_over: bool,
                 managed_file: str | None) -> dict[str, tuple[Any, Any]]:
    row = get_row(session, entity, entity_id)
    changes = ensure_ui_managed(session, entity, row, actor=actor, take_over=take_over, managed_file=managed_file)
    if row.enabled == enabled:
        return changes
    row.enabled = enabled
    if isinstance(row, Sop):
        row.updated_at = utcnow()
    session.add(row)
    audit_row(session, actor, f"{entity}.{'enabled' if enabled else 'disabled'}", entity, entity_id,
              {"enabled": (not enabled, enabled)})
    session.flush()
    return changes | {"enabled": (not enabled, enabled)}
