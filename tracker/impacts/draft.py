"""A draft watch tried on a source's recent changes: which of them it would have matched, and where.

The watch builder shows this before an SOP is saved. It runs the real matcher
(tracker.impacts.mapping.Matcher) on each change's stored diff, with the rules of map_change:
technical changes and quiet reverts are never mapped, cosmetic ones only to watches that include
them. Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from tracker.impacts.mapping import Matcher
from tracker.store.models import Change

DEFAULT_CHANGES = 20
MAX_CHANGES = 100
_DRAFT = "draft"


@dataclass(frozen=True)
class DraftMatch:
    """One recent change of the source and whether the draft watch would have matched it."""

    change_id: int
    detected_at: datetime
    matched: bool
    sections: list[str] = field(default_factory=list)  # the change's sections the watch matched
    globs: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    changed_sections: list[str] = field(default_factory=list)  # every section the change touched
    skipped: str | None = None  # why the change is never mapped (technical, quiet) or needs include_cosmetic

    def to_json(self) -> dict[str, Any]:
        return {"change_id": self.change_id, "detected_at": self.detected_at, "matched": self.matched,
                "sections": self.sections, "globs": self.globs, "keywords": self.keywords,
                "changed_sections": self.changed_sections, "skipped": self.skipped, "url": f"/changes/{self.change_id}"}


def _skipped(change: Change, watch: dict[str, Any]) -> str | None:
    if change.technical:
        return "a technical change (the rules changed, not the policy): never mapped"
    if change.quiet:
        return "a quiet revert (flapping: quiet): never mapped"
    if change.cosmetic and not watch.get("include_cosmetic"):
        return "a cosmetic change: matched only by watches with include_cosmetic"
    return None


def draft_matches(*, session: Session, watch: dict[str, Any], limit: int = DEFAULT_CHANGES) -> list[DraftMatch]:
    """The last `limit` changes of the watch's source, newest first, each with what the watch would match.

    `watch` is a validated watch as an SOP stores it (WatchSpec.to_json()).
    """
    limit = max(1, min(limit, MAX_CHANGES))
    source_id = str(watch["source"])
    matcher = Matcher([(_DRAFT, [watch])])
    changes = session.exec(select(Change).where(Change.source_id == source_id)
                           .order_by(col(Change.detected_at).desc(), col(Change.id).desc()).limit(limit)).all()
    out = []
    for c in changes:
        skipped = _skipped(c, watch)
        hits = {} if skipped else matcher.match_json(source_id, c.diff, c.entry, cosmetic=c.cosmetic)
        reasons = hits.get(_DRAFT, [])
        reason = reasons[0] if reasons else {}
        out.append(DraftMatch(c.id or 0, c.detected_at, bool(reasons), list(reason.get("sections", [])),
                              list(reason.get("globs", [])), list(reason.get("keywords", [])),
                              list(c.sections or []), skipped))
    return out
