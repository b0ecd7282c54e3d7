"""Teams, SOPs, the impacts changes have on them, and the audit trail."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tracker.store.db import UTCDateTime, utcnow


def _json(default: Any) -> Any:
    factory = (lambda: list(default)) if isinstance(default, list) else (lambda: dict(default or {}))
    return Field(default_factory=factory, sa_column=sa.Column(sa.JSON(), nullable=False))


def _managed_by() -> Any:
    """Where the row is declared: `file` (the SOP file's sync manages it) or `ui` (the browser; syncs leave it)."""
    return Field(default="file", sa_column=sa.Column(sa.String(8), nullable=False, server_default="file"))


def _now_column(index: bool = False) -> Any:
    return Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False, index=index))


class Team(SQLModel, table=True):
    """A team of people who share SOPs; members are email addresses."""

    id: str = Field(primary_key=True, max_length=120)
    name: str
    members: list[str] = _json([])
    # Channel URL templates as the SOP file declares them (`${TRACKER_…}` kept, never resolved here).
    notify: list[str] = _json([])
    enabled: bool = True
    managed_by: str = _managed_by()


class SopBase(SQLModel):
    """What an SOP file declares about one SOP."""

    title: str
    owner: str
    team_id: str | None = Field(default=None, foreign_key="team.id")
    url: str | None = None
    review_days: int | None = None


class Sop(SopBase, table=True):
    """A standard operating procedure and the watches that decide which changes affect it.

    watches: [{"source": id, "sections": [glob, ...], "keywords": [word, ...]}, ...]
    """

    id: str = Field(primary_key=True, max_length=120)
    watches: list[dict[str, Any]] = _json([])
    alert: str | None = Field(default=None, max_length=20)  # "immediate": each new impact is sent at once
    enabled: bool = True
    managed_by: str = _managed_by()
    created_at: datetime = _now_column()
    updated_at: datetime = _now_column()


class Impact(SQLModel, table=True):
    """A change that affects an SOP: why (reasons), who acts (assignee), by when, and the decision."""

    __table_args__ = (sa.UniqueConstraint("change_id", "sop_id", name="uq_impact_change_sop"),)

    id: int | None = Field(default=None, primary_key=True)
    change_id: int = Field(foreign_key="change.id", index=True)
    sop_id: str = Field(foreign_key="sop.id", index=True)
    source_id: str = Field(foreign_key="source.id", index=True)
    # open | needs_update | in_progress | updated | dismissed
    status: str = Field(default="open", index=True, max_length=20)
    # [{"watch": n, "source": id, "sections": [...matched heading paths], "keywords": [...]}, ...]
    reasons: list[dict[str, Any]] = _json([])
    assignee: str | None = None
    due_date: date | None = None
    created_at: datetime = _now_column(index=True)
    updated_at: datetime = _now_column()
    resolved_at: datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))
    resolved_by: str | None = None
    # The note given with the last decision (the dismissal reason for dismissed impacts).
    decision_note: str | None = None


class ImpactNote(SQLModel, table=True):
    """A note a person added to an impact."""

    __tablename__ = "impact_note"

    id: int | None = Field(default=None, primary_key=True)
    impact_id: int = Field(foreign_key="impact.id", index=True)
    author: str
    text: str
    created_at: datetime = _now_column()


class AuditEvent(SQLModel, table=True):
    """One state-changing action, hash-chained to the one before it. Append-only."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    # Position in the chain: 1, 2, 3 … without gaps (a gap means a deleted event).
    seq: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False, unique=True))
    at: datetime = _now_column(index=True)
    actor: str  # an email address, or "system"
    action: str = Field(index=True)  # e.g. source.added, impact.created, impact.status
    entity_type: str
    entity_id: str = Field(index=True)
    before: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
