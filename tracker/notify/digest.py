"""The daily digest: who gets what, never the same news twice, preview or send.

Per recipient (SOP owners, their teams' members, and the everything list): the impacts on their
SOPs not yet delivered to them (overdue and open first), then changes in their sources that
touched no SOP, then the health of those sources. A Digest row per run and recipient remembers
what a successful send carried; a failed send is recorded but not counted, so the next run
offers it again. `since` builds an explicit re-send of everything from that time.

A sending run holds the database lease "digest.send" from before it reads what was delivered until
its last delivery is recorded, so two runs (the service's and a hand run, on any machine) never
build the same contents and both send them. Previews take no lease: they send and record nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tracker.audit.trail import SYSTEM, append_event
from tracker.check.diff import Diff
from tracker.check.redirects import redirected_host
from tracker.config import Settings
from tracker.impacts.statuses import FINAL
from tracker.impacts.suggest import change_query, dismissed_for, rank, sop_documents
from tracker.impacts.workflow import is_overdue
from tracker.notify.email import Mailer, MailError, build_message
from tracker.notify.render import (
    ChangeItem,
    CosmeticSource,
    DigestContent,
    ImpactItem,
    PublicationItem,
    RedirectedSource,
    Rendered,
    SourceHealth,
    describe_reason,
    excerpts_for,
    render_digest,
)
from tracker.store.db import session_scope, utcnow
from tracker.store.models import Change, CheckState, Digest, Impact, Sop, Source, StreamEntryRecord, Team
from tracker.store.models.lease import DIGEST_LEASE, HeldLease, LeaseHeld, LeaseLost, acquire_lease, describe_holder

SENT, FAILED = "sent", "failed"


class DigestError(ValueError):
    """The digest cannot run as asked (bad recipient, time zone…); the message says what to fix."""


class DigestBusy(LeaseHeld):
    """Another run holds the send lease: this one sent and recorded nothing."""

    def __init__(self, held: LeaseHeld) -> None:
        super().__init__(held.lease, f"another digest run is sending ({describe_holder(held.lease)}); "
                                     "nothing was sent: try again when it is done")


def lease_ttl(settings: Settings) -> timedelta:
    """How long the send lease lives without renewal: ten minutes, or 20 SMTP timeouts if longer.

    The lease is renewed before every message, so it only has to outlive building the digests
    plus one recipient's render and send (connect, TLS, login and a handful of commands, each
    bounded by TRACKER_SMTP_TIMEOUT), with room for clock skew between machines. It is what a
    crashed run costs: the next run can send once this much time has passed since its last renewal.
    """
    return timedelta(seconds=max(600.0, 20 * settings.smtp_timeout))


@dataclass
class Audience:
    """What one recipient follows: their SOPs and the sources those SOPs watch, or everything."""

    recipient: str
    sop_ids: set[str] = field(default_factory=set)
    source_ids: set[str] = field(default_factory=set)
    everything: bool = False

    def sees_sop(self, sop_id: str) -> bool:
        return self.everything or sop_id in self.sop_ids

    def sees_source(self, source_id: str) -> bool:
        return self.everything or source_id in self.source_ids


@dataclass
class DigestRun:
    """What one digest run did: recipients sent to, failed, skipped as empty, and preview files."""

    run_id: str
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped_empty: list[str] = field(default_factory=list)
    previews: list[Path] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    previewed: list[str] = field(default_factory=list)
    lease_lost: str | None = None  # why the run stopped early: its send lease was taken over

    def summary(self) -> str:
        """One line for logs and the CLI."""
        parts = [f"{len(self.sent)} sent", f"{len(self.failed)} failed", f"{len(self.skipped_empty)} empty skipped"]
        if self.previewed:
            parts.append(f"{len(self.previewed)} previewed")
        line = f"digest {self.run_id}: " + ", ".join(parts)
        if self.failed:
            shown = "; ".join(f"{r}: {self.errors.get(r, '?')}" for r in self.failed[:3])
            more = f"; and {len(self.failed) - 3} more" if len(self.failed) > 3 else ""
            line += f" (failed: {shown}{more})"
        if self.lease_lost:
            line += f"; stopped early: {self.lease_lost}, the rest is left for the next run"
        return line


def _norm(email: str) -> str:
    return email.strip().lower()


def audiences(*, session: Session, settings: Settings) -> dict[str, Audience]:
    """Every digest recipient and what they follow: SOP owners, team members, the everything list."""
    teams = {t.id: t for t in session.exec(select(Team).where(col(Team.enabled).is_(True))).all()}
    found: dict[str, Audience] = {}

    def add(email: str, sop: Sop) -> None:
        key = _norm(email)
        if not key:
            return
        aud = found.setdefault(key, Audience(key))
        aud.sop_ids.add(sop.id)
        aud.source_ids.update(str(w["source"]) for w in sop.watches if w.get("source"))

    for sop in session.exec(select(Sop).where(col(Sop.enabled).is_(True)).order_by(col(Sop.id))).all():
        add(sop.owner, sop)
        team = teams.get(sop.team_id) if sop.team_id else None
        for member in team.members if team else []:
            add(member, sop)
    for email in settings.digest_everything_to:
        key = _norm(email)
        if key:
            found.setdefault(key, Audience(key)).everything = True
    return dict(sorted(found.items()))


def _delivered(session: Session, recipients: Iterable[str]) -> dict[str, tuple[set[int], set[int], datetime | None]]:
    """Per recipient: change ids and impact ids already delivered, and when their last digest went out."""
    out: dict[str, tuple[set[int], set[int], datetime | None]] = {}
    rows = session.exec(select(Digest).where(Digest.status == SENT, col(Digest.recipient).in_(list(recipients)))
                        .order_by(col(Digest.id))).all()
    for d in rows:
        changes, impacts, _ = out.setdefault(d.recipient, (set(), set(), None))
        changes.update(d.change_ids)
        impacts.update(d.impact_ids)
        out[d.recipient] = (changes, impacts, d.created_at)
    return out


def _lists_entries() -> Any:
    """Whether a change's source is a stream: one that has listed entries (tracker.check.streams).

    Read from the data rather than from the kind's name, so the digest needs no registry of kinds."""
    return (select(StreamEntryRecord.id).where(col(StreamEntryRecord.source_id) == col(Change.source_id))
            .exists())


