"""Reads shared by the pages and the JSON API: dashboard rows, change, SOP, source and audit views."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from tracker.audit.trail import Verification, verify
from tracker.check.redirects import redirected_host
from tracker.check.render import kind_label
from tracker.declare.schedules import parse_schedule
from tracker.impacts.statuses import FINAL, STATUSES
from tracker.impacts.workflow import allowed_next, is_overdue
from tracker.public import impact_public
from tracker.store.db import utcnow
from tracker.store.models import AuditEvent, Change, CheckState, Impact, ImpactNote, Sop, Source, Team

OPEN_STATUSES = tuple(s for s in STATUSES if s not in FINAL)


@dataclass
class ImpactRow:
    """An impact with the SOP, change and source it belongs to, and whether it is overdue."""

    impact: Impact
    sop: Sop | None
    change: Change | None
    overdue: bool
    next_statuses: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return impact_public(self.impact) | {
            "overdue": self.overdue,
            "sop_title": self.sop.title if self.sop else None,
            "team_id": self.sop.team_id if self.sop else None,
            "allowed_next": list(self.next_statuses),
            "change_detected_at": self.change.detected_at if self.change else None,
        }


@dataclass
class SopGroup:
    """The dashboard's impacts of one SOP, overdue first."""

    sop_id: str
    sop: Sop | None
    rows: list[ImpactRow] = field(default_factory=list)

    @property
    def overdue(self) -> int:
        return sum(1 for r in self.rows if r.overdue)


@dataclass
class Filters:
    """The dashboard's filters; empty strings mean "any"."""

    team: str = ""
    source: str = ""
    status: str = ""
    assignee: str = ""
    since: datetime | None = None  # raised at or after
    until: datetime | None = None  # raised before

    def active(self) -> bool:
        return any((self.team, self.source, self.status, self.assignee, self.since, self.until))


def _rows(session: Session, impacts: list[Impact], today: date) -> list[ImpactRow]:
    sop_ids = {i.sop_id for i in impacts}
    change_ids = {i.change_id for i in impacts}
    sops = {s.id: s for s in session.exec(select(Sop).where(col(Sop.id).in_(sop_ids))).all()} if sop_ids else {}
    changes = (
        {c.id: c for c in session.exec(select(Change).where(col(Change.id).in_(change_ids))).all()}
        if change_ids
        else {}
    )
    return [
        ImpactRow(i, sops.get(i.sop_id), changes.get(i.change_id), is_overdue(i, today=today), allowed_next(i.status))
        for i in impacts
    ]


def impact_rows(session: Session, filters: Filters, *, today: date | None = None) -> list[ImpactRow]:
    """Impacts matching the filters (open ones unless a status is chosen), overdue first, then by due date."""
    today = today or utcnow().date()
    q = select(Impact)
    if filters.status:
        q = q.where(Impact.status == filters.status)
    else:
        q = q.where(col(Impact.status).in_(OPEN_STATUSES))
    if filters.source:
        q = q.where(Impact.source_id == filters.source)
    if filters.assignee == "-":
        q = q.where(col(Impact.assignee).is_(None))
    elif filters.assignee:
        q = q.where(Impact.assignee == filters.assignee)
    if filters.team:
        q = q.join(Sop, col(Sop.id) == col(Impact.sop_id)).where(Sop.team_id == filters.team)
    if filters.since is not None:
        q = q.where(col(Impact.created_at) >= filters.since)
    if filters.until is not None:
        q = q.where(col(Impact.created_at) < filters.until)
    impacts = list(session.exec(q.order_by(col(Impact.id))).all())
    rows = _rows(session, impacts, today)
    rows.sort(key=lambda r: (not r.overdue, r.impact.due_date or date.max, r.impact.id or 0))
    return rows


def dashboard_groups(rows: list[ImpactRow]) -> list[SopGroup]:
    """Rows grouped by SOP: SOPs with overdue impacts first, then by their earliest due date."""
    groups: dict[str, SopGroup] = {}
    for r in rows:
        groups.setdefault(r.impact.sop_id, SopGroup(r.impact.sop_id, r.sop)).rows.append(r)
    return sorted(
        groups.values(), key=lambda g: (-g.overdue, min((r.impact.due_date or date.max) for r in g.rows), g.sop_id)
    )


def filter_options(session: Session) -> dict[str, list[Any]]:
    """The choices of the dashboard's filters."""
    assignees = session.exec(select(Impact.assignee).where(col(Impact.assignee).is_not(None)).distinct()).all()
    return {
        "teams": list(session.exec(select(Team).order_by(col(Team.name))).all()),
        "sources": list(session.exec(select(Source).order_by(col(Source.name))).all()),
        "statuses": list(STATUSES),
        "assignees": sorted(a for a in assignees if a),
    }


def impacts_of_change(session: Session, change_id: int) -> list[ImpactRow]:
    """Every impact of a change (the SOPs it touches)."""
    impacts = list(session.exec(select(Impact).where(Impact.change_id == change_id).order_by(col(Impact.sop_id))).all())
    return _rows(session, impacts, utcnow().date())


def impacts_of_sop(session: Session, sop_id: str) -> list[ImpactRow]:
    """An SOP's impact history, newest first."""
    impacts = list(
        session.exec(
            select(Impact).where(Impact.sop_id == sop_id).order_by(col(Impact.created_at).desc(), col(Impact.id).desc())
        ).all()
    )
    return _rows(session, impacts, utcnow().date())


