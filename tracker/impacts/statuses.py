"""The impact workflow's vocabulary: its statuses and where each may go next.

Plain data with no imports of the tracker, so that the CLI can show and check statuses without
loading the database layer (tracker.impacts.workflow, which acts on impacts, re-exports these).
ImpactStatus is a StrEnum: its members are the strings stored in the database and shown in JSON.
"""

from __future__ import annotations

from enum import StrEnum


class ImpactStatus(StrEnum):
    """Where an impact stands."""

    OPEN = "open"  # mapped, nobody has looked yet
    NEEDS_UPDATE = "needs_update"  # the SOP must change
    IN_PROGRESS = "in_progress"  # someone is changing it
    UPDATED = "updated"  # the SOP was changed (final)
    DISMISSED = "dismissed"  # no change needed, with a reason (final)


STATUSES: tuple[ImpactStatus, ...] = tuple(ImpactStatus)
FINAL = frozenset({ImpactStatus.UPDATED, ImpactStatus.DISMISSED})
# Where each status may go next. Dismissal needs a reason; reopening is only from a final status.
TRANSITIONS: dict[str, tuple[ImpactStatus, ...]] = {
    ImpactStatus.OPEN: (ImpactStatus.NEEDS_UPDATE, ImpactStatus.DISMISSED),
    ImpactStatus.NEEDS_UPDATE: (ImpactStatus.IN_PROGRESS, ImpactStatus.DISMISSED),
    ImpactStatus.IN_PROGRESS: (ImpactStatus.UPDATED, ImpactStatus.DISMISSED),
    ImpactStatus.UPDATED: (ImpactStatus.OPEN,),
    ImpactStatus.DISMISSED: (ImpactStatus.OPEN,),
}
