"""`tracker metrics`: the SLA figures of the web UI's /metrics page, as text or JSON."""

from __future__ import annotations

import typer

from tracker.cli.app import app, check_range, emit_json, fail, parse_since, parse_until, session


@app.command("metrics")
def metrics_cmd(since: str = typer.Option(None, "--since", help="from ISO 8601 date or time (default: 90 days back)"),
                until: str = typer.Option(None, "--until", help="before this ISO 8601 date or time (default: now)"),
                team: str = typer.Option(None, "--team", help="only this team id's SOPs"),
                as_json: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """Impacts opened and decided, hours to decision (median, p90), share on time, overdue now, per team and SOP.

    Example: tracker metrics --since 2026-10-01 --until 2026-12-31 --team support --json
    """
    from tracker.impacts.metrics import compute, default_period, table
    from tracker.store.models import Team

    after, before = parse_since(since), parse_until(until)
    check_range(after, before)
    start, end = default_period()
    with session() as s:
        if team and s.get(Team, team) is None:
            fail(f"unknown team id {team!r} (see the teams in the SOPs file, `tracker sops list`)")
        m = compute(session=s, since=after or start, until=before or end, team=team or "")
    if as_json:
        emit_json(m.to_json())
        return
    typer.echo(f"from {m.since.isoformat()} to {m.until.isoformat()}")
    for name in ("teams", "sops", "sources", "weeks"):
        header, rows = table(m, name)
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
        typer.echo("")
        typer.echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for r in rows:
            typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
