"""The pages: dashboard, changes, impacts, SOPs, sources, audit log, users (GET only, any role)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session, col, select

from tracker.accounts import ROLES, list_users
from tracker.check.diff import Diff
from tracker.impacts.statuses import STATUSES
from tracker.impacts.suggest import suggest
from tracker.store.models import Change, Sop, Source, Team, Version
from tracker.web import queries as q
from tracker.web.context import CurrentUser, Problem, ReadSession, ctx, render
from tracker.web.diffview import build_view
from tracker.web.filters import DateRange, only_filters
from tracker.web.review import impact_excerpt, part_anchors, table_of_contents

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard(
    request: Request,
    user: CurrentUser,
    s: ReadSession,
    team: str = "",
    source: str = "",
    status: str = "",
    assignee: str = "",
    since: str = "",
    until: str = "",
) -> Response:
    """Open impacts grouped by SOP, overdue first, filterable by team, source, status, assignee and date raised."""
    only_filters(request, ("team", "source", "status", "assignee", "since", "until"))
    if status and status not in STATUSES:
        raise Problem(400, f"unknown status {status!r}; statuses are {', '.join(STATUSES)}")
    rng = DateRange.parse(since, until)
    filters = q.Filters(team=team, source=source, status=status, assignee=assignee, since=rng.since,
                        until=rng.until)
    rows = q.impact_rows(s, filters)
    return render(
        request,
        "dashboard.html",
        user,
        filters=filters,
        rng=rng,
        groups=q.dashboard_groups(rows),
        total=len(rows),
        overdue=sum(1 for r in rows if r.overdue),
        options=q.filter_options(s),
        changes=q.recent_changes(s, limit=10),
        nav="dashboard",
    )


@router.get("/changes")
def changes(request: Request, user: CurrentUser, s: ReadSession, source: str = "", since: str = "",
            until: str = "") -> Response:
    """Detected changes, newest first, of one source and in a date range when asked."""
    only_filters(request, ("source", "since", "until"))
    rng = DateRange.parse(since, until)
    rows = q.recent_changes(s, source=source, limit=200, since=rng.since, until=rng.until)
    counts = {c.id: len(q.impacts_of_change(s, c.id or 0)) for c in rows}
    sources = list(s.exec(select(Source).order_by(col(Source.name))).all())
    return render(
        request, "changes.html", user, changes=rows, counts=counts, sources=sources, source=source, rng=rng,
        nav="changes",
    )


@router.get("/changes/{change_id}")
def change_page(request: Request, change_id: int, user: CurrentUser, s: ReadSession, view: str = "side",
                page: int = 1) -> Response:
    """A change: its section-by-section diff (side by side or inline) and the SOPs it touches."""
    change = s.get(Change, change_id)
    if change is None:
        raise Problem(404, f"no change #{change_id}: see the list of changes at /changes")
    source = s.get(Source, change.source_id)
    diff = Diff.from_json(change.diff)
    dview = build_view(diff, s.get(Version, change.from_version_id), s.get(Version, change.to_version_id),
                       page=page)
    impacts = q.impacts_of_change(s, change_id)
    return render(
        request,
        "change.html",
        user,
        change=change,
        source=source,
        dview=dview,
        view="inline" if view == "inline" else "side",
        impacts=impacts,
        toc=table_of_contents(diff, [r.impact for r in impacts]),
        anchors=part_anchors(dview.parts),
        suggestions=[] if impacts else suggest(s, change),
        statuses=STATUSES,
        nav="changes",
    )


@router.get("/impacts/{impact_id}")
def impact_page(request: Request, impact_id: int, user: CurrentUser, s: ReadSession) -> Response:
    """An impact: why it was raised, its status, assignee, due date, notes and history, with the actions."""
    row = q.impact_row(s, impact_id)
    if row is None:
        raise Problem(404, f"no impact #{impact_id}: see the dashboard at /")
    source = s.get(Source, row.impact.source_id)
    return render(
        request,
        "impact.html",
        user,
        row=row,
        source=source,
        excerpt=impact_excerpt(row.impact, row.change),
        notes=q.notes_of(s, impact_id),
        events=q.impact_events(s, impact_id),
        nav="dashboard",
    )


@router.get("/sops")
def sops(request: Request, user: CurrentUser, s: ReadSession) -> Response:
    """Every SOP with its team and open impacts."""
    rows = list(s.exec(select(Sop).order_by(col(Sop.title))).all())
    open_counts = {
        sop.id: sum(1 for r in q.impacts_of_sop(s, sop.id) if r.impact.status in q.OPEN_STATUSES) for sop in rows
    }
    teams = {t.id: t for t in s.exec(select(Team)).all()}
    return render(request, "sops.html", user, sops=rows, open_counts=open_counts, teams=teams, nav="sops")


@router.get("/sops/{sop_id}")
def sop_page(request: Request, sop_id: str, user: CurrentUser, s: ReadSession) -> Response:
    """An SOP: its watches and the history of its impacts."""
    sop = s.get(Sop, sop_id)
    if sop is None:
        raise Problem(404, f"no SOP {sop_id!r}: see the list of SOPs at /sops")
    team = s.get(Team, sop.team_id) if sop.team_id else None
    from tracker.impacts.globcheck import unmatched_globs

    return render(request, "sop.html", user, sop=sop, team=team, impacts=q.impacts_of_sop(s, sop_id), nav="sops",
                  glob_warnings=unmatched_globs(session=s, sops=[(sop.id, sop.watches)]))


@router.get("/sources")
def sources(request: Request, user: CurrentUser, s: ReadSession) -> Response:
    """Sources with their health: last check, last error and since when, next due."""
    health = q.source_health(s, default_schedule=ctx(request).settings.default_schedule)
    return render(request, "sources.html", user, health=health, nav="sources")


@router.get("/audit")
def audit(request: Request, user: CurrentUser, s: ReadSession, before: int | None = None, entity: str = "",
          since: str = "", until: str = "") -> Response:
    """The audit log, newest first, with the verification of its hash chain; by entity and date range."""
    only_filters(request, ("entity", "since", "until"))
    rng = DateRange.parse(since, until)
    with Session(ctx(request).engine) as vs:
        check = q.verification(vs)
    events = q.audit_page(s, before=before, entity=entity, since=rng.since, until=rng.until)
    older = events[-1].seq if events and events[-1].seq > 1 else None
    return render(request, "audit.html", user, check=check, events=events, older=older, entity=entity, rng=rng,
                  nav="audit")


@router.get("/users")
def users(request: Request, user: CurrentUser, s: ReadSession) -> Response:
    """Users and roles (admins only: adding users and changing roles)."""
    if not user.is_admin:
        raise Problem(403, f"{user.email} is a {user.role}: only admins see and manage users")
    return render(request, "users.html", user, users=list_users(session=s), roles=ROLES, nav="users")
