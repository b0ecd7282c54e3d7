"""The impact workflow's vocabulary: its statuses and where each may go next.

Plain data with no imports, so that the CLI can show and check statuses without loading the
database layer (tracker.impacts.workflow, which acts on impacts, re-exports these).
"""

from __future__ import annotations

STATUSES = ("open", "needs_update", "in_progress", "updated", "dismissed")
FINAL = frozenset({"updated", "dismissed"})
# Where each status may go next. Dismissal needs a reason; reopening is only from a final status.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("needs_update", "dismissed"),
    "needs_update": ("in_progress", "dismissed"),
    "in_progress": ("updated", "dismissed"),
    "updated": ("open",),
    "dismissed": ("open",),
}