def impact_row(session: Session, impact_id: int) -> ImpactRow | None:
    """One impact with its SOP and change."""
    impact = session.get(Impact, impact_id)
    return _rows(session, [impact], utcnow().date())[0] if impact else None


def notes_of(session: Session, impact_id: int) -> list[ImpactNote]:
    """An impact's notes, oldest first."""
    return list(
        session.exec(select(ImpactNote).where(ImpactNote.impact_id == impact_id).order_by(col(ImpactNote.id))).all()
    )


def impact_events(session: Session, impact_id: int) -> list[AuditEvent]:
    """The audit events about one impact, oldest first."""
    return list(
        session.exec(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "impact", AuditEvent.entity_id == str(impact_id))
            .order_by(col(AuditEvent.seq))
        ).all()
    )


def recent_changes(session: Session, *, source: str = "", limit: int = 100, since: datetime | None = None,
                   until: datetime | None = None) -> list[Change]:
    """Changes, newest first, detected in [since, until) when given."""
    q = select(Change).order_by(col(Change.detected_at).desc(), col(Change.id).desc()).limit(limit)
    if source:
        q = q.where(Change.source_id == source)
    if since is not None:
        q = q.where(col(Change.detected_at) >= since)
    if until is not None:
        q = q.where(col(Change.detected_at) < until)
    return list(session.exec(q).all())


@dataclass
class SourceHealth:
    """A source and the state of its checks."""

    source: Source
    state: CheckState | None
    next_due: datetime | None
    # The scheduler's stored next run (tracker run), when one is stored; next_due is the schedule's estimate.
    next_run: datetime | None = None

    @property
    def healthy(self) -> bool:
        return self.state is None or not self.state.last_error or self.state.consecutive_failures == 0

    @property
    def kind_label(self) -> str:
        """The source's kind as people read it (`html (browser)` for a rendered page)."""
        return kind_label(self.source.kind, self.source.options)

    @property
    def redirected_host(self) -> str | None:
        """The other host the source's page was last fetched from (a redirect off its own host)."""
        return redirected_host(self.source)

    def to_json(self) -> dict[str, Any]:
        st = self.state
        return {
            "id": self.source.id,
            "name": self.source.name,
            "url": self.source.url,
            "kind": self.source.kind,
            "kind_label": self.kind_label,
            "final_url": self.source.final_url,
            "redirected_host": self.redirected_host,
            "enabled": self.source.enabled,
            "schedule": self.source.schedule,
            "last_checked_at": st.last_checked_at if st else None,
            "last_success_at": st.last_success_at if st else None,
            "last_result": st.last_result if st else None,
            "last_error": st.last_error if st else None,
            "error_since": st.error_since if st else None,
            "consecutive_failures": st.consecutive_failures if st else 0,
            "next_due": self.next_due,
            "next_run": self.next_run,
            "healthy": self.healthy,
        }


def _next_due(source: Source, state: CheckState | None, default_schedule: str) -> datetime | None:
    if not source.enabled:
        return None
    if state is None or state.last_checked_at is None:
        return utcnow()
    try:
        sched = parse_schedule(source.schedule or default_schedule)
    except ValueError:
        return None
    if sched.interval is not None:
        return state.last_checked_at + sched.interval
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(sched.cron or "", timezone="UTC")
    fire: datetime | None = trigger.get_next_fire_time(None, state.last_checked_at + timedelta(seconds=1))
    return fire


def source_health(session: Session, *, default_schedule: str) -> list[SourceHealth]:
    """Every source with its check state and when it is next due by its schedule."""
    sources = list(session.exec(select(Source).order_by(col(Source.enabled).desc(), col(Source.name))).all())
    states = {s.source_id: s for s in session.exec(select(CheckState)).all()}
    from tracker.service.scheduler import next_source_runs

    scheduled = next_source_runs(session=session)
    return [SourceHealth(s, states.get(s.id), _next_due(s, states.get(s.id), default_schedule), scheduled.get(s.id))
            for s in sources]


def health_of(session: Session, source: Source, *, default_schedule: str) -> SourceHealth:
    """One source with its check state, when it is next due by its schedule, and its stored next run."""
    from tracker.service.scheduler import next_source_runs

    state = session.get(CheckState, source.id)
    return SourceHealth(source, state, _next_due(source, state, default_schedule),
                        next_source_runs(session=session).get(source.id))


def audit_page(session: Session, *, before: int | None = None, limit: int = 100, entity: str = "",
               since: datetime | None = None, until: datetime | None = None) -> list[AuditEvent]:
    """Audit events newest first, `limit` at a time, older than seq `before`, in [since, until) when given."""
    q = select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(limit)
    if since is not None:
        q = q.where(col(AuditEvent.at) >= since)
    if until is not None:
        q = q.where(col(AuditEvent.at) < until)
    if before is not None:
        q = q.where(AuditEvent.seq < before)
    if entity:
        kind, _, ident = entity.partition(":")
        q = q.where(AuditEvent.entity_type == kind)
        if ident:
            q = q.where(AuditEvent.entity_id == ident)
    return list(session.exec(q).all())


def verification(session: Session) -> Verification:
    """The audit chain's verification (walks every event)."""
    return verify(session)
