"""Map changes already recorded again, e.g. after SOPs were added or their watches changed.

Only missing impacts are created: a change that already has an impact on an SOP keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from tracker.impacts.mapping import MappingContext, create_impacts
from tracker.store.models import Change, Impact


@dataclass
class RemapReport:
    """What remap() did."""

    changes: int = 0
    impacts: list[Impact] = field(default_factory=list)


def remap(*, session: Session, since: datetime | None = None, source_id: str | None = None,
          batch: int = 500) -> RemapReport:
    """Map existing changes again (e.g. after SOPs were added); only missing impacts are created."""
    context = MappingContext.load(session)
    report = RemapReport()
    last_id = 0
    while True:
        query = select(Change).where(col(Change.technical).is_(False), col(Change.quiet).is_(False),
                                     col(Change.id) > last_id)
        if since is not None:
            query = query.where(col(Change.detected_at) >= since)
        if source_id is not None:
            query = query.where(Change.source_id == source_id)
        changes = session.exec(query.order_by(col(Change.id)).limit(batch)).all()
        if not changes:
            return report
        ids = [c.id for c in changes]
        existing: dict[int, set[str]] = {}
        for cid, sid in session.exec(select(Impact.change_id, Impact.sop_id)
                                     .where(col(Impact.change_id).in_(ids))).all():
            existing.setdefault(cid, set()).add(sid)
        for change in changes:
            report.changes += 1
            hits = context.matcher.match_json(change.source_id, change.diff, change.entry, cosmetic=change.cosmetic)
            if hits:
                report.impacts += create_impacts(session=session, change=change, hits=hits, context=context,
                                                  existing=existing.get(change.id or 0, set()))
        last_id = changes[-1].id or last_id
