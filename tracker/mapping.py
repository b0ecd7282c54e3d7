"""Mapping changes to the SOPs they affect (filled in by the SOP registry)."""

from __future__ import annotations

from sqlmodel import Session

from tracker.models import Change


def map_change(session: Session, change: Change) -> None:
    """Open impacts for every SOP a change affects, in the transaction that records it."""
    return None
