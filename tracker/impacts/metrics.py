"""Service-level figures: how fast changes reach the SOPs, per team and per SOP, for a period.

The definitions (docs/web.md#the-sla-page says the same):
- opened: impacts raised in [since, until);
- decided: impacts whose decision (updated or dismissed) was recorded in [since, until);
- time to decision: resolved_at - created_at of the decided ones, in hours; the median, and the
  90th percentile by the nearest-rank method (the smallest value with at least 90 % at or below it);
- on time: the share of decided impacts with a due date decided on or before that date;
- overdue now: undecided impacts past their due date today, whatever the period;
- changes per source and the weekly trend count changes detected, impacts opened and decided in the
  period, weeks starting on Monday (UTC).
Only the columns these need are read, so 10,000 impacts make one light query (bench/search.py).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from tracker.impacts.statuses import FINAL
from tracker.store.db import utcnow
from tracker.store.models import Change, Impact, Sop, Team

DEFAULT_DAYS = 90


def p90(values: list[float]) -> float:
    """The nearest-rank 90th percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


@dataclass
class _Row:
    sop_id: str
    team_id: str
    created_at: datetime
    resolved_at: datetime | None
    due_date: date | None
    status: str


@dataclass
class Figures:
    """The figures of one team, one SOP, or everything."""

    key: str
    label: str
    opened: int = 0
    decided: int = 0
    median_hours: float | None = None
    p90_hours: float | None = None
    on_time_share: float | None = None  # 0..1, of decided impacts that had a due date
    overdue_now: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "opened": self.opened, "decided": self.decided,
                "median_hours": self.median_hours, "p90_hours": self.p90_hours,
                "on_time_share": self.on_time_share, "overdue_now": self.overdue_now}


@dataclass
class Week:
    """One week of the trend (Monday, UTC)."""

    start: date
    changes: int = 0
    opened: int = 0
    decided: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"week": self.start.isoformat(), "changes": self.changes, "opened": self.opened,
                "decided": self.decided}


@dataclass
class Metrics:
    """Everything the SLA page, `tracker metrics` and the export's metrics sheet show."""

    since: datetime
    until: datetime
    total: Figures
    teams: list[Figures] = field(default_factory=list)
    sops: list[Figures] = field(default_factory=list)
    sources: list[tuple[str, int]] = field(default_factory=list)
    weeks: list[Week] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat(), "total": self.total.to_json(),
                "teams": [t.to_json() for t in self.teams], "sops": [s.to_json() for s in self.sops],
                "changes_per_source": [{"source_id": s, "changes": n} for s, n in self.sources],
                "weeks": [w.to_json() for w in self.weeks]}