class _Builder:
    """Loads the candidate impacts, changes and failing sources once, then cuts a digest per recipient."""

    def __init__(self, session: Session, settings: Settings, now: datetime, since: datetime | None) -> None:
        self.session, self.settings, self.now, self.since = session, settings, now, since
        self.today = now.astimezone(ZoneInfo(settings.timezone)).date()
        self._diffs: dict[int, Diff] = {}
        self.impacts = self._impacts()
        self.changes = self._changes()
        self.cosmetic = self._cosmetic()
        self.publications = self._publications()
        self.failing = self._failing()
        self.redirected = self._redirected()

    def _diff(self, change: Change) -> Diff:
        assert change.id is not None
        if change.id not in self._diffs:
            self._diffs[change.id] = Diff.from_json(change.diff)
        return self._diffs[change.id]

    def _impacts(self) -> list[ImpactItem]:
        q = (select(Impact, Change, Sop, Source).join(Change, col(Impact.change_id) == col(Change.id))
             .join(Sop, col(Impact.sop_id) == col(Sop.id)).join(Source, col(Impact.source_id) == col(Source.id)))
        if self.since is not None:
            q = q.where(sa.or_(col(Change.detected_at) >= self.since, col(Impact.created_at) >= self.since))
        else:
            q = q.where(col(Impact.status).not_in(list(FINAL)), col(Sop.enabled).is_(True))
        items: list[ImpactItem] = []
        for impact, change, sop, source in self.session.exec(q).all():
            sections = list(dict.fromkeys(s for r in impact.reasons for s in r.get("sections") or []))
            excerpts, more = excerpts_for(self._diff(change).changes, sections=sections or None)
            items.append(ImpactItem(
                impact_id=impact.id or 0, status=impact.status, overdue=is_overdue(impact, today=self.today),
                due_date=impact.due_date, assignee=impact.assignee, sop_id=sop.id, sop_title=sop.title,
                sop_owner=sop.owner, source_id=source.id, source_name=source.name,
                source_url=source.final_url or source.url, change_id=change.id or 0,
                detected_at=change.detected_at, sections=sections or list(change.sections),
                reasons=[describe_reason(r) for r in impact.reasons] or ["mapped to this SOP"],
                excerpts=excerpts, more_blocks=more))
        # Overdue first, then open (not yet looked at), then the rest in progress; soonest due first.
        rank = {"open": 1}
        items.sort(key=lambda i: (0 if i.overdue else rank.get(i.status, 2), i.due_date is None,
                                  i.due_date or self.today, -i.detected_at.timestamp(), i.impact_id))
        return items

    def _changes(self) -> list[ChangeItem]:
        start = self.since or (self.now - timedelta(days=self.settings.digest_lookback_days))
        mapped = select(Impact.id).where(col(Impact.change_id) == col(Change.id)).exists()
        q = (select(Change, Source).join(Source, col(Change.source_id) == col(Source.id))
             .where(col(Change.technical).is_(False), col(Change.cosmetic).is_(False), col(Change.detected_at) >= start,
                    ~mapped, ~_lists_entries())  # a stream's news is a publication
             .order_by(col(Change.detected_at).desc(), col(Change.id).desc()))
        items: list[ChangeItem] = []
        docs: dict[str, tuple[str, list[str]]] | None = None
        for change, source in self.session.exec(q).all():
            excerpts, more = excerpts_for(self._diff(change).changes)
            if docs is None:  # read once per digest: every SOP's title, watches and past impacts
                docs = sop_documents(self.session)
            gone = dismissed_for(self.session, change.id or 0)
            suggested = rank(change_query(change), {k: v for k, v in docs.items() if k not in gone})
            items.append(ChangeItem(
                change_id=change.id or 0, source_id=source.id, source_name=source.name,
                source_url=source.final_url or source.url, detected_at=change.detected_at,
                sections=list(change.sections), added=change.added, removed=change.removed,
                modified=change.modified, excerpts=excerpts, more_blocks=more,
                suggested=[f"{x.sop_id}: {x.title}" for x in suggested]))
        return items

    def _cosmetic(self) -> list[CosmeticSource]:
        """Unmapped cosmetic changes in the window, one entry per source (newest source first)."""
        start = self.since or (self.now - timedelta(days=self.settings.digest_lookback_days))
        mapped = select(Impact.id).where(col(Impact.change_id) == col(Change.id)).exists()
        q = (select(Change, Source).join(Source, col(Change.source_id) == col(Source.id))
             .where(col(Change.cosmetic).is_(True), col(Change.technical).is_(False),
                    col(Change.detected_at) >= start, ~mapped)
             .order_by(col(Change.detected_at).desc(), col(Change.id).desc()))
        by_source: dict[str, CosmeticSource] = {}
        for change, source in self.session.exec(q).all():
            item = by_source.setdefault(source.id, CosmeticSource(source.id, source.name, [], change.detected_at))
            item.change_ids.append(change.id or 0)
        return list(by_source.values())

    def _publications(self) -> list[PublicationItem]:
        """New and updated stream entries in the window, mapped or not: the "New publications" part."""
        start = self.since or (self.now - timedelta(days=self.settings.digest_lookback_days))
        q = (select(Change, Source).join(Source, col(Change.source_id) == col(Source.id))
             .where(col(Change.detected_at) >= start, _lists_entries())
             .order_by(col(Change.detected_at).desc(), col(Change.id).desc()))
        items: list[PublicationItem] = []
        for change, source in self.session.exec(q).all():
            entry = change.entry or {}
            fields = entry.get("fields") or {}
            detail = " · ".join(str(x) for x in [fields.get("type"), ", ".join(fields.get("agencies") or [])] if x)
            items.append(PublicationItem(
                change_id=change.id or 0, source_id=source.id, source_name=source.name,
                title=str(entry.get("title") or "(untitled)"), url=entry.get("url"), published=entry.get("published"),
                detail=detail, effective_on=change.effective_on, comments_close_on=change.comments_close_on,
                update=bool(entry.get("update"))))
        return items

    def _failing(self) -> list[SourceHealth]:
        q = (select(CheckState, Source).join(Source, col(CheckState.source_id) == col(Source.id))
             .where(col(CheckState.consecutive_failures) > 0, col(Source.enabled).is_(True))
             .order_by(col(CheckState.error_since), col(Source.id)))
        return [SourceHealth(source_id=source.id, source_name=source.name, source_url=source.url,
                             error_since=state.error_since, failures=state.consecutive_failures,
                             last_error=state.last_error, last_checked_at=state.last_checked_at)
                for state, source in self.session.exec(q).all()]

    def _redirected(self) -> list[RedirectedSource]:
        q = (select(Source).where(col(Source.final_url).is_not(None), col(Source.enabled).is_(True))
             .order_by(col(Source.id)))
        return [RedirectedSource(source_id=source.id, source_name=source.name, source_url=source.url,
                                 final_url=source.final_url or "", host=host)
                for source in self.session.exec(q).all() if (host := redirected_host(source)) is not None]

    def content_for(self, aud: Audience, delivered: tuple[set[int], set[int], datetime | None]) -> DigestContent:
        """One recipient's digest: what they follow, minus what they were already sent (unless a re-send)."""
        sent_changes, sent_impacts, last_sent = delivered
        if self.since is not None:
            sent_changes, sent_impacts = set(), set()
        impacts = [i for i in self.impacts if aud.sees_sop(i.sop_id) and i.impact_id not in sent_impacts]
        changes = [c for c in self.changes if aud.sees_source(c.source_id) and c.change_id not in sent_changes]
        publications = [p for p in self.publications
                        if aud.sees_source(p.source_id) and p.change_id not in sent_changes]
        after = self.since or last_sent
        failing = [SourceHealth(**{**h.__dict__, "new": after is None or (h.error_since or self.now) >= after})
                   for h in self.failing if aud.sees_source(h.source_id)]
        return DigestContent(recipient=aud.recipient, now=self.now, impacts=impacts, changes=changes,
                             failing=failing, everything=aud.everything, since=self.since,
                             publications=publications,
                             redirected=[r for r in self.redirected if aud.sees_source(r.source_id)],
                             cosmetic=_unsent_cosmetic(self.cosmetic, aud, sent_changes))


