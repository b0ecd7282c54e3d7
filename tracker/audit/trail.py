"""The tamper-evident audit trail: append-only events, each hash-chained to the one before.

hash(n) = SHA-256(prev_hash + canonical JSON of event n's fields, prev_hash included). The chain
order is `seq` (1, 2, 3 … without gaps); the surrogate `id` is not part of the evidence.

Appends are serialised so concurrent writers never fork the chain: on PostgreSQL by a
transaction-scoped advisory lock, on SQLite by taking the database write lock before the chain
head is read. Both are held until the caller's transaction ends, and the unique `seq` column is
the backstop (a fork would fail to insert, never be stored). The caller must run PostgreSQL at
READ COMMITTED (the default): under REPEATABLE READ the head could be read from an older snapshot
and the append would fail on the unique `seq`.

There is no update or delete path here by design; on PostgreSQL a trigger refuses UPDATE, DELETE
and TRUNCATE on the table, on SQLite two triggers refuse UPDATE and DELETE (migration 0008). A
table owner or superuser can still disable them, and anyone who can write the SQLite file can drop
them, which is why the chain exists. What the chain alone cannot show is a cut at the end:
deleting the newest events leaves a shorter, valid chain. Record the head (`tracker audit verify`
prints it; exports and digests carry it) and check it later with `verify(..., expect_head=...)`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import Session, col, select

from tracker.store.db import utcnow
from tracker.store.models import AuditEvent

GENESIS = "0" * 64
SYSTEM = "system"
# Any fixed 64-bit key: the advisory lock that serialises appends on PostgreSQL.
_PG_LOCK_KEY = 0x7472_6163_6B65_72  # "tracker"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class AuditValueError(ValueError):
    """A value given to the audit trail cannot be stored and hashed reproducibly."""


def _jsonable(value: Any, where: str = "value") -> Any:
    """A JSON-native copy of value that reads back from either database exactly as written."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AuditValueError(f"{where} is {value!r}: JSON (and the audit hash) has no NaN or infinity")
        return value
    if isinstance(value, Enum):
        return _jsonable(value.value, where)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise AuditValueError(f"{where} is a naive datetime; give timezone-aware UTC")
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID | PurePath):
        return str(value)
    if isinstance(value, BaseModel):
        return _jsonable(value.model_dump(mode="json"), where)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, set | frozenset):
        # A set has no order of its own: sort so the same set always serialises the same way.
        return sorted((_jsonable(v, where) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise AuditValueError(f"{where} is a {type(value).__name__}, which the audit trail cannot store as JSON")


def canonical(*, seq: int, at: datetime, actor: str, action: str, entity_type: str, entity_id: str,
              before: Any, after: Any, prev_hash: str) -> bytes:
    """The canonical serialisation an event's hash covers."""
    body = {"seq": seq, "at": at.astimezone(UTC).isoformat(timespec="microseconds"), "actor": actor,
            "action": action, "entity_type": entity_type, "entity_id": entity_id,
            "before": before, "after": after, "prev_hash": prev_hash}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def event_hash(event: AuditEvent | StoredEvent | sa.Row[Any]) -> str:
    """Recompute an event's hash from its stored fields."""
    data = canonical(seq=event.seq, at=event.at, actor=event.actor, action=event.action,
                     entity_type=event.entity_type, entity_id=event.entity_id, before=event.before,
                     after=event.after, prev_hash=event.prev_hash)
    return hashlib.sha256(event.prev_hash.encode() + data).hexdigest()


def _lock_chain(session: Session) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    elif dialect == "sqlite":
        # A write statement (that changes nothing) makes SQLite take its write lock now (waiting up
        # to the busy timeout), so no other writer can append between our read of the head and our
        # insert. pysqlite opens the transaction right before it, so no stale read snapshot exists.
        session.execute(sa.text("DELETE FROM audit_event WHERE 0"))
    else:
        raise RuntimeError(f"the audit trail serialises appends on SQLite and PostgreSQL only, not {dialect}")


def head(session: Session) -> AuditEvent | None:
    """The newest event of the chain."""
    return session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1)).first()