def default_period(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The last DEFAULT_DAYS days up to now."""
    now = now or utcnow()
    return now - timedelta(days=DEFAULT_DAYS), now


def _in(at: datetime | None, since: datetime, until: datetime) -> bool:
    return at is not None and since <= at < until


def figures(key: str, label: str, rows: Iterable[_Row], since: datetime, until: datetime, today: date) -> Figures:
    """The figures of some impacts for the period."""
    out = Figures(key, label)
    hours: list[float] = []
    due_known = on_time = 0
    for r in rows:
        out.opened += _in(r.created_at, since, until)
        if r.status not in FINAL and r.due_date is not None and r.due_date < today:
            out.overdue_now += 1
        if r.status in FINAL and r.resolved_at is not None and _in(r.resolved_at, since, until):
            out.decided += 1
            hours.append((r.resolved_at - r.created_at).total_seconds() / 3600)
            if r.due_date is not None:
                due_known += 1
                on_time += r.resolved_at.date() <= r.due_date
    if hours:
        out.median_hours, out.p90_hours = round(statistics.median(hours), 2), round(p90(hours), 2)
    if due_known:
        out.on_time_share = round(on_time / due_known, 4)
    return out


def _rows(session: Session, until: datetime) -> list[_Row]:
    q = (sa.select(col(Impact.sop_id), col(Sop.team_id), col(Impact.created_at), col(Impact.resolved_at),
                   col(Impact.due_date), col(Impact.status))
         .join(Sop, col(Sop.id) == col(Impact.sop_id)).where(col(Impact.created_at) < until))
    return [_Row(s, t or "", c, r, d, st) for s, t, c, r, d, st in session.execute(q).all()]


def _monday(at: datetime) -> date:
    d = at.date()
    return d - timedelta(days=d.weekday())


def _weeks(rows: list[_Row], changes: list[datetime], since: datetime, until: datetime) -> list[Week]:
    weeks: dict[date, Week] = {}
    start = _monday(since)
    while start < until.date() or start == _monday(since):
        weeks[start] = Week(start)
        start += timedelta(days=7)
    for at in changes:
        weeks.setdefault(_monday(at), Week(_monday(at))).changes += 1
    for r in rows:
        if _in(r.created_at, since, until):
            weeks.setdefault(_monday(r.created_at), Week(_monday(r.created_at))).opened += 1
        if r.status in FINAL and r.resolved_at is not None and _in(r.resolved_at, since, until):
            weeks.setdefault(_monday(r.resolved_at), Week(_monday(r.resolved_at))).decided += 1
    return [weeks[k] for k in sorted(weeks)]


def compute(*, session: Session, since: datetime, until: datetime, today: date | None = None,
            team: str = "") -> Metrics:
    """The SLA figures for [since, until); team narrows to one team's SOPs."""
    today = today or utcnow().date()
    rows = [r for r in _rows(session, until) if not team or r.team_id == team]
    teams = {t.id: t.name for t in session.exec(select(Team)).all()}
    sops = {s.id: s.title for s in session.exec(select(Sop)).all()}
    by_team: dict[str, list[_Row]] = defaultdict(list)
    by_sop: dict[str, list[_Row]] = defaultdict(list)
    for r in rows:
        by_team[r.team_id].append(r)
        by_sop[r.sop_id].append(r)
    pairs = session.exec(select(Change.detected_at, Change.source_id).where(
        col(Change.detected_at) >= since, col(Change.detected_at) < until, col(Change.technical).is_(False))).all()
    changes = [at for at, _ in pairs]
    per_source = Counter(src for _, src in pairs)
    return Metrics(
        since=since, until=until,
        total=figures("all", "All teams", rows, since, until, today),
        teams=[figures(k or "(none)", teams.get(k, k or "(no team)"), v, since, until, today)
               for k, v in sorted(by_team.items())],
        sops=[figures(k, sops.get(k, k), v, since, until, today) for k, v in sorted(by_sop.items())],
        sources=sorted(per_source.items(), key=lambda kv: (-kv[1], kv[0])),
        weeks=_weeks(rows, changes, since, until),
    )


# ---------------------------------------------------------------- tables (the page, its CSV, the XLSX sheet)

TABLES = ("teams", "sops", "sources", "weeks")
FIGURE_COLUMNS = ("opened", "decided", "median hours to decision", "p90 hours to decision",
                  "decided by the due date", "overdue now")


def _cell(value: float | int | None, *, share: bool = False) -> str:
    if value is None:
        return ""
    if share:
        return f"{value * 100:.1f}%"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def figure_cells(f: Figures) -> list[str]:
    """One row of a team or SOP table, as the page and the CSV both show it."""
    return [f.key, f.label, _cell(f.opened), _cell(f.decided), _cell(f.median_hours), _cell(f.p90_hours),
            _cell(f.on_time_share, share=True), _cell(f.overdue_now)]


def table(m: Metrics, name: str) -> tuple[list[str], list[list[str]]]:
    """A table of the metrics by name (see TABLES): its header and rows of text cells."""
    if name == "teams":
        return ["team", "name", *FIGURE_COLUMNS], [figure_cells(f) for f in [*m.teams, m.total]]
    if name == "sops":
        return ["sop", "title", *FIGURE_COLUMNS], [figure_cells(f) for f in m.sops]
    if name == "sources":
        return ["source", "changes"], [[s, str(n)] for s, n in m.sources]
    if name == "weeks":
        return (["week of", "changes", "impacts opened", "impacts decided"],
                [[w.start.isoformat(), str(w.changes), str(w.opened), str(w.decided)] for w in m.weeks])
    raise KeyError(name)
