"""`tracker changes …`: detected changes and their diffs."""

from __future__ import annotations

import typer

from tracker.cli.app import app, check_range, emit_json, fail, iso, parse_since, parse_until, session

changes_app = typer.Typer(help="Detected changes and their diffs.", no_args_is_help=True)
app.add_typer(changes_app, name="changes")


@changes_app.command("list")
def changes_list(since: str = typer.Option(None, "--since", help="ISO 8601 date or time (UTC if no zone)"),
                 until: str = typer.Option(None, "--until", help="before this ISO 8601 date (its end) or time"),
                 source: str = typer.Option(None, "--source", help="only this source id"),
                 as_json: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """List detected changes, newest first.

    Example: tracker changes list --source tiktok-privacy --since 2026-11-01 --json
    """
    from sqlmodel import col, select

    from tracker.public import change_public
    from tracker.store.models import Change, Source

    after, before = parse_since(since), parse_until(until)
    check_range(after, before)
    with session() as s:
        if source and s.get(Source, source) is None:
            fail(f"unknown source id {source!r} (see `tracker sources list`)")
        q = select(Change).order_by(col(Change.detected_at).desc(), col(Change.id).desc())
        if after is not None:
            q = q.where(Change.detected_at >= after)
        if before is not None:
            q = q.where(Change.detected_at < before)
        if source:
            q = q.where(Change.source_id == source)
        rows = list(s.exec(q).all())
        kinds = dict(s.exec(select(Source.id, Source.kind)).all())
    if as_json:
        emit_json([change_public(c, kind=kinds.get(c.source_id)) for c in rows])
        return
    if not rows:
        typer.echo("no changes" + (f" since {iso(after)}" if after else "")
                   + (f" before {iso(before)}" if before else ""))
        return
    for c in rows:
        tech = (" [technical]" if c.technical else "") + (" [cosmetic]" if c.cosmetic else "") + (
            f" [reverted to the text of {iso(c.reverts_to_at)[:10]}]" if c.reverts_to_version_id else "")
        typer.echo(f"#{c.id:<5} {iso(c.detected_at)}  {c.source_id}{tech}  "
                   f"+{c.added} -{c.removed} ~{c.modified}  {'; '.join(c.sections[:3]) or '(top)'}"
                   + (f" (+{len(c.sections) - 3} more)" if len(c.sections) > 3 else ""))


@changes_app.command("show")
def changes_show(change_id: int = typer.Argument(..., help="the change id"),
                 fmt: str = typer.Option("text", "--format", help="text or json")) -> None:
    """Show a change's section-by-section, word-level diff.

    Example: tracker changes show 42 --format json > change-42.json
    """
    from tracker.check.diff import Diff, render_text
    from tracker.public import change_public
    from tracker.store.models import Change, Source

    if fmt not in ("text", "json"):
        fail(f"--format must be text or json, not {fmt!r}")
    with session() as s:
        change = s.get(Change, change_id)
        if change is None:
            fail(f"no change #{change_id} (see `tracker changes list`)")
        src = s.get(Source, change.source_id)
    if fmt == "json":
        emit_json(change_public(change, kind=src.kind if src else None)
                  | {"url": src.url if src else None, "diff": change.diff})
        return
    kind = " (technical: extraction rules changed, not the policy)" if change.technical else ""
    if change.cosmetic:
        kind += " (cosmetic: only whitespace, punctuation, quotes, dashes, case or link targets)"
    typer.echo(f"change #{change.id} in {change.source_id}{kind}")
    if change.reverts_to_version_id is not None:
        quiet = "; a quiet flap: no impacts" if change.quiet else ""
        typer.echo(f"reverted to the text of {iso(change.reverts_to_at)[:10]} "
                   f"(version {change.reverts_to_version_id}){quiet}")
    typer.echo(f"detected {iso(change.detected_at)}; versions {change.from_version_id} -> {change.to_version_id}; "
               f"{change.added} added, {change.removed} removed, {change.modified} modified")
    if src:
        typer.echo(f"url {src.url}")
    typer.echo("")
    typer.echo(render_text(Diff.from_json(change.diff)), nl=False)