def head_marker(session: Session) -> str:
    """The chain head as SEQ:HASH (`0:` + the genesis hash when empty), for manifests and digests to record."""
    last = head(session)
    return f"{last.seq}:{last.hash}" if last else f"0:{GENESIS}"


def append_event(*, session: Session, actor: str, action: str, entity_type: str, entity_id: str | int,
                 before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
                 at: datetime | None = None) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction (the caller commits)."""
    if not actor or not action or not entity_type:
        raise AuditValueError(f"an audit event needs an actor, an action and an entity type "
                              f"(got actor={actor!r}, action={action!r}, entity_type={entity_type!r})")
    if at is not None and at.tzinfo is None:
        raise AuditValueError(f"audit event {action} at {at!r}: naive datetime; give timezone-aware UTC")
    # Convert (and refuse what cannot be stored) before taking the lock.
    before_json, after_json = _jsonable(before, "before"), _jsonable(after, "after")
    _lock_chain(session)
    last = head(session)
    seq = (last.seq + 1) if last else 1
    prev = last.hash if last else GENESIS
    # Microseconds are what both backends keep, so the hash recomputes exactly after a round trip.
    when = (at or utcnow()).astimezone(UTC)
    event = AuditEvent(seq=seq, at=when, actor=actor, action=action, entity_type=entity_type,
                       entity_id=str(entity_id), before=before_json, after=after_json,
                       prev_hash=prev, hash="")
    event.hash = event_hash(event)
    session.add(event)
    session.flush()
    return event


def _rows(session: Session, *, batch: int, since: datetime | None = None, entity_type: str | None = None,
          entity_id: str | None = None, newest_first: bool = False) -> Iterator[sa.Row[Any]]:
    """Stored events as Core rows (attribute access like an AuditEvent), keyset-paged on seq."""
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    seq_col = table.c.seq
    base = sa.select(*table.c)
    if since is not None:
        base = base.where(table.c.at >= since)
    if entity_type is not None:
        base = base.where(table.c.entity_type == entity_type)
    if entity_id is not None:
        base = base.where(table.c.entity_id == entity_id)
    base = base.order_by(seq_col.desc() if newest_first else seq_col).limit(batch)
    last: int | None = None
    while True:
        q = base
        if last is not None:
            q = q.where(seq_col < last if newest_first else seq_col > last)
        rows = session.execute(q).all()
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1].seq


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An audit event exactly as the database holds it (read-only, attached to no session)."""

    id: int
    seq: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: Any
    after: Any
    prev_hash: str
    hash: str


def iter_events(session: Session, *, batch: int = 2000, since: datetime | None = None,
                entity_type: str | None = None, entity_id: str | None = None,
                newest_first: bool = False) -> Iterator[StoredEvent]:
    """Events as stored, in chain order (or newest first), read in batches so memory stays flat.

    The rows are read with Core, not through the session's identity map: what is yielded is what
    the database holds, and the caller's session (with its pending work) is left untouched. Plain
    records instead of ORM objects also make streaming a long chain several times faster.
    """
    for row in _rows(session, batch=batch, since=since, entity_type=entity_type, entity_id=entity_id,
                     newest_first=newest_first):
        yield StoredEvent(**row._mapping)


