"""Where a source, SOP or team is managed — `file` (its YAML file's sync) or `ui` (the browser) — and the
refusals of editing it in the wrong place.

One source of truth at a time, never a silent overwrite: a file sync touches only file-managed rows,
and the browser edits only UI-managed ones (or takes a file-managed row over, which is audited as its
own `<entity>.managed_by` event). `tracker sources manage ID --by file` hands a row back to its file.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from tracker.audit.trail import append_event
from tracker.impacts.workflow import Conflict, NotFound, WorkflowError
from tracker.store.db import utcnow
from tracker.store.models import Sop, Source, Team

MANAGERS = ("file", "ui")
ENTITIES: dict[str, type[Source] | type[Sop] | type[Team]] = {"source": Source, "sop": Sop, "team": Team}
_LABEL = {"source": "source", "sop": "SOP", "team": "team"}
_FILE = {"source": "the sources file", "sop": "the SOP file", "team": "the SOP file"}
_SYNC = {"source": "tracker sources sync", "sop": "tracker sops sync", "team": "tracker sops sync"}


class ManagedElsewhere(Conflict):
    """The row is managed in its file: the browser may not change it without taking it over (HTTP 409)."""

    def __init__(self, entity: str, entity_id: str, managed_file: str | None = None) -> None:
        self.entity, self.entity_id = entity, entity_id
        super().__init__(
            f"{_LABEL[entity]} {entity_id} is managed in {managed_file or _FILE[entity]} (file): change it there "
            f"and run `{_SYNC[entity]}`, or take it over in the browser (it then becomes UI-managed and file "
            "syncs leave it alone)")


class InvalidSpec(WorkflowError):
    """What the browser sent is not a valid entry; .problems are the messages a file sync gives for the same
    fields (after their place: "source ID: url: …" here, "line 3 (source ID): url: …" in a file)."""

    def __init__(self, what: str, problems: list[str]) -> None:
        self.what, self.problems = what, problems
        super().__init__(f"{what}: {len(problems)} problem(s): " + "; ".join(problems))


def label(entity: str) -> str:
    """How messages name an entity type: source, SOP, team."""
    return _LABEL[entity]


def get_row(session: Session, entity: str, entity_id: str) -> Any:
    """The row, or NotFound naming where to look."""
    row = session.get(ENTITIES[entity], entity_id)
    if row is None:
        where = "tracker sources list" if entity == "source" else "tracker sops list"
        raise NotFound(f"unknown {_LABEL[entity]} id {entity_id!r} (see `{where}`)")
    return row


def refuse_existing(session: Session, entity: str, entity_id: str) -> None:
    """A Conflict when a row with this id exists already (ids are never reused: rows are disabled, not deleted)."""
    row: Any = session.get(ENTITIES[entity], entity_id)
    if row is not None:
        state = "" if row.enabled else ", disabled"
        raise Conflict(f"{_LABEL[entity]} {entity_id} already exists (managed in {row.managed_by}{state}): "
                       "edit that one, or choose another id")


def ensure_ui_managed(session: Session, entity: str, row: Any, *, actor: str, take_over: bool,
                      managed_file: str | None = None) -> dict[str, tuple[Any, Any]]:
    """Refuse a file-managed row unless take_over, which turns it UI-managed (audited); returns that change."""
    if row.managed_by == "ui":
        return {}
    if not take_over:
        raise ManagedElsewhere(entity, row.id, managed_file)
    return set_managed_by(session=session, entity=entity, entity_id=row.id, managed_by="ui", actor=actor)


def set_managed_by(*, session: Session, entity: str, entity_id: str, managed_by: str,
                   actor: str) -> dict[str, tuple[Any, Any]]:
    """Say where a source, SOP or team is managed (`file` hands it back to its file's sync); audited as
    `<entity>.managed_by`. Returns {"managed_by": (before, after)}, or {} when it already was."""
    if entity not in ENTITIES:
        raise WorkflowError(f"unknown entity {entity!r} (one of: {', '.join(ENTITIES)})")
    if managed_by not in MANAGERS:
        raise WorkflowError(f"managed_by must be one of {', '.join(MANAGERS)}, got {managed_by!r}")
    row = get_row(session, entity, entity_id)
    if row.managed_by == managed_by:
        return {}
    before = row.managed_by
    row.managed_by = managed_by
    if hasattr(row, "updated_at"):
        row.updated_at = utcnow()
    session.add(row)
    append_event(session=session, actor=actor, action=f"{entity}.managed_by", entity_type=entity,
                 entity_id=entity_id, before={"managed_by": before}, after={"managed_by": managed_by})
    session.flush()
    return {"managed_by": (before, managed_by)}
