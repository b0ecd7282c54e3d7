"""Deliveries: claim a (channel, message) row first, send, record the answer; never twice.

The unique constraint on (channel, message_key) is what makes "never twice" hold with two
senders at once (the service and a manual `tracker crawl`, or two machines): each sender inserts
the row before sending, in its own committed transaction, and the one whose insert fails does not
send. A failed row is claimed again only by a conditional UPDATE (status failed, due, attempts
left) that one sender wins. A row left "sending" by a crashed sender is taken over after
STALE_SENDING, so a message may be sent twice only when a sender died mid-send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from tracker.audit.trail import SYSTEM, append_event
from tracker.config import Settings
from tracker.notify.channels import channel_for
from tracker.notify.message import ChannelError, Message
from tracker.notify.secrets import SecretMissing, mask_url, resolve
from tracker.store.db import utcnow
from tracker.store.models import Delivery

log = logging.getLogger("tracker.notify")
STALE_SENDING = timedelta(minutes=15)
MAX_WAIT = timedelta(hours=1)
SENDING, SENT, FAILED = "sending", "sent", "failed"


@dataclass(frozen=True)
class Target:
    """One team channel: the template as the SOP file wrote it, and the key deliveries use."""

    team_id: str | None
    template: str
    channel: str

    @property
    def shown(self) -> str:
        return mask_url(self.template)


@dataclass
class SendReport:
    """What one pass did, per outcome (each entry: "channel message_key")."""

    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: int = 0  # already sent, or being sent by someone else

    def summary(self) -> str:
        return f"notify: {len(self.sent)} sent, {len(self.failed)} failed, {self.skipped} already sent or in flight"


def _insert(engine: Engine, target: Target, message: Message, now: datetime) -> int | None:
    row = Delivery(channel=target.channel, message_key=message.key, kind=message.kind, team_id=target.team_id,
                   target=target.shown[:500], title=message.title, body=message.body, created_at=now,
                   updated_at=now)
    try:
        with Session(engine) as s:
            s.add(row)
            s.commit()
            return row.id
    except IntegrityError:
        return None


def _reclaim(engine: Engine, target: Target, message: Message, settings: Settings, now: datetime) -> int | None:
    """Take over a failed row that is due, or one a crashed sender left "sending"; None if someone else has it."""
    t = Delivery.__table__  # type: ignore[attr-defined]
    due = sa.or_(sa.and_(t.c.status == FAILED, t.c.next_attempt_at <= now,
                         t.c.attempts < settings.notify_max_attempts),
                 sa.and_(t.c.status == SENDING, t.c.updated_at < now - STALE_SENDING))
    with engine.begin() as conn:
        found = conn.execute(sa.update(t).where(t.c.channel == target.channel, t.c.message_key == message.key, due)
                             .values(status=SENDING, updated_at=now).returning(t.c.id)).first()
    return None if found is None else int(found[0])


def claim(engine: Engine, target: Target, message: Message, settings: Settings,
          now: datetime | None = None) -> int | None:
    """The delivery row's id when this sender may send the message now, else None."""
    now = now or utcnow()
    return _insert(engine, target, message, now) or _reclaim(engine, target, message, settings, now)


def _attempt(target: Target, message: Message, settings: Settings,
             sleep: Callable[[float], None]) -> tuple[bool, str, int]:
    """Send with retries and doubling waits: (delivered, masked answer or error, attempts made)."""
    try:
        resolved = resolve(target.template)
    except SecretMissing as exc:
        return False, f"{target.shown}: {exc}", 1
    channel = channel_for(resolved.url)
    if (why := channel.problem(resolved.url)) is not None:
        return False, resolved.mask(why), 1
    error = ""
    for n in range(settings.notify_retries + 1):
        if n:
            sleep(settings.notify_backoff * 2 ** (n - 1))
        try:
            return True, channel.send(resolved, message, settings), n + 1
        except ChannelError as exc:
            error = resolved.mask(str(exc))
        except Exception as exc:  # a channel bug or an unexpected library error: recorded, never raised
            error = resolved.mask(f"{type(exc).__name__}: {exc}")
    return False, error, settings.notify_retries + 1


def _finish(engine: Engine, row_id: int, delivered: bool, answer: str, tries: int, settings: Settings) -> None:
    now = utcnow()
    with Session(engine) as s:
        row = s.get(Delivery, row_id)
        assert row is not None
        row.attempts += tries
        row.updated_at = now
        if delivered:
            row.status, row.sent_at, row.response, row.error, row.next_attempt_at = SENT, now, answer, None, None
        else:
            wait = min(MAX_WAIT, timedelta(seconds=settings.notify_backoff * 2 ** row.attempts))
            row.status, row.error, row.next_attempt_at = FAILED, answer, now + wait
        s.add(row)
        append_event(session=s, actor=SYSTEM, action="notify.sent" if delivered else "notify.failed",
                     entity_type="notify_delivery", entity_id=row_id,
                     after={"channel": row.channel, "target": row.target, "kind": row.kind,
                            "message": row.message_key, "attempts": row.attempts,
                            **({} if delivered else {"error": answer})})
        s.commit()


def deliver(engine: Engine, target: Target, message: Message, settings: Settings, report: SendReport,
            sleep: Callable[[float], None] = time.sleep, now: datetime | None = None) -> None:
    """Send one message to one channel unless it was (or is being) sent; record and audit the outcome."""
    row_id = claim(engine, target, message, settings, now)
    if row_id is None:
        report.skipped += 1
        return
    delivered, answer, tries = _attempt(target, message, settings, sleep)
    _finish(engine, row_id, delivered, answer, tries, settings)
    where = f"{target.channel} {message.key}"
    (report.sent if delivered else report.failed).append(where)
    level = logging.INFO if delivered else logging.WARNING
    log.log(level, "notify %s %s to %s: %s", "sent" if delivered else "failed", message.key, target.shown,
            answer[:200])
