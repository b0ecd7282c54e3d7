"""What team channels are told, and when: immediate alerts, source failures and recoveries, the daily summary.

Every pass reads the database, not events in memory: a pass after any crawl (the service's or a
manual one) finds the impacts and failures not yet delivered to each channel, and the delivery
rows (tracker.notify.deliveries) make a second pass, or a concurrent one, send nothing again.
Recoveries are derived from the failure alerts already sent: a source that was reported failing
and now checks fine gets one "recovered" message per reported streak.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tracker.config import Settings
from tracker.impacts.statuses import FINAL
from tracker.impacts.workflow import is_overdue
from tracker.notify.deliveries import FAILED, SENT, SendReport, Target, deliver
from tracker.notify.message import Message
from tracker.notify.secrets import channel_key
from tracker.store.db import utcnow
from tracker.store.models import Change, CheckState, Delivery, Impact, Sop, Source, Team

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u2028-\u202e]")
_DEFANG = str.maketrans({"<": "‹", ">": "›", "[": "(", "]": ")", "`": "'"})
DIGEST_ITEMS = 15


def clean(text: object, limit: int = 200) -> str:
    """Scraped or declared text made safe for a chat message: no control characters, no mention
    syntax (`<!channel>`), no Markdown links of its own, one line, bounded."""
    out = _CONTROL.sub("", str(text)).translate(_DEFANG).replace("\n", " ").strip()
    return out if len(out) <= limit else out[: limit - 1] + "…"


def team_targets(session: Session) -> dict[str, list[Target]]:
    """Each enabled team's channels, in the order the SOP file lists them."""
    teams = session.exec(select(Team).where(col(Team.enabled).is_(True)).order_by(col(Team.id))).all()
    return {t.id: [Target(t.id, u, channel_key(t.id, u)) for u in t.notify] for t in teams if t.notify}


def _watchers(session: Session) -> dict[str, set[str]]:
    """source id -> the teams whose enabled SOPs watch it."""
    out: dict[str, set[str]] = {}
    for sop in session.exec(select(Sop).where(col(Sop.enabled).is_(True), col(Sop.team_id).is_not(None))).all():
        for w in sop.watches:
            out.setdefault(str(w.get("source")), set()).add(str(sop.team_id))
    return out


def _immediate(sop: Sop, impact: Impact) -> bool:
    if sop.alert == "immediate":
        return True
    for reason in impact.reasons:
        n = reason.get("watch")
        if isinstance(n, int) and 1 <= n <= len(sop.watches) and sop.watches[n - 1].get("alert") == "immediate":
            return True
    return False


def impact_alerts(session: Session, settings: Settings, now: datetime) -> Iterator[tuple[str, Message]]:
    """(team, message) for each recent, unresolved impact whose SOP or watch asks for immediate alerts."""
    since = now - timedelta(hours=settings.notify_alert_hours)
    q = (select(Impact, Sop, Change, Source).join(Sop, col(Impact.sop_id) == col(Sop.id))
         .join(Change, col(Impact.change_id) == col(Change.id)).join(Source, col(Impact.source_id) == col(Source.id))
         .where(col(Impact.created_at) >= since, col(Impact.status).not_in(list(FINAL)),
                col(Sop.enabled).is_(True), col(Sop.team_id).is_not(None)).order_by(col(Impact.id)))
    for impact, sop, change, source in session.exec(q).all():
        if not _immediate(sop, impact):
            continue
        link = f"{settings.base_url.rstrip('/')}/impacts/{impact.id}"
        sections = "; ".join(clean(s, 120) for s in change.sections[:5]) or "the document"
        due = f", due {impact.due_date.isoformat()}" if impact.due_date else ""
        body = (f"**{clean(sop.id, 120)}: {clean(sop.title)}** may need an update{due}.\n"
                f"{clean(source.name)} changed: {sections} "
                f"(+{change.added} −{change.removed} ~{change.modified}).\n[Review impact #{impact.id}]({link})")
        yield str(sop.team_id), Message(key=f"impact:{impact.id}", kind="alert",
                                        title=f"Review {clean(sop.id, 80)}: {clean(source.name, 80)} changed",
                                        body=body, link=link)


def failure_alerts(session: Session, settings: Settings) -> Iterator[tuple[str, Message]]:
    """(team, message) for each failing source the team watches, once per failure streak."""
    watchers = _watchers(session)
    q = (select(CheckState, Source).join(Source, col(CheckState.source_id) == col(Source.id))
         .where(col(CheckState.consecutive_failures) >= settings.notify_failures_after,
                col(CheckState.error_since).is_not(None), col(Source.enabled).is_(True)))
    link = f"{settings.base_url.rstrip('/')}/sources"
    for state, source in session.exec(q).all():
        assert state.error_since is not None
        key = f"failing:{source.id}:{int(state.error_since.timestamp())}"
        body = (f"**{clean(source.name)}** cannot be checked since {state.error_since:%Y-%m-%d %H:%M} UTC "
                f"({state.consecutive_failures} failed check(s)): {clean(state.last_error or 'unknown error', 300)}"
                f"\n[Sources]({link})")
        for team in sorted(watchers.get(source.id, ())):
            yield team, Message(key=key, kind="failure", title=f"Source failing: {clean(source.name, 80)}",
                                body=body, link=link)


