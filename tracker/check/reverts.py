"""Reverts told apart: a version whose text is an earlier version's again.

A page that changes and changes back (A -> B -> A) is recorded as two changes; the second one
says which version it returns to (`reverts_to`) so that a reader sees "reverted to the text of
2024-03-01" instead of a new policy. A source may declare `flapping: quiet`: an A -> B -> A
within its `flapping_window` (days, 7 by default) then opens no impacts for the revert and
closes the impacts of B that are still open, each with an audited system note (the change is
marked `quiet`; tracker.impacts.flapping closes them when the change is mapped).
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from tracker.store.models import Change, Source, Version

DEFAULT_FLAPPING_WINDOW_DAYS = 7.0
FLAPPING_MODES = ("report", "quiet")


def earlier_version(*, session: Session, source_id: str, text_hash: str, before_id: int) -> Version | None:
    """The newest version of the source older than before_id whose compared text hashes the same."""
    return session.exec(
        select(Version).where(Version.source_id == source_id, Version.text_hash == text_hash,
                              col(Version.id) < before_id)
        .order_by(col(Version.id).desc()).limit(1)
    ).first()


def flapping_window(source: Source) -> timedelta:
    """The source's flapping_window option (days) as a timedelta."""
    days = source.options.get("flapping_window", DEFAULT_FLAPPING_WINDOW_DAYS)
    return timedelta(days=float(days))


def is_quiet_flap(*, session: Session, source: Source, change: Change) -> bool:
    """Whether a revert is a flap to keep quiet: `flapping: quiet`, and the text it left lived within the window."""
    if change.reverts_to_version_id is None or source.options.get("flapping") != "quiet":
        return False
    first_away = session.exec(
        select(Change).where(Change.source_id == source.id,
                             col(Change.from_version_id) >= change.reverts_to_version_id,
                             col(Change.id) != change.id)
        .order_by(col(Change.id)).limit(1)
    ).first()
    return first_away is not None and change.detected_at - first_away.detected_at <= flapping_window(source)
