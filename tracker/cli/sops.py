"""`tracker sops …`: the SOP registry (teams and SOPs, and what each watches)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tracker.cli.app import app, emit_json, fail, session
from tracker.cli.syncing import DRY_RUN, YES, settle

if TYPE_CHECKING:
    from tracker.store.models import Sop

sops_app = typer.Typer(help="Declare and list SOPs, their teams and what they watch.", no_args_is_help=True)
app.add_typer(sops_app, name="sops")


@sops_app.command("sync")
def sops_sync(file: Annotated[Path, typer.Argument(help="the SOP YAML file (teams: and sops:)")],
              by: Annotated[str, typer.Option("--by", help="who is syncing (email), for the audit trail")]
              = "system", dry_run: bool = DRY_RUN, yes: bool = YES) -> None:
    """Validate an SOP file and make the database match it (removed SOPs and teams are disabled).

    Example: tracker sops sync sops.yaml --dry-run
    """
    from sqlmodel import select

    from tracker.declare.sops import load_sops_file, sync_sops
    from tracker.declare.yamlfile import RegistryError
    from tracker.impacts.globcheck import unmatched_globs
    from tracker.impacts.workflow import WorkflowError, check_actor
    from tracker.store.models import Source, Team

    try:
        actor = check_actor(by)
    except WorkflowError as exc:
        fail(f"--by: {exc}")
    with session() as s:
        known = set(s.exec(select(Source.id)).all())
        ui_teams = set(s.exec(select(Team.id).where(Team.managed_by == "ui")).all())
        try:
            sop_file = load_sops_file(file, known_sources=known, known_teams=ui_teams)
        except RegistryError as exc:
            fail(str(exc))
        report = sync_sops(session=s, sop_file=sop_file, actor=actor)
        warnings = unmatched_globs(session=s, sops=((p.id, [w.to_json() for w in p.watches])
                                                    for p in sop_file.sops if p.enabled))
        for tid in report.teams_added:
            typer.echo(f"  + team {tid}")
        for tid, changes in report.teams_updated.items():
            typer.echo(f"  ~ team {tid}: {', '.join(changes)}")
        for tid in report.teams_disabled:
            typer.echo(f"  - team {tid} (disabled; kept)")
        for sid in report.added:
            typer.echo(f"  + {sid}")
        for sid, changes in report.updated.items():
            typer.echo(f"  ~ {sid}: {', '.join(changes)}")
        for sid in report.disabled:
            typer.echo(f"  - {sid} (disabled; its impacts and history are kept)")
        if skipped := [*report.skipped_ui, *(f"team {t}" for t in report.teams_skipped_ui)]:
            typer.echo(f"  {len(skipped)} managed in the UI, left alone: {', '.join(skipped)} "
                       "(hand back with `tracker sops manage ID --by file`, adding --team for a team)")
        if not settle(s, disabled=len(report.disabled) + len(report.teams_disabled), dry_run=dry_run, yes=yes):
            return
    typer.echo(f"synced {file}: {report.summary()}")
    for warning in warnings:
        typer.echo(f"warning: {warning.message()}")
    if report.added or report.updated:
        typer.echo("changes already recorded are mapped to new watches with `tracker impacts remap`")


def sop_json(sop: Sop, open_impacts: int = 0) -> dict[str, Any]:
    """The JSON form of an SOP."""
    return {"id": sop.id, "title": sop.title, "owner": sop.owner, "team_id": sop.team_id, "url": sop.url,
            "review_days": sop.review_days, "watches": sop.watches, "enabled": sop.enabled,
            "open_impacts": open_impacts, "created_at": sop.created_at, "updated_at": sop.updated_at}


@sops_app.command("list")
def sops_list(as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False) -> None:
    """List SOPs with their owner, team, watches and undecided impacts."""
    from sqlmodel import col, func, select

    from tracker.impacts.statuses import FINAL
    from tracker.store.models import Impact, Sop, Team

    with session() as s:
        sops = list(s.exec(select(Sop).order_by(col(Sop.id))).all())
        counts = dict(s.exec(select(Impact.sop_id, func.count()).where(col(Impact.status).not_in(FINAL))
                             .group_by(Impact.sop_id)).all())
        teams = {t.id: t for t in s.exec(select(Team)).all()}
    if as_json:
        emit_json({"sops": [sop_json(p, counts.get(p.id, 0)) for p in sops],
                   "teams": [{"id": t.id, "name": t.name, "members": t.members, "enabled": t.enabled}
                             for t in sorted(teams.values(), key=lambda t: t.id)]})
        return
    if not sops:
        typer.echo("no SOPs yet: `tracker sops sync sops.yaml`")
        return
    for p in sops:
        state = "" if p.enabled else " [disabled]"
        team = teams[p.team_id].name if p.team_id in teams else "-"
        typer.echo(f"{p.id:20} {p.title}{state}")
        typer.echo(f"{'':20} owner {p.owner}, team {team}, {counts.get(p.id, 0)} undecided impact(s)")
        for n, w in enumerate(p.watches, 1):
            parts = [w["source"]]
            if w.get("sections"):
                parts.append("sections " + ", ".join(w["sections"]))
            if w.get("keywords"):
                parts.append("keywords " + ", ".join(w["keywords"]))
            typer.echo(f"{'':20} watch {n}: {'; '.join(parts)}")
