"""/metrics: the SLA page — per team and per SOP, how fast impacts are decided — with SVG charts and CSV.

Each chart has its numbers in a table beside it, and each table a CSV download (/metrics.csv?table=…)
built from the same cells, so what is downloaded is what is shown.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlmodel import col, select

from tracker.export.formats import defuse
from tracker.impacts.metrics import TABLES, Metrics, compute, default_period, table
from tracker.store.models import Team
from tracker.web.charts import Series, bar_chart
from tracker.web.context import CurrentUser, Problem, ReadSession, render
from tracker.web.filters import DateRange, only_filters

router = APIRouter(include_in_schema=False)
FILTERS = ("since", "until", "team")


@dataclass
class Panel:
    """One chart and the table with its numbers."""

    name: str
    title: str
    chart: Markup
    header: list[str]
    rows: list[list[str]]


def _metrics(s: ReadSession, since: str, until: str, team: str) -> tuple[Metrics, DateRange]:
    rng = DateRange.parse(since, until)
    start, end = default_period()
    if team and s.get(Team, team) is None:
        raise Problem(400, f"team={team!r} is not a team id: see the teams in the SOPs file (/sops)")
    return compute(session=s, since=rng.since or start, until=rng.until or end, team=team), rng


def panels(m: Metrics) -> list[Panel]:
    """The page's charts, each with its table."""
    teams = [*m.teams, m.total]
    weeks = [w.start.isoformat() for w in m.weeks]
    charts = {
        "teams": ("Hours to decision, per team", bar_chart(
            "Hours to decision, per team", [t.label for t in teams],
            [Series("median", [t.median_hours for t in teams]),
             Series("90th percentile", [t.p90_hours for t in teams])],
            unit=" h")),
        "sops": ("Impacts opened and decided, per SOP", bar_chart(
            "Impacts opened and decided, per SOP", [f.key for f in m.sops],
            [Series("opened", [float(f.opened) for f in m.sops]),
             Series("decided", [float(f.decided) for f in m.sops])])),
        "sources": ("Changes per source", bar_chart(
            "Changes per source", [s for s, _ in m.sources], [Series("changes", [float(n) for _, n in m.sources])])),
        "weeks": ("The trend by week", bar_chart(
            "The trend by week", weeks,
            [Series("changes", [float(w.changes) for w in m.weeks]),
             Series("opened", [float(w.opened) for w in m.weeks]),
             Series("decided", [float(w.decided) for w in m.weeks])])),
    }
    return [Panel(name, title, chart, *table(m, name)) for name, (title, chart) in charts.items()]


@router.get("/metrics")
def metrics_page(request: Request, user: CurrentUser, s: ReadSession, since: str = "", until: str = "",
                 team: str = "") -> Response:
    """The SLA page for a period (default: the last 90 days), all teams or one."""
    only_filters(request, FILTERS)
    m, rng = _metrics(s, since, until, team)
    options = list(s.exec(select(Team).order_by(col(Team.name))).all())
    return render(request, "metrics.html", user, met=m, rng=rng, team=team, teams=options, panels=panels(m),
                  query=request.url.query, nav="metrics")


@router.get("/metrics.csv")
def metrics_csv(request: Request, user: CurrentUser, s: ReadSession, since: str = "", until: str = "",
                team: str = "") -> Response:
    """One table of the SLA page as CSV (cells as shown; formula-like text defused)."""
    only_filters(request, (*FILTERS, "table"))
    name = request.query_params.get("table", "teams")
    if name not in TABLES:
        raise Problem(400, f"table={name!r}: the tables are {', '.join(TABLES)}")
    m, _ = _metrics(s, since, until, team)
    header, rows = table(m, name)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([defuse(c) for c in r] for r in rows)
    filename = f"metrics-{name}-{m.since.date().isoformat()}-{m.until.date().isoformat()}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
