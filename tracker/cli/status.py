"""`tracker status`: is the scheduler alive, how is each source doing, what is open."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer

from tracker.cli.app import app, emit_json, iso, session, settings


def _ago(dt: datetime | None, now: datetime) -> str:
    if dt is None:
        return "-"
    secs = (now - dt).total_seconds()
    word = "ago" if secs >= 0 else "from now"
    secs = abs(secs)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs / size:.0f}{unit} {word}"
    return f"{secs:.0f}s {word}"


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """Scheduler heartbeat, each source's last check, result, error (since when) and next run; the digest
    (next, last, a pending retry, who is sending now); open/overdue impacts; notifications sent and failing.

    Example: tracker status --json | jq '.sources[] | select(.consecutive_failures > 0)'
    """
    from tracker.service.status import collect_status
    from tracker.store.db import utcnow

    s = settings()
    now = utcnow()
    with session() as db:
        data = collect_status(session=db, settings=s, now=now)
    if as_json:
        emit_json(data)
        return
    _print(data, now)


def _print(data: dict[str, Any], now: datetime) -> None:
    sch = data["scheduler"]
    if sch["alive"]:
        typer.echo(f"scheduler: running (pid {sch['pid']} on {sch['host']}, since {iso(sch['started_at'])}, "
                   f"heartbeat {_ago(sch['heartbeat_at'], now)})")
    elif sch["stopped_at"]:
        typer.echo(f"scheduler: NOT running (stopped {iso(sch['stopped_at'])}: {sch['stop_reason']}); "
                   "start it with `tracker run`")
    elif sch["heartbeat_at"]:
        typer.echo(f"scheduler: NOT running (no heartbeat since {iso(sch['heartbeat_at'])}; it died?) "
                   "start it with `tracker run`")
    else:
        typer.echo("scheduler: never started; start it with `tracker run`")
    dg = data["digest"]
    last = dg["last_run"]
    typer.echo(f"digest:    daily at {dg['at']} {dg['timezone']}; next {iso(dg['next_run'])}; "
               f"last {iso(last['started_at']) + ' ' + str(last['result']) if last else 'never'}"
               + (f"; retry {iso(dg['retry_at'])}" if dg.get("retry_at") else ""))
    if lease := dg.get("lease"):
        # Someone is sending right now (the service, or a `tracker digest --send`): who, to find them.
        typer.echo(f"           sending now: lease held by {lease['host']}, pid {lease['pid']}, "
                   f"since {iso(lease['since'])}, until {iso(lease['until'])}")
    _print_cluster(data, now)
    imp = data["impacts"]
    typer.echo(f"impacts:   {imp['open']} open, {imp['overdue']} overdue")
    _print_notifications(data["notifications"], now)
    sources = data["sources"]
    if not sources:
        typer.echo("sources:   none yet: `tracker sources sync sources.yaml`")
        return
    typer.echo("")
    typer.echo(f"{'source':36} {'schedule':12} {'last check':21} {'result':13} {'next run':21}")
    for src in sources:
        result = "disabled" if not src["enabled"] else (src["last_result"] or "never checked")
        typer.echo(f"{src['id']:36} {src['schedule']:12} {iso(src['last_checked_at']):21} {result:13} "
                   f"{iso(src['next_run']):21}")
        if src["last_error"]:
            typer.echo(f"{'':36} failing since {iso(src['error_since'])} ({src['consecutive_failures']}x): "
                       f"{src['last_error']}")


def _print_notifications(nt: dict[str, Any], now: datetime) -> None:
    """Messages sent in the last day, and each delivery failing now with its (masked) target and error."""
    last = f" (last {_ago(nt['last_sent_at'], now)})" if nt["last_sent_at"] else ""
    failing = f"; {nt['failing']} FAILING (retried when due; `tracker notify log`)" \
        if nt["failing"] else ""
    typer.echo(f"notify:    {nt['sent_24h']} sent in the last 24h{last}{failing}")
    for d in nt["failing_shown"]:
        typer.echo(f"{'':11}{d['kind']} to {d['target'] or d['channel']}: {d['attempts']} attempt(s) since "
                   f"{iso(d['since'])}: {d['error'] or 'no error recorded'}")


def _print_cluster(data: dict[str, Any], now: datetime) -> None:
    """Celery workers (queues, last heartbeat, lost ones), batches by state, a broker outage."""
    cl = data["cluster"]
    if data["executor"] != "celery" and not cl["workers"]:
        return
    t = cl["tasks"]
    typer.echo(f"executor:  {data['executor']}; batches {t['queued']} queued, {t['running']} running, "
               f"{t['unsent']} unsent")
    if broker := cl["broker"]:
        typer.echo(f"broker:    UNREACHABLE since {iso(broker['since'])}: crawling paused, {broker['unsent']} "
                   f"batch(es) kept and sent when it answers ({broker['error']})")
    for w in cl["workers"]:
        state = {"running": "running", "stopped": "stopped", "lost": "LOST (no heartbeat; its batches are "
                 "delivered again)"}[w["state"]]
        busy = f"; crawling {', '.join(w['running'])}" if w["running"] and w["state"] == "running" else ""
        typer.echo(f"worker:    {w['name']} {state}; queues {','.join(w['queues'])}; "
                   f"last heartbeat {_ago(w['heartbeat_at'], now)}{busy}")
