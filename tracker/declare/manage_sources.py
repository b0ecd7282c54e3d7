"""Sources added and edited in the browser: validated as a sources file is, audited as a sync is.

`data` is one entry in the sources file's form (what `source_to_spec_dict` gives): the same keys, the
same validation (tracker.declare.sources.SourceSpec with the registry of kinds) and the same messages.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from tracker.audit.trail import append_event
from tracker.check.kinds import Kinds
from tracker.declare.managed import InvalidSpec, ManagedElsewhere, ensure_ui_managed, get_row, refuse_existing
from tracker.declare.sources import SourceOptions, SourceSpec, add_source, apply_source_spec
from tracker.declare.yamlfile import validate_entry
from tracker.store.db import utcnow
from tracker.store.models import Source

# Source.options keys that a sources file writes at the top level of an entry (tracker.declare.sources._options),
# in the order a person writes them.
TOP_LEVEL_OPTIONS = ("link_select", "render", "wait_for", "query", "since", "ignore", "flapping",
                     "flapping_window", "queue")


def source_to_spec_dict(row: Source) -> dict[str, Any]:
    """The sources-file entry of a row, non-default fields only: the inverse of the sync's mapping."""
    options = dict(row.options or {})
    out: dict[str, Any] = {"id": row.id, "name": row.name}
    urls = options.pop("urls", None)
    if urls:
        out["urls"] = list(urls)
    else:
        out["url"] = row.url
    if row.kind != "html":
        out["kind"] = row.kind
    for key in ("select", "remove"):
        if getattr(row, key):
            out[key] = list(getattr(row, key))
    out |= {k: options.pop(k) for k in TOP_LEVEL_OPTIONS if k in options}
    if row.schedule is not None:
        out["schedule"] = row.schedule
    if row.tags:
        out["tags"] = list(row.tags)
    overrides = {k: options[k] for k in SourceOptions.model_fields if k in options}
    if overrides:
        out["options"] = overrides
    if not row.enabled:
        out["enabled"] = False
    return out


def validate_source(data: dict[str, Any], *, kinds: Kinds, source_id: str | None = None) -> SourceSpec:
    """A SourceSpec from one entry, or InvalidSpec with the messages `tracker sources sync` gives."""
    if not isinstance(data, dict):
        raise InvalidSpec(f"source {source_id or '?'}", ["each source must be a mapping"])
    if source_id is not None:
        if "id" in data and data["id"] != source_id:
            raise InvalidSpec(f"source {source_id}", [f"source {source_id}: id: cannot be changed (got "
                                                      f"{data['id']!r}): add a new source and disable this one"])
        data = {"id": source_id, **{k: v for k, v in data.items() if k != "id"}}
    where = f"source {data.get('id', '?')!s}"
    problems: list[str] = []
    spec = validate_entry(data, SourceSpec, problems, where=where, context={"kinds": kinds})
    if spec is None or problems:
        raise InvalidSpec(where, problems)
    assert isinstance(spec, SourceSpec)
    return spec


def create_source(*, session: Session, data: dict[str, Any], actor: str, kinds: Kinds) -> Source:
    """Add a source managed in the browser (managed_by `ui`), audited as source.added; an existing id is refused."""
    spec = validate_source(data, kinds=kinds)
    refuse_existing(session, "source", spec.id)
    row = add_source(session=session, spec=spec, actor=actor, managed_by="ui")
    session.flush()
    return row


def update_source(*, session: Session, source_id: str, data: dict[str, Any], actor: str, kinds: Kinds,
                  take_over: bool = False, partial: bool = False,
                  managed_file: str | None = None) -> dict[str, tuple[Any, Any]]:
    """Make a UI-managed source match `data` (its whole entry; with partial=True only the keys given, None
    removing one); returns the changes. `enabled` is kept unless data gives it. A file-managed source raises
    ManagedElsewhere, unless take_over, which first makes it UI-managed (audited as source.managed_by)."""
    row = get_row(session, "source", source_id)
    if row.managed_by != "ui" and not take_over:
        raise ManagedElsewhere("source", source_id, managed_file)
    current = source_to_spec_dict(row)
    wanted = {**current, **data} if partial else dict(data)
    if partial and "url" in data and "urls" not in data:
        wanted.pop("urls", None)
    if partial and "urls" in data and "url" not in data:
        wanted.pop("url", None)
    wanted = {k: v for k, v in wanted.items() if v is not None}
    wanted.setdefault("enabled", row.enabled)
    spec = validate_source(wanted, kinds=kinds, source_id=source_id)
    changes = ensure_ui_managed(session, "source", row, actor=actor, take_over=take_over, managed_file=managed_file)
    changes |= apply_source_spec(session=session, row=row, spec=spec, actor=actor)
    session.flush()
    return changes


def set_source_enabled(*, session: Session, source_id: str, enabled: bool, actor: str, take_over: bool = False,
                       managed_file: str | None = None) -> dict[str, tuple[Any, Any]]:
    """Disable or re-enable a UI-managed source (history is kept), audited as source.disabled / source.enabled;
    a file-managed one raises ManagedElsewhere unless take_over. Returns the changes ({} when it already was)."""
    row = get_row(session, "source", source_id)
    changes = ensure_ui_managed(session, "source", row, actor=actor, take_over=take_over, managed_file=managed_file)
    if row.enabled == enabled:
        return changes
    row.enabled, row.updated_at = enabled, utcnow()
    session.add(row)
    append_event(session=session, actor=actor, action="source.enabled" if enabled else "source.disabled",
                 entity_type="source", entity_id=source_id, before={"enabled": not enabled},
                 after={"enabled": enabled})
    session.flush()
    return changes | {"enabled": (not enabled, enabled)}
