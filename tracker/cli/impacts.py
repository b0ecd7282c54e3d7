"""`tracker impacts …`: which changes affect which SOPs, and the PM's decisions on them."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tracker.cli.app import actor, app, check_range, emit_json, fail, iso, parse_since, parse_until, session, settings
from tracker.impacts.statuses import STATUSES

if TYPE_CHECKING:
    from sqlmodel import Session

    from tracker.store.models import Change, Impact, Sop

impacts_app = typer.Typer(help="Impacts of changes on SOPs, and the workflow to decide them.",
                          no_args_is_help=True)
app.add_typer(impacts_app, name="impacts")

By = Annotated[str | None, typer.Option("--by", help="who is acting (email), for the audit trail; "
                                       "default: TRACKER_ACTOR")]
Note = Annotated[str | None, typer.Option("--note", help="a note (kept on the impact and in the audit trail)")]


def reason_text(reason: dict[str, Any]) -> str:
    """One reason, readably: which watch, which sections, which keywords."""
    parts = [f"watch {reason.get('watch')} on {reason.get('source')}"]
    if reason.get("sections"):
        parts.append("sections " + "; ".join(reason["sections"]))
    if reason.get("keywords"):
        parts.append("keywords " + ", ".join(reason["keywords"]))
    if len(parts) == 1:
        parts.append("any change")
    return ": ".join(parts[:1]) + (": " + ", ".join(parts[1:]))


def _check_status(status: str | None, option: str = "--status") -> None:
    if status is not None and status not in STATUSES:
        fail(f"{option} {status!r} is not a status; statuses are {', '.join(STATUSES)}")


def _context(s: Session, impacts: list[Impact]) -> tuple[dict[int, Change], dict[str, Sop]]:
    from sqlmodel import col, select

    from tracker.store.models import Change, Sop

    change_ids = {i.change_id for i in impacts}
    sop_ids = {i.sop_id for i in impacts}
    changes = {c.id or 0: c for c in s.exec(select(Change).where(col(Change.id).in_(change_ids))).all()} \
        if change_ids else {}
    sops = {p.id: p for p in s.exec(select(Sop).where(col(Sop.id).in_(sop_ids))).all()} if sop_ids else {}
    return changes, sops


@impacts_app.command("list")
def impacts_list(
    status: Annotated[str | None, typer.Option("--status", help=f"only this status: {', '.join(STATUSES)}")] = None,
    sop: Annotated[str | None, typer.Option("--sop", help="only this SOP id")] = None,
    source: Annotated[str | None, typer.Option("--source", help="only this source id")] = None,
    assignee: Annotated[str | None, typer.Option("--assignee", help="only impacts assigned to this email")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="only undecided impacts past their due date")] = False,
    team: Annotated[str | None, typer.Option("--team", help="only impacts on SOPs of this team id")] = None,
    since: Annotated[str | None, typer.Option("--since", help="raised at or after this ISO 8601 date or time")] = None,
    until: Annotated[str | None, typer.Option("--until", help="raised before this ISO 8601 date or time")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
) -> None:
    """List impacts, newest first.

    Example: tracker impacts list --team support --since 2026-11-01 --status open
    """
    from sqlmodel import col, select

    from tracker.impacts.statuses import FINAL
    from tracker.impacts.workflow import is_overdue
    from tracker.public import impact_public
    from tracker.store.db import utcnow
    from tracker.store.models import Impact, Sop, Source, Team

    _check_status(status)
    today = utcnow().date()
    after, before = parse_since(since), parse_until(until)
    check_range(after, before)
    with session() as s:
        if team and s.get(Team, team) is None:
            fail(f"unknown team id {team!r} (see `tracker sops list`)")
        if sop and s.get(Sop, sop) is None:
            fail(f"unknown SOP id {sop!r} (see `tracker sops list`)")
        if source and s.get(Source, source) is None:
            fail(f"unknown source id {source!r} (see `tracker sources list`)")
        q = select(Impact).order_by(col(Impact.created_at).desc(), col(Impact.id).desc())
        if status:
            q = q.where(Impact.status == status)
        if sop:
            q = q.where(Impact.sop_id == sop)
        if source:
            q = q.where(Impact.source_id == source)
        if assignee:
            q = q.where(Impact.assignee == assignee)
        if overdue:
            q = q.where(col(Impact.status).not_in(FINAL), col(Impact.due_date) < today)
        if team:
            q = q.join(Sop, col(Sop.id) == col(Impact.sop_id)).where(Sop.team_id == team)
        if after is not None:
            q = q.where(col(Impact.created_at) >= after)
        if before is not None:
            q = q.where(col(Impact.created_at) < before)
        rows = list(s.exec(q).all())
        changes, sops = _context(s, rows)
    if as_json:
        emit_json([impact_public(i, change=changes.get(i.change_id), sop=sops.get(i.sop_id), today=today)
                   for i in rows])
        return
    if not rows:
        filtered = any((status, sop, source, assignee, overdue, team, since, until))
        typer.echo("no impacts" + (" matching the filters" if filtered else ""))
        return
    for i in rows:
        late = "  OVERDUE" if is_overdue(i, today=today) else ""
        typer.echo(f"#{i.id:<5} {i.status:12} {i.sop_id:20} change #{i.change_id} in {i.source_id}  "
                   f"due {i.due_date or '-'}  {i.assignee or 'unassigned'}{late}")
        for r in i.reasons:
            typer.echo(f"{'':7}{reason_text(r)}")


@impacts_app.command("show")
def impacts_show(impact_id: Annotated[int, typer.Argument(help="the impact id")],
                 as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False) -> None:
    """Show one impact: why it was raised, its status, notes and what may happen next."""
    from tracker.impacts.workflow import notes_for
    from tracker.public import impact_public
    from tracker.store.models import Impact

    with session() as s:
        impact = s.get(Impact, impact_id)
        if impact is None:
            fail(f"no impact #{impact_id} (see `tracker impacts list`)")
        changes, sops = _context(s, [impact])
        notes = notes_for(session=s, impact_id=impact_id)
    data = impact_public(impact, change=changes.get(impact.change_id), sop=sops.get(impact.sop_id))
    if as_json:
        emit_json(data | {"notes": [{"id": n.id, "author": n.author, "text": n.text, "created_at": n.created_at}
                                    for n in notes]})
        return
    typer.echo(f"impact #{impact.id}: SOP {impact.sop_id} ({data['sop_title']}) by change #{impact.change_id} "
               f"in {impact.source_id}")
    typer.echo(f"status {impact.status}; next: {', '.join(data['allowed_next']) or 'none'}")
    typer.echo(f"assignee {impact.assignee or '-'}; due {impact.due_date or '-'}"
               + ("  OVERDUE" if data["overdue"] else ""))
    if impact.resolved_at:
        typer.echo(f"decided {iso(impact.resolved_at)} by {impact.resolved_by}: {impact.decision_note or '-'}")
    typer.echo("why:")
    for r in impact.reasons:
        typer.echo(f"  {reason_text(r)}")
    if notes:
        typer.echo("notes:")
        for n in notes:
            typer.echo(f"  {iso(n.created_at)} {n.author}: {n.text}")
    typer.echo(f"diff: `tracker changes show {impact.change_id}`")


def _parse_due(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"--due {value!r} is not a date (YYYY-MM-DD)")


def _mark(impact_id: int, *, by: str, status: str | None = None, note: str | None = None,
          assignee: str | None = None, due: date | None = None) -> None:
    from tracker.impacts.workflow import WorkflowError, mark_impact

    try:
        with session() as s:
            impact = mark_impact(session=s, impact_id=impact_id, by=by, status=status, note=note,
                                 assignee=assignee, due=due, max_note_chars=settings().max_note_chars)
    except WorkflowError as exc:
        fail(str(exc))
    typer.echo(f"impact #{impact.id} ({impact.sop_id}): {impact.status}, assignee {impact.assignee or '-'}, "
               f"due {impact.due_date or '-'}")


@impacts_app.command("mark")
def impacts_mark(
    impact_id: Annotated[int, typer.Argument(help="the impact id")],
    by: By = None,
    status: Annotated[str | None, typer.Option("--status", help=f"new status: {', '.join(STATUSES)}")] = None,
    note: Note = None,
    assignee: Annotated[str | None, typer.Option("--assignee", help="assign to this email ('' unassigns)")] = None,
    due: Annotated[str | None, typer.Option("--due", help="new due date, YYYY-MM-DD")] = None,
) -> None:
    """Change an impact's status, assignee or due date (any combination). Illegal transitions exit 2.

    Example: tracker impacts mark 12 --status in_progress --assignee ana@example.com --by pm@example.com
    """
    _check_status(status)
    _mark(impact_id, by=actor(by), status=status, note=note, assignee=assignee, due=_parse_due(due))


@impacts_app.command("needs-update")
def impacts_needs_update(impact_id: Annotated[int, typer.Argument(help="the impact id")], by: By = None,
                         note: Note = None) -> None:
    """Mark that the impact's SOP needs updating (the one-command shortcut for open -> needs_update).

    Example: TRACKER_ACTOR=pm@example.com tracker impacts needs-update 12
    """
    _mark(impact_id, by=actor(by), status="needs_update", note=note)


@impacts_app.command("dismiss")
def impacts_dismiss(impact_id: Annotated[int, typer.Argument(help="the impact id")],
                    reason: Annotated[str, typer.Option("--reason", help="why the SOP needs no change")],
                    by: By = None) -> None:
    """Dismiss an impact: the change does not affect the SOP after all (a reason is required).

    Example: tracker impacts dismiss 12 --reason "wording only" --by pm@example.com
    """
    _mark(impact_id, by=actor(by), status="dismissed", note=reason)


@impacts_app.command("note")
def impacts_note(impact_id: Annotated[int, typer.Argument(help="the impact id")],
                 text: Annotated[str, typer.Argument(help="the note")], by: By = None) -> None:
    """Add a note to an impact.

    Example: tracker impacts note 12 "asked legal" --by pm@example.com
    """
    from tracker.impacts.workflow import WorkflowError, add_note

    try:
        with session() as s:
            note = add_note(session=s, impact_id=impact_id, by=actor(by), text=text,
                            max_note_chars=settings().max_note_chars)
    except WorkflowError as exc:
        fail(str(exc))
    typer.echo(f"note #{note.id} added to impact #{impact_id}")


@impacts_app.command("mark-change")
def impacts_mark_change(change_id: Annotated[int, typer.Argument(help="the change id")],
                        status: Annotated[str, typer.Option("--status", help="new status for every impact")],
                        by: By = None, note: Note = None) -> None:
    """Move every impact of one change to a status at once (all or nothing).

    Example: tracker impacts mark-change 7 --status needs_update --by pm@example.com
    """
    from tracker.impacts.workflow import WorkflowError, mark_change

    _check_status(status)
    try:
        with session() as s:
            done = mark_change(session=s, change_id=change_id, by=actor(by), status=status, note=note,
                               max_note_chars=settings().max_note_chars)
    except WorkflowError as exc:
        fail(str(exc))
    typer.echo(f"change #{change_id}: {len(done)} impact(s) marked {status}")


@impacts_app.command("remap")
def impacts_remap(
    since: Annotated[str | None, typer.Option("--since", help="only changes detected since (ISO 8601)")] = None,
    source: Annotated[str | None, typer.Option("--source", help="only changes of this source id")] = None,
) -> None:
    """Map changes already recorded to the current SOPs (after SOPs were added); never duplicates."""
    from tracker.impacts.remap import remap
    from tracker.store.models import Source

    after = parse_since(since)
    with session() as s:
        if source and s.get(Source, source) is None:
            fail(f"unknown source id {source!r} (see `tracker sources list`)")
        report = remap(session=s, since=after, source_id=source)
        created = [(i.id, i.sop_id, i.change_id) for i in report.impacts]
    for iid, sop_id, cid in created:
        typer.echo(f"  + impact #{iid}: {sop_id} by change #{cid}")
    typer.echo(f"mapped {report.changes} change(s): {len(created)} new impact(s)")
