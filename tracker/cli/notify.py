"""`tracker notify`: send pending alerts, test a team's channels, show what was delivered."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from tracker.cli.app import EXIT_FAILURES, app, emit_json, engine, fail, iso, settings

notify_app = typer.Typer(help="Team channels: alerts, tests, the delivery log.", no_args_is_help=True)
app.add_typer(notify_app, name="notify")


@notify_app.command("send")
def send(digest: Annotated[bool, typer.Option("--digest", help="also send today's summary to every team channel "
                                                               "(once a day per channel)")] = False) -> None:
    """Send what is pending: immediate alerts, source failures and recoveries, due retries.

    `tracker crawl` and the service do this after every crawl; nothing is ever sent twice to a channel.
    Exit 0, or 3 when some deliveries failed (they are retried later; see `tracker notify log`).

    Example: tracker notify send   (alerts and retries now; --digest for today's team summaries)
    """
    from tracker.notify.alerts import send_alerts, send_digest_summaries

    s, eng = settings(), engine()
    try:
        report = send_alerts(engine=eng, settings=s)
        if digest:
            extra = send_digest_summaries(engine=eng, settings=s)
            report.sent += extra.sent
            report.failed += extra.failed
            report.skipped += extra.skipped
    finally:
        eng.dispose()
    typer.echo(report.summary())
    if report.failed:
        raise typer.Exit(EXIT_FAILURES)


@notify_app.command("test")
def test(target: Annotated[str, typer.Argument(help="a team id (each of its channels), or a channel URL "
                                                    "(`json://…`, `${TRACKER_SLACK_TS}`)")]) -> None:
    """Send a test message. Exit 0 delivered, 2 unknown team or bad URL, 3 a channel did not accept it.

    Example: tracker notify test trust-safety   or   tracker notify test 'json://hooks.example/x'
    """
    from sqlmodel import Session

    from tracker.declare.sops import TEAM_ID
    from tracker.notify.deliveries import SendReport, Target, deliver
    from tracker.notify.message import Message
    from tracker.notify.secrets import channel_key, template_problem
    from tracker.store.models import Team

    s, eng = settings(), engine()
    try:
        with Session(eng) as db:
            team = db.get(Team, target)
            templates = list(team.notify) if team else []
        if team is not None and not templates:
            fail(f"team {target} has no channels: add `notify: [...]` to it in the SOP file")
        if team is None:
            if (why := template_problem(target)) is not None:
                shown = repr(target) if TEAM_ID.match(target) else "the argument"  # it may hold a secret
                fail(f"{shown} is neither a team id nor a channel URL: {why}")
            templates = [target]
        owner = team.id if team else None
        message = Message(key=f"test:{uuid.uuid4().hex}", kind="test", title="Policy tracker: test message",
                          body="This channel receives the policy tracker's alerts and digests.", link=s.base_url)
        report = SendReport()
        for tpl in templates:
            deliver(eng, Target(owner, tpl, channel_key(owner or "cli", tpl)), message, s, report)
    finally:
        eng.dispose()
    _print_log(message_key=message.key)
    if report.failed:
        raise typer.Exit(EXIT_FAILURES)


def _print_log(*, message_key: str | None = None, limit: int = 50,
               as_json: bool = False) -> None:
    from sqlmodel import Session, col, select

    from tracker.store.models import Delivery

    eng = engine()
    try:
        with Session(eng) as db:
            q = select(Delivery).order_by(col(Delivery.id).desc()).limit(limit)
            if message_key is not None:
                q = q.where(Delivery.message_key == message_key)
            rows = list(db.exec(q).all())
    finally:
        eng.dispose()
    if as_json:
        emit_json([{"id": r.id, "created_at": r.created_at, "sent_at": r.sent_at, "kind": r.kind,
                    "team": r.team_id, "channel": r.channel, "target": r.target, "message": r.message_key,
                    "status": r.status, "attempts": r.attempts, "response": r.response, "error": r.error}
                   for r in rows])
        return
    for r in rows:
        answer = (r.response if r.status == "sent" else r.error) or ""
        last = answer.strip().splitlines()[-1][:160] if answer.strip() else ""
        typer.echo(f"{iso(r.sent_at or r.updated_at)}  {r.status:<7} {r.kind:<8} {r.team_id or '-'}  {r.target}  "
                   f"{r.message_key}  attempts={r.attempts}  {last}")


@notify_app.command("log")
def log(limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="newest deliveries shown")] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False) -> None:
    """Deliveries to team channels, newest first: when, status, channel (secrets masked), message, answer.

    Example: tracker notify log -n 50 --json
    """
    _print_log(limit=limit, as_json=as_json)
