"""The tamper-evident audit trail: append-only events, each hash-chained to the one before.

hash(n) = SHA-256(prev_hash + canonical JSON of event n's fields). Appends are serialised
(a PostgreSQL transaction-scoped advisory lock; SQLite's write lock taken before the chain head
is read) so concurrent writers never fork the chain. There is no update or delete path here by
design; on PostgreSQL a trigger refuses UPDATE and DELETE on the table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from tracker.db import utcnow
from tracker.models import AuditEvent

GENESIS = "0" * 64
SYSTEM = "system"
# Any fixed 64-bit key: the advisory lock that serialises appends on PostgreSQL.
_PG_LOCK_KEY = 0x7472_6163_6B65_72  # "tracker"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return value


def canonical(*, seq: int, at: datetime, actor: str, action: str, entity_type: str, entity_id: str,
              before: Any, after: Any, prev_hash: str) -> bytes:
    """The canonical serialisation an event's hash covers."""
    body = {"seq": seq, "at": at.astimezone(UTC).isoformat(timespec="microseconds"), "actor": actor,
            "action": action, "entity_type": entity_type, "entity_id": entity_id,
            "before": before, "after": after, "prev_hash": prev_hash}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: AuditEvent) -> str:
    """Recompute an event's hash from its stored fields."""
    data = canonical(seq=event.seq, at=event.at, actor=event.actor, action=event.action,
                     entity_type=event.entity_type, entity_id=event.entity_id, before=event.before,
                     after=event.after, prev_hash=event.prev_hash)
    return hashlib.sha256(event.prev_hash.encode() + data).hexdigest()


def _lock_chain(session: Session) -> None:
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    elif bind.dialect.name == "sqlite":
        # A write statement (that changes nothing) makes SQLite take its write lock now, so no other
        # writer can append between our read of the chain head and our insert.
        session.execute(sa.text("DELETE FROM audit_event WHERE 0"))


def head(session: Session) -> AuditEvent | None:
    """The newest event of the chain."""
    return session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1)).first()


def append_event(*, session: Session, actor: str, action: str, entity_type: str, entity_id: str | int,
                 before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
                 at: datetime | None = None) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction (the caller commits)."""
    _lock_chain(session)
    last = head(session)
    seq = (last.seq + 1) if last else 1
    prev = last.hash if last else GENESIS
    # Microsecond precision survives both backends, so the hash recomputes exactly.
    when = (at or utcnow()).astimezone(UTC)
    event = AuditEvent(seq=seq, at=when, actor=actor, action=action, entity_type=entity_type,
                       entity_id=str(entity_id), before=_jsonable(before), after=_jsonable(after),
                       prev_hash=prev, hash="")
    event.hash = event_hash(event)
    session.add(event)
    session.flush()
    return event


@dataclass
class Verification:
    """The result of checking the chain: ok, the head, or the first bad event and why."""

    ok: bool
    count: int
    head_seq: int | None = None
    head_hash: str | None = None
    bad_seq: int | None = None
    bad_id: int | None = None
    problem: str | None = None


def iter_events(session: Session, batch: int = 5000) -> Iterator[AuditEvent]:
    """Every event in chain order, read in batches (memory stays flat on long chains)."""
    last = 0
    while True:
        rows = session.exec(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(col(AuditEvent.seq)).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify(session: Session, *, upto_hash: str | None = None) -> Verification:
    """Walk the chain from the first event: every hash must recompute and link, seq without gaps."""
    prev, expected_seq, count = GENESIS, 1, 0
    last: AuditEvent | None = None
    for ev in iter_events(session):
        if ev.seq != expected_seq:
            what = "missing (deleted?)" if ev.seq > expected_seq else "out of order"
            return Verification(False, count, bad_seq=ev.seq, bad_id=ev.id,
                                problem=f"expected event #{expected_seq} but found #{ev.seq}: events {what}")
        if ev.prev_hash != prev:
            return Verification(False, count, bad_seq=ev.seq, bad_id=ev.id,
                                problem=f"event #{ev.seq} does not link to the event before it "
                                        "(an event was inserted, removed or reordered)")
        if event_hash(ev) != ev.hash:
            return Verification(False, count, bad_seq=ev.seq, bad_id=ev.id,
                                problem=f"event #{ev.seq} was altered: its content no longer matches its hash")
        prev, expected_seq, count, last = ev.hash, expected_seq + 1, count + 1, ev
    result = Verification(True, count, head_seq=last.seq if last else None, head_hash=last.hash if last else None)
    if upto_hash is not None and last is not None:
        if upto_hash not in (GENESIS,) and not _chain_contains(session, upto_hash):
            return Verification(False, count, problem=f"the chain no longer contains the head {upto_hash}")
    return result


def _chain_contains(session: Session, digest: str) -> bool:
    return session.exec(select(AuditEvent.id).where(AuditEvent.hash == digest)).first() is not None


# Trigger that makes the table append-only on PostgreSQL (installed by migration 0002).
PG_APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_event_no_update_delete
  BEFORE UPDATE OR DELETE ON audit_event
  FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
CREATE TRIGGER audit_event_no_truncate
  BEFORE TRUNCATE ON audit_event
  FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
"""
