"""`tracker sources …`: the source registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tracker.cli.app import app, emit_json, fail, iso, session
from tracker.cli.syncing import DRY_RUN, YES, settle

sources_app = typer.Typer(help="Declare and list watched sources.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")


@sources_app.command("sync")
def sources_sync(file: Annotated[Path, typer.Argument(help="the sources YAML file")],
                 by: Annotated[str, typer.Option("--by", help="who is syncing (email), for the audit trail")]
                 = "system", dry_run: bool = DRY_RUN, yes: bool = YES) -> None:
    """Validate a sources file and make the database match it (removed sources are disabled).

    Example: tracker sources sync sources.yaml --dry-run
    """
    from tracker.declare.sources import load_sources_file, sync_sources
    from tracker.declare.yamlfile import RegistryError

    try:
        specs = load_sources_file(file)
    except RegistryError as exc:
        fail(str(exc))
    with session() as s:
        report = sync_sources(session=s, specs=specs, actor=by)
        for sid in report.added:
            typer.echo(f"  + {sid}")
        for sid, changes in report.updated.items():
            typer.echo(f"  ~ {sid}: {', '.join(changes)}")
        for sid in report.disabled:
            typer.echo(f"  - {sid} (disabled; its history is kept)")
        if not settle(s, disabled=len(report.disabled), dry_run=dry_run, yes=yes):
            return
    typer.echo(f"synced {file}: {report.summary()}")


@sources_app.command("list")
def sources_list(as_json: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """List sources with their health."""
    from sqlmodel import select

    from tracker.check.redirects import redirected_host
    from tracker.store.models import CheckState, Source

    with session() as s:
        rows = [(src, s.get(CheckState, src.id)) for src in s.exec(select(Source).order_by(Source.id)).all()]
    if as_json:
        emit_json([
            {"id": src.id, "name": src.name, "url": src.url, "final_url": src.final_url, "kind": src.kind,
             "select": src.select, "remove": src.remove, "schedule": src.schedule, "tags": src.tags,
             "enabled": src.enabled, "options": src.options, "redirected_host": redirected_host(src),
             "last_checked_at": st.last_checked_at if st else None,
             "last_success_at": st.last_success_at if st else None,
             "last_result": st.last_result if st else None,
             "last_status": st.last_status if st else None,
             "checks": st.checks if st else 0,
             "last_error": st.last_error if st else None,
             "error_since": st.error_since if st else None,
             "consecutive_failures": st.consecutive_failures if st else 0}
            for src, st in rows
        ])
        return
    if not rows:
        typer.echo("no sources yet: `tracker sources sync sources.yaml`")
        return
    for src, st in rows:
        state = "disabled" if not src.enabled else (st.last_result if st and st.last_result else "never checked")
        typer.echo(f"{src.id:40} {src.kind:5} {state:13} {iso(st.last_checked_at if st else None):21} {src.url}")
        if (host := redirected_host(src)) is not None:
            typer.echo(f"{'':40} redirected to another host: {host} ({src.final_url}); "
                       "set options.offhost_redirects: refuse to stop following it")
        if st and st.last_error:
            typer.echo(f"{'':40} failing since {iso(st.error_since)} ({st.consecutive_failures}x): {st.last_error}")
