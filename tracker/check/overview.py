"""What is watched on one source: its rules, the latest version's section tree, health, history.

`tracker sources show ID` and the web UI's source page read this, so that a user can check the
rules and copy the heading paths an SOP's `sections:` globs match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from tracker.check.blocks import blocks_from_json
from tracker.check.preview import section_tree
from tracker.check.record import rules_for
from tracker.store.models import Change, CheckState, Source, Version

HISTORY = 20


@dataclass
class SourceOverview:
    """One source as `sources show` tells it."""

    source: Source
    state: CheckState | None
    rules: dict[str, Any]
    sections: list[tuple[str, int]] = field(default_factory=list)
    versions: list[Version] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        st, src = self.state, self.source
        return {"id": src.id, "name": src.name, "url": src.url, "kind": src.kind, "enabled": src.enabled,
                "rules": self.rules, "options": src.options,
                "sections": [{"section": s, "blocks": n} for s, n in self.sections],
                "health": {"last_checked_at": st.last_checked_at if st else None,
                           "last_result": st.last_result if st else None,
                           "last_error": st.last_error if st else None,
                           "consecutive_failures": st.consecutive_failures if st else 0},
                "versions": [{"id": v.id, "created_at": v.created_at, "blocks": v.block_count,
                              "rules_hash": v.rules_hash} for v in self.versions],
                "changes": [{"id": c.id, "detected_at": c.detected_at, "technical": c.technical,
                             "cosmetic": c.cosmetic, "reverts_to_version_id": c.reverts_to_version_id,
                             "sections": c.sections} for c in self.changes]}


def source_overview(*, session: Session, source_id: str) -> SourceOverview | None:
    """The overview of a source, or None when there is no such source."""
    source = session.get(Source, source_id)
    if source is None:
        return None
    versions = list(session.exec(select(Version).where(Version.source_id == source_id)
                                 .order_by(col(Version.id).desc()).limit(HISTORY)).all())
    changes = list(session.exec(select(Change).where(Change.source_id == source_id)
                                .order_by(col(Change.id).desc()).limit(HISTORY)).all())
    sections = section_tree(blocks_from_json(versions[0].blocks)) if versions else []
    return SourceOverview(source, session.get(CheckState, source_id), rules_for(source).to_json(), sections,
                          versions, changes)


def latest_section_tree(*, session: Session, source_id: str) -> tuple[int, list[tuple[str, int]]] | None:
    """The newest version's id and its heading paths with block counts; None when it has none yet."""
    version = session.exec(select(Version).where(Version.source_id == source_id)
                           .order_by(col(Version.id).desc()).limit(1)).first()
    if version is None:
        return None
    return version.id or 0, section_tree(blocks_from_json(version.blocks))


def latest_sections(*, session: Session, source_id: str) -> list[str] | None:
    """The heading paths of a source's newest version; None when it has none yet."""
    tree = latest_section_tree(session=session, source_id=source_id)
    return None if tree is None else [s for s, _ in tree[1]]
