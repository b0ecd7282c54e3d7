"""`tracker export …`: the compliance audit export and its verification."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from tracker.cli.app import app, emit_json, fail, session, settings
from tracker.export.formats import FORMATS

EXIT_FAILED = 1

export_app = typer.Typer(
    help="Compliance audit export: changes, impacts and audit events for a period, with a manifest.\n\n"
         "Example: tracker export --from 2026-07-01 --to 2026-09-30 --format xlsx --output audit-q3.xlsx",
    invoke_without_command=True,
)
app.add_typer(export_app, name="export")


def _day(value: str | None, option: str) -> date:
    if not value:
        fail(f"{option} YYYY-MM-DD is required (the period's first and last day, UTC)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date: give YYYY-MM-DD, e.g. 2026-07-01")


@export_app.callback()
def export(
    ctx: typer.Context,
    date_from: str = typer.Option(None, "--from", help="first day of the period, YYYY-MM-DD (UTC)"),
    date_to: str = typer.Option(None, "--to", help="last day of the period, YYYY-MM-DD (UTC), included"),
    fmt: str = typer.Option(None, "--format", help=f"one of: {', '.join(FORMATS)}"),
    output: Annotated[Path | None, typer.Option("--output", help="a folder (csv, jsonl) or a file (xlsx, --zip)")
                      ] = None,
    source: Annotated[list[str] | None, typer.Option("--source", help="only these sources (repeatable)")] = None,
    sop: Annotated[list[str] | None, typer.Option("--sop", help="only these SOPs (repeatable)")] = None,
    team: str = typer.Option(None, "--team", help="only this team's SOPs"),
    as_zip: bool = typer.Option(False, "--zip", help="csv/jsonl: one zip file instead of a folder"),
    force: bool = typer.Option(False, "--force", help="replace an earlier export at --output"),
    allow_broken_chain: bool = typer.Option(
        False, "--allow-broken-chain", help="export even when the audit chain does not verify (recorded)"),
    as_json: bool = typer.Option(False, "--json", help="print the manifest as JSON"),
) -> None:
    """Export changes, impacts and audit events for a period (see `tracker export verify`).

    Example: tracker export --from 2026-07-01 --to 2026-09-30 --format xlsx --output audit-q3.xlsx
    """
    if ctx.invoked_subcommand is not None:
        return
    from tracker.export.manifest import ChainNotVerified, ExportError
    from tracker.export.run import ExportQuery, run_export

    if fmt is None or fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}" + (f", not {fmt!r}" if fmt else ""))
    if output is None:
        fail("--output PATH is required: a folder for csv/jsonl, a file for xlsx or --zip")
    query = ExportQuery(date_from=_day(date_from, "--from"), date_to=_day(date_to, "--to"), format=fmt,
                        sources=list(source or []), sops=list(sop or []), team=team, zip=as_zip)
    base_url = settings().base_url
    try:
        with session() as s:
            result = run_export(session=s, query=query, output=output, base_url=base_url, force=force,
                                allow_broken_chain=allow_broken_chain)
    except ExportError as exc:
        code = EXIT_FAILED if isinstance(exc, ChainNotVerified) else 2
        fail(str(exc), code)
    for warning in result.warnings:
        typer.echo(f"WARNING: {warning}", err=True)
    m = result.manifest
    if as_json:
        emit_json(m)
        return
    counts = m["row_counts"]
    chain = m["audit_chain"]
    typer.echo(f"exported {query.date_from} .. {query.date_to} as {fmt}: {counts['changes']} changes, "
               f"{counts['impacts']} impacts, {counts['audit_events']} audit events")
    for f in m["files"]:
        typer.echo(f"  {f['path']}  sha256 {f['sha256']}")
    state = "verified" if chain["verified"] else "DOES NOT VERIFY"
    typer.echo(f"audit chain {state}: head #{chain['head_seq']} {chain['head_hash']}")
    typer.echo(f"manifest: {result.manifest_path}")


@export_app.command("verify")
def export_verify(
    manifest: Annotated[Path, typer.Argument(help="the export's manifest.json")],
    files_only: bool = typer.Option(False, "--files-only", help="only re-hash the files (no database)"),
    rows: bool = typer.Option(False, "--rows", help="also recompute every exported audit event's hash and "
                              "compare it with the database's event"),
    as_json: bool = typer.Option(False, "--json", help="JSON output"),
) -> None:
    """Re-hash an export's files and check its audit chain head against the database (exit 0 ok, 1 failed)."""
    from tracker.export.manifest import ExportError, verify_export

    try:
        if files_only:
            result = verify_export(manifest_path=manifest, session=None)
        else:
            with session() as s:
                result = verify_export(manifest_path=manifest, session=s, rows=rows)
    except ExportError as exc:
        fail(str(exc), EXIT_FAILED)
    if as_json:
        emit_json({"ok": result.ok, "files": [f.__dict__ for f in result.files],
                   "chain_ok": result.chain_ok, "chain": result.chain_message,
                   "rows_ok": result.rows_ok, "rows": result.rows_message})
    else:
        for f in result.files:
            typer.echo(f"{'ok    ' if f.ok else 'FAILED'} {f.path}" + (f": {f.problem}" if f.problem else ""))
        label = {True: "ok    ", False: "FAILED", None: "skip  "}[result.chain_ok]
        typer.echo(f"{label} audit chain: {result.chain_message}")
        if rows and not files_only:
            label = {True: "ok    ", False: "FAILED", None: "skip  "}[result.rows_ok]
            typer.echo(f"{label} audit rows: {result.rows_message}")
        typer.echo("export verified" if result.ok else "export verification FAILED")
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)
