"""`tracker sources …`: the source registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tracker.cli.app import app, emit_json, fail, iso, session, settings
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
    from spiders import KINDS
    from tracker.declare.sources import load_sources_file, sync_sources
    from tracker.declare.yamlfile import RegistryError

    try:
        specs = load_sources_file(file, kinds=KINDS)
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
        if report.skipped_ui:
            typer.echo(f"  {len(report.skipped_ui)} managed in the UI, left alone: {', '.join(report.skipped_ui)} "
                       "(hand back with `tracker sources manage ID --by file`)")
        if not settle(s, disabled=len(report.disabled), dry_run=dry_run, yes=yes):
            return
    typer.echo(f"synced {file}: {report.summary()}")


@sources_app.command("kinds")
def sources_kinds(as_json: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """List the source kinds a sources file may declare (`kind:`), from the registry spiders.KINDS."""
    from spiders import KINDS

    if as_json:
        emit_json([{"kind": k.name, "shape": str(k.shape), "query_keys": list(k.query.model_fields),
                    "link_select": k.link_select, "description": k.description} for k in KINDS.values()])
        return
    for k in KINDS.values():
        typer.echo(f"{k.name:18} {k.shape:9} {k.description}")


@sources_app.command("list")
def sources_list(as_json: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """List sources with their health."""
    from sqlmodel import select

    from tracker.check.redirects import redirected_host
    from tracker.check.render import kind_label
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
        kind = kind_label(src.kind, src.options)
        typer.echo(f"{src.id:40} {kind:14} {state:13} {iso(st.last_checked_at if st else None):21} {src.url}")
        if (host := redirected_host(src)) is not None:
            typer.echo(f"{'':40} redirected to another host: {host} ({src.final_url}); "
                       "set options.offhost_redirects: refuse to stop following it")
        if st and st.last_error:
            typer.echo(f"{'':40} failing since {iso(st.error_since)} ({st.consecutive_failures}x): {st.last_error}")


@sources_app.command("show")
def sources_show(source_id: Annotated[str, typer.Argument(help="the source id")],
                 as_json: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """Show what is watched on a source: rules, the latest version's sections, health, history."""
    from tracker.check.overview import source_overview

    with session() as s:
        view = source_overview(session=s, source_id=source_id)
        if view is None:
            fail(f"unknown source id {source_id!r} (see `tracker sources list`)")
        if as_json:
            emit_json(view.to_json())
            return
        src, st = view.source, view.state
        typer.echo(f"{src.id}: {src.name}\nurl    {src.url}\nkind   {src.kind}")
        typer.echo(f"rules  {view.rules}")
        health = (f"{st.last_result} at {iso(st.last_checked_at)}" if st and st.last_result else "never checked")
        typer.echo(f"health {health}" + (f"; failing: {st.last_error}" if st and st.last_error else ""))
        typer.echo("sections of the latest version (heading path: blocks):" if view.sections
                   else "no version yet: `tracker crawl " + src.id + "`")
        for section, count in view.sections:
            typer.echo(f"  {section or '(top)'}: {count}")
        typer.echo(f"versions ({len(view.versions)} newest):")
        for v in view.versions:
            typer.echo(f"  v{v.id:<5} {iso(v.created_at)}  {v.block_count} blocks")
        typer.echo(f"changes ({len(view.changes)} newest):")
        for c in view.changes:
            flags = "".join(f" [{n}]" for n, on in (("technical", c.technical), ("cosmetic", c.cosmetic),
                                                    ("revert", c.reverts_to_version_id is not None)) if on)
            typer.echo(f"  #{c.id:<5} {iso(c.detected_at)}{flags}  {'; '.join(c.sections[:3]) or '(top)'}")


@sources_app.command("preview")
def sources_preview(
        source_id: Annotated[str | None, typer.Argument(help="a source id (or give --url)")] = None,
        url: str = typer.Option(None, "--url", help="preview this page instead of a source's"),
        select_: Annotated[list[str] | None, typer.Option("--select", help="CSS selector of the text to keep "
                                                          "(repeatable)")] = None,
        remove: Annotated[list[str] | None, typer.Option("--remove", help="CSS selector of what to drop "
                                                         "(repeatable)")] = None,
        ignore: Annotated[list[str] | None, typer.Option("--ignore", help="regular expression over block text "
                                                         "to leave out of comparison (repeatable)")] = None,
        fetches: int = typer.Option(3, "--fetches", min=1, max=5, help="fetches, to find volatile blocks"),
        interval: float = typer.Option(2.0, "--interval", min=0, max=30, help="seconds between fetches"),
        show_blocks: bool = typer.Option(False, "--blocks", help="print every block, not only the sections"),
        as_json: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """Fetch a page now, record nothing: the blocks and sections the rules make, and the volatile blocks."""
    from tracker.check.blocks import Rules
    from tracker.check.extract import validate_selector
    from tracker.check.preview import PreviewError, fetch_page, preview
    from tracker.check.record import rules_for
    from tracker.check.volatile import patterns_problem
    from tracker.store.models import Source

    if (source_id is None) == (url is None):
        fail("give a source id or --url URL (not both)")
    rules = Rules()
    if source_id is not None:
        with session() as s:
            src = s.get(Source, source_id)
            if src is None:
                fail(f"unknown source id {source_id!r} (see `tracker sources list`)")
            if src.kind != "html":
                fail(f"{source_id}: preview reads html sources; this one is {src.kind}")
            url, rules = src.url, rules_for(src)
    for sel in [*(select_ or []), *(remove or [])]:
        if (why := validate_selector(sel)) is not None:
            fail(f"bad CSS selector {sel!r}: {why}")
    if (why := patterns_problem(ignore or [])) is not None:
        fail(f"--ignore: {why}")
    rules = Rules(select=tuple(select_ or rules.select), remove=tuple(remove or rules.remove),
                  ignore=tuple(ignore or rules.ignore))
    conf = settings()
    assert url is not None
    try:
        result = preview(url, rules, fetches=fetches, interval=interval,
                         fetch=lambda u: fetch_page(u, timeout=conf.download_timeout, user_agent=conf.user_agent))
    except PreviewError as exc:
        fail(str(exc))
    if as_json:
        emit_json(result.to_json())
        return
    _print_preview(result, show_blocks)


def _print_preview(result: Any, show_blocks: bool) -> None:
    """The text form of a preview."""
    typer.echo(f"{result.url}: {len(result.blocks)} blocks in {len(result.sections)} sections "
               f"({result.fetches} fetches; nothing recorded)")
    typer.echo("sections (heading path: blocks):")
    for section, count in result.sections:
        typer.echo(f"  {section or '(top)'}: {count}")
    if show_blocks:
        typer.echo("blocks:")
        for b in result.blocks:
            typer.echo(f"  [{b.kind}] {b.section or '(top)'} | {b.text[:200]}")
    if not result.volatile:
        typer.echo(f"no volatile blocks: the {result.fetches} fetches gave the same text")
        return
    typer.echo(f"volatile blocks (they differed between the {result.fetches} fetches):")
    for v in result.volatile:
        typer.echo(f"  {v.section or '(top)'} [{v.kind}]")
        for text in v.texts[:3]:
            typer.echo(f"    - {text[:160]}")
    typer.echo("suggested rule (add to the source in sources.yaml):")
    if result.remove:
        typer.echo("  remove: [" + ", ".join(f'"{r}"' for r in result.remove) + "]")
    if result.ignore:
        typer.echo(("  or " if result.remove else "  ") + "ignore: ["
                   + ", ".join(json.dumps(p) for p in result.ignore) + "]")
