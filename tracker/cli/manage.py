"""`tracker sources export|manage|check` and `tracker sops export|manage`: the database as YAML, where a row
is managed (its file or the browser), and checking a source now."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from tracker.cli.app import EXIT_FAILURES, engine, fail, session, settings
from tracker.cli.sops import sops_app
from tracker.cli.sources import sources_app

OUTPUT = typer.Option("--output", "-o", help="write the YAML to this file (default: standard output)")
MANAGED = typer.Option("--managed", help="which rows: all, file (managed in files) or ui (in the browser)")
MANAGE_BY = typer.Option("--by", help="file: its YAML file's sync manages it; ui: the browser does")
ACTOR = typer.Option("--actor", help="who is doing it (email), for the audit trail")
_WHERE = {"file": "in files: the next sync makes it match its file (and disables it when the file does not list it)",
          "ui": "in the UI: file syncs leave it alone"}


def _export(what: str, output: Path | None, managed: str) -> None:
    from tracker.declare.manage import MANAGED_CHOICES, export_sops_yaml, export_sources_yaml

    if managed not in MANAGED_CHOICES:
        fail(f"--managed must be one of {', '.join(MANAGED_CHOICES)}, got {managed!r}")
    with session() as s:
        text = (export_sources_yaml if what == "sources" else export_sops_yaml)(session=s, managed=managed)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"exported the {what} to {output}: `tracker {what} sync {output}` reads it back with no change")


@sources_app.command("export")
def sources_export(output: Annotated[Path | None, OUTPUT] = None, managed: Annotated[str, MANAGED] = "all") -> None:
    """Print the sources in the database as a sources file (disabled ones with enabled: false).

    Example: tracker sources export --output sources.yaml
    """
    _export("sources", output, managed)


@sops_app.command("export")
def sops_export(output: Annotated[Path | None, OUTPUT] = None, managed: Annotated[str, MANAGED] = "all") -> None:
    """Print the teams and SOPs in the database as an SOP file.

    Example: tracker sops export --managed ui --output sops-ui.yaml
    """
    _export("sops", output, managed)


def _manage(entity: str, entity_id: str, by: str, actor: str) -> None:
    from tracker.declare.manage import set_managed_by
    from tracker.declare.managed import label
    from tracker.impacts.workflow import WorkflowError

    if by not in ("file", "ui"):
        fail(f"--by must be file or ui, got {by!r}")
    with session() as s:
        try:
            changed = set_managed_by(session=s, entity=entity, entity_id=entity_id, managed_by=by, actor=actor)
        except WorkflowError as exc:
            fail(str(exc))
    state = "is now" if changed else "was already"
    typer.echo(f"{label(entity)} {entity_id} {state} managed {_WHERE[by]}")


@sources_app.command("manage")
def sources_manage(source_id: Annotated[str, typer.Argument(help="the source id")],
                   by: Annotated[str, MANAGE_BY], actor: Annotated[str, ACTOR] = "system") -> None:
    """Say where a source is managed: hand a source edited in the browser back to the sources file (--by file).

    Example: tracker sources manage tiktok-privacy --by file
    """
    _manage("source", source_id, by, actor)


@sops_app.command("manage")
def sops_manage(entity_id: Annotated[str, typer.Argument(help="the SOP id (or the team id, with --team)")],
                by: Annotated[str, MANAGE_BY], actor: Annotated[str, ACTOR] = "system",
                team: Annotated[bool, typer.Option("--team", help="the id is a team's")] = False) -> None:
    """Say where an SOP (or a team) is managed: hand one edited in the browser back to the SOP file (--by file).

    Example: tracker sops manage SOP-CS-014 --by file
    """
    _manage("team" if team else "sop", entity_id, by, actor)


@sources_app.command("check")
def sources_check(source_id: Annotated[str, typer.Argument(help="the source id")],
                  wait: Annotated[float, typer.Option("--wait", min=0, help="seconds to wait for the running "
                                                      "service's outcome")] = 300.0,
                  by: Annotated[str, typer.Option("--by", help="who asks (email), shown on the request")]
                  = "system") -> None:
    """Check one source now: through the running `tracker run` when there is one (waiting up to --wait
    seconds for its outcome), else here. Exit 0 when checked, 3 when the check failed or did not finish in time.

    Example: tracker sources check tiktok-privacy
    """
    from tracker.impacts.workflow import WorkflowError
    from tracker.service.checknow import request_check, run_check_now, service_running
    from tracker.store.models import CheckRequest

    try:
        with session() as s:
            queued = service_running(session=s)
            if queued:
                req = request_check(session=s, source_id=source_id, actor=by)
        if not queued:
            typer.echo(f"no `tracker run` is running: checking {source_id} here", err=True)
            eng = engine()
            try:
                req = run_check_now(settings=settings(), engine=eng, source_id=source_id, actor=by)
            finally:
                eng.dispose()
    except WorkflowError as exc:
        fail(str(exc))
    if queued:
        typer.echo(f"check of {source_id} {req.state} in the running service (request #{req.id})", err=True)
        deadline, seen = time.monotonic() + wait, req.state
        while req.state in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.5)
            with session() as s:
                found = s.get(CheckRequest, req.id)
            req = found or req
            if req.state != seen:
                seen = req.state
                typer.echo(f"  {req.state}", err=True)
        if req.state in ("queued", "running"):
            fail(f"the check of {source_id} is still {req.state} after {wait:g}s; its outcome will show in "
                 f"`tracker sources show {source_id}`", code=EXIT_FAILURES)
    typer.echo(f"{source_id}: {req.outcome}" + (f": {req.error}" if req.error else ""))
    if req.state == "failed":
        raise typer.Exit(EXIT_FAILURES)
