"""Quiet flaps: a revert within a source's flapping window closes what the reverted text opened.

tracker.check.reverts marks such a change `quiet` when it is recorded; mapping it opens nothing
and dismisses the still-open impacts of the changes it undid, each with an audited system note
saying which version the text returned to.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from tracker.audit.trail import SYSTEM
from tracker.impacts.statuses import FINAL
from tracker.impacts.workflow import mark_impact
from tracker.store.models import Change, Impact


def close_flapped_impacts(*, session: Session, change: Change) -> list[Impact]:
    """Dismiss, with a system note, the still-open impacts of the changes a quiet revert undid."""
    undone = select(Change.id).where(Change.source_id == change.source_id,
                                     col(Change.from_version_id) >= (change.reverts_to_version_id or 0),
                                     col(Change.id) != change.id)
    impacts = session.exec(select(Impact).where(col(Impact.change_id).in_(undone.scalar_subquery()),
                                                col(Impact.status).not_in(FINAL))
                           .order_by(col(Impact.id))).all()
    when = change.reverts_to_at.date().isoformat() if change.reverts_to_at else "an earlier version"
    note = (f"closed by the tracker: the source reverted to the text of {when} (version "
            f"{change.reverts_to_version_id}) within its flapping window (flapping: quiet; change #{change.id})")
    return [mark_impact(session=session, impact_id=i.id or 0, by=SYSTEM, status="dismissed", note=note)
            for i in impacts]