def _unsent_cosmetic(items: list[CosmeticSource], aud: Audience, sent: set[int]) -> list[CosmeticSource]:
    """The cosmetic lines a recipient follows, each without the changes already sent to them."""
    out = []
    for item in items:
        ids = [i for i in item.change_ids if i not in sent]
        if ids and aud.sees_source(item.source_id):
            out.append(CosmeticSource(item.source_id, item.source_name, ids, item.latest))
    return out


def build_digests(*, session: Session, settings: Settings, now: datetime | None = None,
                  since: datetime | None = None, to: list[str] | None = None) -> list[DigestContent]:
    """Each recipient's digest content (all recipients, or only those in `to`), in recipient order."""
    _zone(settings)
    now = now or utcnow()
    auds = audiences(session=session, settings=settings)
    if to:
        wanted = [_norm(t) for t in to]
        unknown = [t for t in wanted if t not in auds]
        if unknown:
            raise DigestError(f"no digest for {', '.join(unknown)}: not an SOP owner, a member of an SOP's team, "
                              "or on TRACKER_DIGEST_EVERYTHING_TO")
        auds = {k: auds[k] for k in wanted}
    builder = _Builder(session, settings, now, since)
    delivered = _delivered(session, auds)
    return [builder.content_for(aud, delivered.get(key, (set(), set(), None))) for key, aud in auds.items()]