@dataclass
class Verification:
    """The result of checking the chain: ok, the head, or the first bad event and why."""

    ok: bool
    count: int  # events verified (up to the first bad one)
    head_seq: int | None = None  # the chain head when ok; else the last event verified before the break
    head_hash: str | None = None
    bad_seq: int | None = None
    bad_id: int | None = None  # None when the bad event is missing (deleted)
    problem: str | None = None
    expected_head_seq: int | None = None  # where the recorded head was found
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (for `tracker audit verify --json`)."""
        return asdict(self) | {"warnings": list(self.warnings)}


def parse_expected_head(value: str) -> tuple[int | None, str]:
    """A recorded head given as HASH or SEQ:HASH (as `tracker audit verify` prints it)."""
    text = value.strip().lower()
    seq: int | None = None
    if ":" in text:
        seq_text, _, text = text.partition(":")
        if not seq_text.lstrip("#").isdigit():
            raise ValueError(f"{value!r}: the part before ':' must be the head's seq number")
        seq = int(seq_text.lstrip("#"))
    if not _HEX64.fullmatch(text):
        raise ValueError(f"{value!r} is not a head: give the 64-hex-digit hash, optionally as SEQ:HASH")
    return seq, text


def verify(session: Session, *, expect_head: str | None = None) -> Verification:
    """Walk the chain from the first event: seq without gaps, every link and every hash must hold.

    expect_head (HASH or SEQ:HASH, recorded earlier) must still be in the chain: that is what shows
    the newest events were not cut off, or the chain rewritten from some point on.
    """
    want_seq, want_hash = parse_expected_head(expect_head) if expect_head is not None else (None, None)
    prev_hash, prev_seq, count, found_at = GENESIS, 0, 0, None
    last: Any = None  # the last good event (a row)

    def bad(ev_seq: int, ev_id: int | None, problem: str) -> Verification:
        return Verification(False, count, head_seq=last.seq if last else None,
                            head_hash=last.hash if last else None, bad_seq=ev_seq, bad_id=ev_id,
                            problem=problem, warnings=_warnings(session))

    for ev in _rows(session, batch=5000):
        expected = prev_seq + 1
        if ev.seq > expected:
            missing = f"#{expected}" if ev.seq == expected + 1 else f"#{expected} to #{ev.seq - 1}"
            return bad(expected, None, f"event {missing} is missing (deleted): the chain jumps from "
                                       f"#{prev_seq} to #{ev.seq} (id {ev.id})")
        if ev.seq < expected:  # only a seq below 1 can sort before the first event
            return bad(ev.seq, ev.id, f"event #{ev.seq} (id {ev.id}) has no place in the chain, which starts "
                                      "at #1 (inserted)")
        if ev.prev_hash != prev_hash:
            if prev_seq:
                why = (f"does not link to event #{prev_seq} (its prev_hash is not #{prev_seq}'s hash): events "
                       f"were inserted, deleted or reordered here, or #{prev_seq} was rewritten and re-hashed")
            else:
                why = "is the first event but does not link to the genesis hash: events before it were deleted"
            return bad(ev.seq, ev.id, f"event #{ev.seq} (id {ev.id}) {why}")
        if event_hash(ev) != ev.hash:
            return bad(ev.seq, ev.id, f"event #{ev.seq} (id {ev.id}) was altered: its stored fields no "
                                      "longer match its hash")
        if want_hash is not None and ev.hash == want_hash:
            found_at = ev.seq
        prev_hash, prev_seq, count, last = ev.hash, ev.seq, count + 1, ev
    result = Verification(True, count, head_seq=last.seq if last else None,
                          head_hash=last.hash if last else None, expected_head_seq=found_at,
                          warnings=_warnings(session))
    if want_hash is None or want_hash == GENESIS:
        return result
    if found_at is None:
        result.ok = False
        result.problem = (f"the recorded head {want_hash}{f' (#{want_seq})' if want_seq else ''} is no longer in "
                          f"the chain (now {count} events): the newest events were deleted, or the chain "
                          "was rewritten and re-hashed")
        result.bad_seq = want_seq if want_seq is not None else (last.seq + 1 if last else 1)
    elif want_seq is not None and want_seq != found_at:
        result.ok = False
        result.problem = f"the recorded head #{want_seq} {want_hash} is now at #{found_at}: the chain was renumbered"
        result.bad_seq = want_seq
    return result


# Triggers that make the table append-only on SQLite (installed by migration 0008).
SQLITE_APPEND_ONLY_TRIGGERS = ("audit_event_no_update", "audit_event_no_delete")


def _warnings(session: Session) -> tuple[str, ...]:
    """What weakens the evidence without breaking the chain: a disabled or missing append-only trigger."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # SQLite cannot disable a trigger, only drop it; a dropped one is what an edit of the file leaves.
        present = set(session.execute(sa.text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_event'")).scalars())
        # `tracker db upgrade` does not help when the database is already at 0008 (its version stays).
        return tuple(f"the append-only trigger {name} is missing: recreate it with `tracker audit "
                     "restore-triggers`, then investigate" for name in SQLITE_APPEND_ONLY_TRIGGERS
                     if name not in present)
    if dialect != "postgresql":
        return ()
    rows = session.execute(sa.text(
        "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'audit_event'::regclass AND NOT tgisinternal"
    )).all()
    states: dict[str, str] = {str(r[0]): str(r[1]) for r in rows}
    out = []
    for name in ("audit_event_no_update_delete", "audit_event_no_truncate"):
        if name not in states:
            out.append(f"the append-only trigger {name} is missing: recreate it with `tracker audit "
                       "restore-triggers`, then investigate")
        elif states[name] == "D":
            out.append(f"the append-only trigger {name} is disabled: enable it with `tracker audit "
                       "restore-triggers` (ALTER TABLE audit_event ENABLE TRIGGER USER), then investigate")
    return tuple(out)


# The append-only triggers as migrations 0002 (PostgreSQL) and 0008 (SQLite) install them; the migrations
# keep their own frozen copies, these are what `tracker audit restore-triggers` puts back.
PG_APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql"""
PG_APPEND_ONLY_TRIGGERS = {
    "audit_event_no_update_delete": "BEFORE UPDATE OR DELETE ON audit_event FOR EACH ROW",
    "audit_event_no_truncate": "BEFORE TRUNCATE ON audit_event FOR EACH STATEMENT",
}


def _sqlite_trigger_sql(name: str) -> str:
    verb = "UPDATE" if name.endswith("update") else "DELETE"
    return (f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {verb} ON audit_event\n"
            f"BEGIN\n"
            f"  SELECT RAISE(ABORT, 'audit_event is append-only: {verb} refused; "
            f"record a correction as a new event');\n"
            f"END")


def restore_append_only(session: Session, *, actor: str = SYSTEM) -> list[str]:
    """Put back (or re-enable) the append-only triggers that are missing or disabled; audited when any was.

    Returns what was done, one line per trigger ("created NAME" / "enabled NAME"); empty when all were in place.
    """
    dialect = session.get_bind().dialect.name
    done: list[str] = []
    if dialect == "sqlite":
        present = set(session.execute(sa.text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_event'")).scalars())
        for name in SQLITE_APPEND_ONLY_TRIGGERS:
            if name not in present:
                session.execute(sa.text(_sqlite_trigger_sql(name)))
                done.append(f"created {name}")
    elif dialect == "postgresql":
        states = {str(r[0]): str(r[1]) for r in session.execute(sa.text(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'audit_event'::regclass "
            "AND NOT tgisinternal")).all()}
        for name, when in PG_APPEND_ONLY_TRIGGERS.items():
            if name not in states:
                session.execute(sa.text(PG_APPEND_ONLY_FUNCTION))
                session.execute(sa.text(f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION audit_event_append_only()"))
                done.append(f"created {name}")
            elif states[name] == "D":
                session.execute(sa.text(f"ALTER TABLE audit_event ENABLE TRIGGER {name}"))
                done.append(f"enabled {name}")
    if done:
        append_event(session=session, actor=actor, action="audit.triggers_restored", entity_type="audit",
                     entity_id="audit_event", after={"restored": done})
    return done
