"""`tracker audit …`: read the audit trail and verify its hash chain."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from tracker.cli.app import app, check_range, emit_json, fail, iso, parse_since, parse_until, session, settings

audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

EXIT_BROKEN = 1  # `tracker audit verify`: the chain is broken (tampering) or the recorded head is gone


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def summarise(before: Any, after: Any) -> str:
    """What an event changed, one line: `key: old → new` for each key that differs."""
    if before is None and isinstance(after, dict):
        before = {}
    if after is None and isinstance(before, dict):
        after = {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        parts = [_short(before) if before is not None else "", _short(after) if after is not None else ""]
        return " → ".join(p for p in parts if p)
    out = []
    for key in [*after, *(k for k in before if k not in after)]:
        if key in before and key in after:
            if before[key] != after[key]:
                out.append(f"{key}: {_short(before[key])} → {_short(after[key])}")
        elif key in after:
            out.append(f"{key}: {_short(after[key])}")
        else:
            out.append(f"{key}: {_short(before[key])} → (removed)")
    return "; ".join(out)


@audit_app.command("log")
def audit_log(as_json: bool = typer.Option(False, "--json", help="JSON output (an array, newest first)"),
              since: str = typer.Option(None, "--since", help="only events at or after this ISO 8601 time"),
              until: str = typer.Option(None, "--until", help="before this ISO 8601 date (its end) or time"),
              entity: str = typer.Option(None, "--entity", help="only events on TYPE or TYPE:ID, e.g. impact:12"),
              limit: int = typer.Option(None, "--limit", min=1, help="at most N events (the newest)")) -> None:
    """List audit events, newest first (streamed: long trails are never loaded whole)."""
    from tracker.audit.trail import iter_events
    from tracker.public import audit_event_public

    after, before = parse_since(since), parse_until(until)
    check_range(after, before)
    entity_type = entity_id = None
    if entity is not None:
        entity_type, sep, rest = entity.partition(":")
        entity_id = rest if sep else None
        if not entity_type or (sep and not rest):
            fail(f"--entity {entity!r}: give TYPE or TYPE:ID, e.g. impact or impact:12")
    shown = 0
    with session() as s:
        events = iter_events(s, since=after, entity_type=entity_type, entity_id=entity_id, newest_first=True,
                             batch=min(limit or 2000, 2000))
        if as_json:
            sys.stdout.write("[")
        for ev in events:
            if limit is not None and shown >= limit:
                break
            if before is not None and ev.at >= before:
                continue  # newest first: the events after the range come first
            if as_json:
                row = json.dumps(audit_event_public(ev), ensure_ascii=False)
                sys.stdout.write(("\n" if shown == 0 else ",\n") + row)
            else:
                typer.echo(f"#{ev.seq:<6} {iso(ev.at)}  {ev.actor}  {ev.action}  {ev.entity_type}:{ev.entity_id}"
                           + (f"  {summary}" if (summary := summarise(ev.before, ev.after)) else ""))
            shown += 1
    if as_json:
        sys.stdout.write("\n]\n" if shown else "]\n")
    elif not shown:
        typer.echo("no audit events" + (" match" if entity or since or until else ""))


@audit_app.command("verify")
def audit_verify(expect_head: str = typer.Option(
                     None, "--expect-head",
                     help="a head recorded earlier (SEQ:HASH or HASH): fail if it is no longer in the chain"),
                 as_json: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """Check the hash chain; exit 0 and print the head when intact, exit 1 naming the first bad event."""
    from tracker.audit.trail import parse_expected_head, verify

    if expect_head is not None:
        try:
            parse_expected_head(expect_head)
        except ValueError as exc:
            fail(f"--expect-head {exc}")
    with session() as s:
        result = verify(s, expect_head=expect_head)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        emit_json(result.as_dict())
    elif result.ok:
        if result.head_seq is None:
            typer.echo("audit trail intact: no events yet")
        else:
            typer.echo(f"audit trail intact: {result.count} event{'' if result.count == 1 else 's'}")
            typer.echo(f"head: {result.head_seq}:{result.head_hash}")
            if result.expected_head_seq is not None:
                typer.echo(f"the recorded head #{result.expected_head_seq} is in the chain "
                           f"({result.count - result.expected_head_seq} event(s) after it)")
            else:
                typer.echo("record the head; `tracker audit verify --expect-head SEQ:HASH` later shows that "
                           "no event after it was cut off")
    else:
        where = f"#{result.bad_seq}" + (f" (id {result.bad_id})" if result.bad_id is not None else "")
        typer.echo(f"audit trail BROKEN at event {where}: {result.problem}", err=True)
        typer.echo(f"{result.count} events verified before it", err=True)
    if not result.ok:
        raise typer.Exit(EXIT_BROKEN)


@audit_app.command("restore-triggers")
def audit_restore_triggers(by: str = typer.Option(None, "--by", help="who restores them, for the audit trail "
                                                                      "(default: TRACKER_ACTOR, else system)")) -> None:
    """Put back the append-only triggers of the audit trail when `tracker audit verify` warns they are missing
    or disabled (audited as audit.triggers_restored).

    Example: tracker audit restore-triggers --by admin@example.com && tracker audit verify
    """
    from tracker.audit.trail import SYSTEM, restore_append_only

    with session() as s:
        done = restore_append_only(s, actor=by or settings().actor or SYSTEM)
    if not done:
        typer.echo("the append-only triggers are all in place: nothing to do")
        return
    for line in done:
        typer.echo(line)
    typer.echo("recorded as audit.triggers_restored; run `tracker audit verify`, and find out who removed them")