def _zone(settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DigestError(f"TRACKER_TIMEZONE={settings.timezone!r} is not a known time zone "
                          "(use an IANA name such as Europe/Berlin or UTC)") from exc


_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


def preview_stem(recipient: str) -> str:
    """A file name for a recipient's preview files."""
    return _UNSAFE.sub("_", recipient)


def write_preview(*, folder: Path, recipient: str, rendered: Rendered, eml: bytes) -> list[Path]:
    """Write a recipient's .html, .txt and .eml previews; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = preview_stem(recipient)
    paths = [folder / f"{stem}.html", folder / f"{stem}.txt", folder / f"{stem}.eml"]
    paths[0].write_text(rendered.html, encoding="utf-8")
    paths[1].write_text(rendered.text, encoding="utf-8")
    paths[2].write_bytes(eml)
    return paths


def record_delivery(*, session: Session, run_id: str, content: DigestContent, subject: str, status: str,
                    now: datetime, message_id: str | None = None, error: str | None = None) -> Digest:
    """Remember one recipient's digest (what it carried, sent or failed) with its audit event."""
    digest = Digest(run_id=run_id, recipient=content.recipient, created_at=now, status=status, subject=subject,
                    since=content.since,
                    change_ids=[c.change_id for c in content.changes] + [p.change_id for p in content.publications]
                    + [i for c in content.cosmetic for i in c.change_ids],
                    impact_ids=[i.impact_id for i in content.impacts],
                    failing_source_ids=[h.source_id for h in content.failing], message_id=message_id, error=error)
    session.add(digest)
    session.flush()
    after: dict[str, Any] = {"run_id": run_id, "recipient": digest.recipient, "subject": subject,
                             "impact_ids": digest.impact_ids, "change_ids": digest.change_ids}
    if error:
        after["error"] = error
    append_event(session=session, actor=SYSTEM, action=f"digest.{status}", entity_type="digest",
                 entity_id=digest.id or 0, after=after, at=now)
    return digest


def run_digest(*, engine: Engine, settings: Settings, send: bool, preview_dir: Path | None = None,
               since: datetime | None = None, to: list[str] | None = None, now: datetime | None = None) -> DigestRun:
    """Build every recipient's digest, write previews and/or send them; one recipient's failure spares the rest.

    Sending takes the send lease first (raising DigestBusy, before anything is read or sent, when
    another run holds it) and gives it back however the run ends.
    """
    if not send:
        return _run(engine=engine, settings=settings, preview_dir=preview_dir, since=since, to=to, now=now,
                    lease=None)
    try:
        lease = acquire_lease(engine, DIGEST_LEASE, ttl=lease_ttl(settings))
    except LeaseHeld as held:
        raise DigestBusy(held) from None
    try:
        return _run(engine=engine, settings=settings, preview_dir=preview_dir, since=since, to=to, now=now,
                    lease=lease)
    finally:
        lease.release()


def _run(*, engine: Engine, settings: Settings, preview_dir: Path | None, since: datetime | None,
         to: list[str] | None, now: datetime | None, lease: HeldLease | None) -> DigestRun:
    """run_digest's work; a run sends exactly when it holds the send lease."""
    now = now or utcnow()
    run = DigestRun(run_id=uuid.uuid4().hex)
    # Built under the lease: what a previous holder delivered is recorded by now, so it is not sent again.
    with session_scope(engine) as session:
        contents = build_digests(session=session, settings=settings, now=now, since=since, to=to)
    with Mailer(settings) as mailer:
        for content in contents:
            if not content.has_news and not settings.digest_send_empty:
                run.skipped_empty.append(content.recipient)
                continue
            rendered = render_digest(content, base_url=settings.base_url, timezone=settings.timezone)
            msg = build_message(rendered=rendered, sender=settings.mail_from, recipient=content.recipient, now=now)
            if preview_dir is not None:
                run.previews += write_preview(folder=preview_dir, recipient=content.recipient, rendered=rendered,
                                              eml=msg.as_bytes())
                run.previewed.append(content.recipient)
            if lease is None:  # a preview: nothing is sent
                continue
            # Before every message: keeps a long run's lease alive, and stops this run if it stalled
            # past the expiry and another run took over (that one builds from what is recorded).
            try:
                lease.renew()
            except LeaseLost as exc:
                run.lease_lost = str(exc)
                break
            error: str | None = None
            try:
                mailer.send(msg, recipient=content.recipient)
            except MailError as exc:
                run.failed.append(content.recipient)
                run.errors[content.recipient] = str(exc)
                status, error = FAILED, str(exc)
            else:
                run.sent.append(content.recipient)
                status = SENT
            # Recorded per recipient as soon as it is known, so a crash later cannot re-send it.
            with session_scope(engine) as session:
                record_delivery(session=session, run_id=run.run_id, content=content, subject=rendered.subject,
                                status=status, now=now, message_id=str(msg["Message-ID"]), error=error)
    return run