def recovery_alerts(session: Session, settings: Settings) -> Iterator[tuple[str, Message]]:
    """(team, message) for each reported failure streak of a source that now checks fine again."""
    rows = session.exec(select(Delivery).where(Delivery.kind == "failure", Delivery.status == SENT)).all()
    link = f"{settings.base_url.rstrip('/')}/sources"
    for row in rows:
        source_id, _, since = row.message_key.removeprefix("failing:").rpartition(":")
        state, source = session.get(CheckState, source_id), session.get(Source, source_id)
        if state is None or source is None or row.team_id is None:
            continue
        streak = int(state.error_since.timestamp()) if state.error_since else None
        if state.consecutive_failures and streak == int(since):
            continue  # still the same streak
        yield row.team_id, Message(key=f"recovered:{source_id}:{since}", kind="recovery",
                                   title=f"Source recovered: {clean(source.name, 80)}",
                                   body=f"**{clean(source.name)}** is checked again without errors.\n[Sources]({link})",
                                   link=link)


def _send(engine: Engine, settings: Settings, items: Iterable[tuple[str, Message]],
          report: SendReport, targets: dict[str, list[Target]], now: datetime) -> None:
    for team, message in items:
        for target in targets.get(team, []):
            deliver(engine, target, message, settings, report, now=now)


def _retries(session: Session, now: datetime, settings: Settings,
             targets: dict[str, list[Target]]) -> list[tuple[Target, Message]]:
    """Recorded failures that are due again, rebuilt from their rows (digests, tests, old alerts)."""
    by_channel = {t.channel: t for ts in targets.values() for t in ts}
    rows = session.exec(select(Delivery).where(Delivery.status == FAILED, col(Delivery.next_attempt_at) <= now,
                                               col(Delivery.attempts) < settings.notify_max_attempts)).all()
    return [(by_channel[r.channel], Message(r.message_key, r.kind, r.title, r.body, settings.base_url))
            for r in rows if r.channel in by_channel]


def send_alerts(*, engine: Engine, settings: Settings, now: datetime | None = None) -> SendReport:
    """One pass: immediate impact alerts, failures, recoveries, and due retries, to every team channel."""
    now = now or utcnow()
    report = SendReport()
    with Session(engine) as s:
        targets = team_targets(s)
        if not targets:
            return report
        items = [*impact_alerts(s, settings, now), *failure_alerts(s, settings), *recovery_alerts(s, settings)]
        retries = _retries(s, now, settings, targets)
    _send(engine, settings, items, report, targets, now)
    for target, message in retries:
        deliver(engine, target, message, settings, report, now=now)
    return report


def digest_summary(session: Session, settings: Settings, team: str, now: datetime) -> Message:
    """The team's daily summary: SOPs to review (overdue first, each linked), unmapped changes, failing sources."""
    base = settings.base_url.rstrip("/")
    today = now.astimezone(ZoneInfo(settings.timezone)).date()
    impacts = session.exec(select(Impact, Sop).join(Sop, col(Impact.sop_id) == col(Sop.id))
                           .where(col(Sop.team_id) == team, col(Sop.enabled).is_(True),
                                  col(Impact.status).not_in(list(FINAL)))).all()
    impacts = sorted(impacts, key=lambda p: (not is_overdue(p[0], today=today), p[0].due_date or today, p[0].id))
    lines = [f"**{len(impacts)} SOP impact(s) to review**" if impacts else "No SOP impacts to review."]
    for impact, sop in impacts[:DIGEST_ITEMS]:
        flag = "OVERDUE " if is_overdue(impact, today=today) else ""
        lines.append(f"- {flag}[{clean(sop.id, 80)}: {clean(sop.title, 100)}]({base}/impacts/{impact.id})"
                     + (f" (due {impact.due_date.isoformat()})" if impact.due_date else ""))
    watched = {s for s, teams in _watchers(session).items() if team in teams}
    mapped = select(Impact.id).where(col(Impact.change_id) == col(Change.id)).exists()
    changes = session.exec(select(Change, Source).join(Source, col(Change.source_id) == col(Source.id))
                           .where(col(Change.detected_at) >= now - timedelta(days=1), ~mapped,
                                  col(Change.technical).is_(False), col(Change.source_id).in_(list(watched)))).all()
    if changes:
        lines.append(f"**{len(changes)} change(s) that touched no SOP**")
        lines += [f"- [{clean(src.name, 100)}]({base}/changes/{ch.id})" for ch, src in changes[:DIGEST_ITEMS]]
    failing = session.exec(select(CheckState, Source).join(Source, col(CheckState.source_id) == col(Source.id))
                           .where(col(CheckState.consecutive_failures) > 0, col(Source.id).in_(list(watched)))).all()
    if failing:
        lines.append(f"**{len(failing)} failing source(s)**: " + ", ".join(clean(src.name, 80) for _, src in failing))
    return Message(key=f"digest:{team}:{today.isoformat()}", kind="digest",
                   title=f"Policy tracker digest {today.isoformat()}", body="\n".join(lines), link=f"{base}/")


def send_digest_summaries(*, engine: Engine, settings: Settings, now: datetime | None = None) -> SendReport:
    """Today's short summary to every team channel (once a day per channel)."""
    now = now or utcnow()
    report = SendReport()
    with Session(engine) as s:
        targets = team_targets(s)
        items = [(team, digest_summary(s, settings, team, now)) for team in targets]
    _send(engine, settings, items, report, targets, now)
    return report
