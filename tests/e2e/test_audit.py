"""The audit trail's hash chain: what `verify` catches when someone tampers with the database
directly (raw SQL, past the PostgreSQL trigger as a superuser could), what it cannot catch without
a recorded head, the append-only triggers themselves, and the `tracker audit` commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from enum import Enum
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from tests.conftest import run_tracker
from tracker.audit.trail import (
    GENESIS,
    SQLITE_APPEND_ONLY_TRIGGERS,
    AuditValueError,
    append_event,
    canonical,
    event_hash,
    head,
    head_marker,
    iter_events,
    verify,
)
from tracker.store.db import session_scope
from tracker.store.models import AuditEvent, Team

TABLE = AuditEvent.__table__  # type: ignore[attr-defined]


def fill(engine: Engine, n: int, *, first: int = 0) -> None:
    """n events, each appended in its own transaction, as the application does it."""
    for i in range(first, first + n):
        with session_scope(engine) as s:
            append_event(session=s, actor=f"user{i % 3}@example.com", action="impact.status",
                         entity_type="impact", entity_id=i % 4 + 1,
                         before={"status": "open", "n": i}, after={"status": "needs_update", "n": i, "note": "café ✓"})


def rows(engine: Engine) -> dict[int, dict[str, Any]]:
    """Every stored event by seq, as the database holds it."""
    with engine.connect() as conn:
        return {r.seq: dict(r._mapping) for r in conn.execute(sa.select(*TABLE.c).order_by(TABLE.c.seq))}


def check(engine: Engine, **kwargs: Any) -> Any:
    with Session(engine) as s:
        return verify(s, **kwargs)


@contextmanager
def attacker(engine: Engine) -> Iterator[Connection]:
    """A connection writing to audit_event directly, past the append-only triggers.

    On PostgreSQL, session_replication_role = replica skips triggers: what a superuser can do. On
    SQLite, anyone who can write the database file can drop the triggers, edit, and put them back
    in the same transaction. The triggers stop accidents and casual edits; the hash chain is what
    catches this.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            yield conn
            return
        triggers = conn.execute(sa.text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_event'")).all()
        assert sorted(name for name, _ in triggers) == sorted(SQLITE_APPEND_ONLY_TRIGGERS)
        for name, _ in triggers:
            conn.execute(sa.text(f"DROP TRIGGER {name}"))
        yield conn
        for _, sql in triggers:
            conn.execute(sa.text(sql))


def json_param(conn: Connection) -> str:
    return "CAST(:v AS json)" if conn.dialect.name == "postgresql" else ":v"


def is_pg(url: str) -> bool:
    return url.startswith("postgresql")


# --- an intact chain -------------------------------------------------------------------------


def test_intact_chain_verifies_with_its_head(engine: Engine) -> None:
    with Session(engine) as s:
        empty = verify(s)
    assert empty.ok and empty.count == 0 and empty.head_seq is None
    fill(engine, 7)
    stored = rows(engine)
    assert sorted(stored) == list(range(1, 8))
    assert stored[1]["prev_hash"] == GENESIS
    assert all(stored[n]["prev_hash"] == stored[n - 1]["hash"] for n in range(2, 8))
    result = check(engine)
    assert result.ok, result.problem
    assert (result.count, result.head_seq, result.head_hash) == (7, 7, stored[7]["hash"])
    with Session(engine) as s:
        assert head(s).hash == stored[7]["hash"]


def test_hash_is_sha256_over_the_canonical_form(engine: Engine) -> None:
    import hashlib

    fill(engine, 2)
    ev = rows(engine)[2]
    body = canonical(seq=2, at=ev["at"], actor=ev["actor"], action=ev["action"], entity_type=ev["entity_type"],
                     entity_id=ev["entity_id"], before=ev["before"], after=ev["after"], prev_hash=ev["prev_hash"])
    assert json.loads(body)["at"].endswith("+00:00")
    assert hashlib.sha256(ev["prev_hash"].encode() + body).hexdigest() == ev["hash"]


# --- tampering the chain catches ----------------------------------------------------------------


def test_edited_row_is_named(engine: Engine) -> None:
    fill(engine, 6)
    with attacker(engine) as conn:
        conn.execute(sa.text("UPDATE audit_event SET actor = 'mallory@example.com' WHERE seq = 3"))
    result = check(engine)
    assert not result.ok
    assert (result.bad_seq, result.bad_id) == (3, rows(engine)[3]["id"])
    assert "altered" in result.problem and result.count == 2


def test_edited_and_rehashed_row_breaks_the_next_link(engine: Engine) -> None:
    fill(engine, 6)
    ev = AuditEvent(**rows(engine)[3])
    ev.after = {"status": "dismissed"}
    with attacker(engine) as conn:
        conn.execute(sa.text(f"UPDATE audit_event SET after = {json_param(conn)}, hash = :h WHERE seq = 3"),
                     {"v": json.dumps(ev.after), "h": event_hash(ev)})
    result = check(engine)
    assert not result.ok and result.bad_seq == 4
    assert "does not link to event #3" in result.problem and "re-hashed" in result.problem


def test_deleted_row_is_named(engine: Engine) -> None:
    fill(engine, 6)
    with attacker(engine) as conn:
        conn.execute(sa.text("DELETE FROM audit_event WHERE seq = 4"))
    result = check(engine)
    assert not result.ok
    assert result.bad_seq == 4 and result.bad_id is None
    assert "#4 is missing" in result.problem and f"(id {rows(engine)[5]['id']})" in result.problem


def test_deleted_rows_then_renumbered_are_caught(engine: Engine) -> None:
    fill(engine, 6)
    with attacker(engine) as conn:
        conn.execute(sa.text("DELETE FROM audit_event WHERE seq IN (3, 4)"))
        for seq in (5, 6):
            conn.execute(sa.text("UPDATE audit_event SET seq = :new WHERE seq = :old"), {"new": seq - 2, "old": seq})
    result = check(engine)
    assert not result.ok and result.bad_seq == 3 and "does not link to event #2" in result.problem


def test_deleted_first_event_is_named(engine: Engine) -> None:
    fill(engine, 3)
    with attacker(engine) as conn:
        conn.execute(sa.text("DELETE FROM audit_event WHERE seq = 1"))
    result = check(engine)
    assert not result.ok and result.bad_seq == 1 and "#1 is missing" in result.problem


def test_swapped_seq_pair_is_named(engine: Engine) -> None:
    fill(engine, 6)
    with attacker(engine) as conn:
        conn.execute(sa.text("UPDATE audit_event SET seq = -1 WHERE seq = 3"))
        conn.execute(sa.text("UPDATE audit_event SET seq = 3 WHERE seq = 4"))
        conn.execute(sa.text("UPDATE audit_event SET seq = 4 WHERE seq = -1"))
    result = check(engine)
    assert not result.ok and result.bad_seq == 3 and "does not link to event #2" in result.problem


def test_swapped_contents_pair_is_named(engine: Engine) -> None:
    """Two rows keep their id and seq but trade every other field (the order of what happened)."""
    fill(engine, 6)
    stored = rows(engine)
    fields = [c for c in TABLE.c.keys() if c not in ("id", "seq")]
    with attacker(engine) as conn:
        for seq, other in ((3, 4), (4, 3)):
            conn.execute(sa.update(TABLE).where(TABLE.c.seq == seq).values({f: stored[other][f] for f in fields}))
    result = check(engine)
    assert not result.ok and (result.bad_seq, result.bad_id) == (3, stored[3]["id"])


def _shift_up_from(conn: Connection, seq: int) -> None:
    """Make room at seq (the column is unique, so in two steps)."""
    conn.execute(sa.text("UPDATE audit_event SET seq = -seq WHERE seq >= :s"), {"s": seq})
    conn.execute(sa.text("UPDATE audit_event SET seq = 1 - seq WHERE seq < 0"))


@pytest.mark.parametrize("forged_hash", [True, False], ids=["forged-hash", "made-up-hash"])
def test_row_inserted_in_the_middle_is_caught(engine: Engine, forged_hash: bool) -> None:
    fill(engine, 6)
    stored = rows(engine)
    fake = AuditEvent(seq=3, at=stored[2]["at"] + timedelta(seconds=1), actor="mallory@example.com",
                      action="impact.status", entity_type="impact", entity_id="1", before={"status": "open"},
                      after={"status": "dismissed"}, prev_hash=stored[2]["hash"], hash="f" * 64)
    if forged_hash:  # the algorithm is public: a valid hash for the fake event is easy to make
        fake.hash = event_hash(fake)
    with attacker(engine) as conn:
        _shift_up_from(conn, 3)
        conn.execute(sa.insert(TABLE).values({c: getattr(fake, c) for c in TABLE.c.keys() if c != "id"}))
    result = check(engine)
    assert not result.ok
    if forged_hash:  # the fake links to #2, but the old #3 (now #4) no longer links to it
        assert (result.bad_seq, result.bad_id) == (4, stored[3]["id"])
        assert "does not link to event #3" in result.problem
    else:
        assert result.bad_seq == 3 and "altered" in result.problem


def test_row_inserted_before_the_first_is_caught(engine: Engine) -> None:
    fill(engine, 3)
    first = rows(engine)[1]
    with attacker(engine) as conn:
        conn.execute(sa.insert(TABLE).values({c: first[c] for c in TABLE.c.keys() if c != "id"} | {"seq": 0}))
    result = check(engine)
    assert not result.ok and result.bad_seq == 0 and "inserted" in result.problem


def _tamper_field(conn: Connection, field: str, stored: dict[str, Any]) -> None:
    if field == "at":
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("UPDATE audit_event SET at = at + interval '1 microsecond' WHERE seq = 3"))
        else:
            raw = conn.execute(sa.text("SELECT at FROM audit_event WHERE seq = 3")).scalar_one()
            later = datetime.fromisoformat(raw) + timedelta(microseconds=1)
            conn.execute(sa.text("UPDATE audit_event SET at = :v WHERE seq = 3"),
                         {"v": later.isoformat(sep=" ", timespec="microseconds")})
    elif field in ("before", "after"):
        value = dict(stored[field]) | {"status": "dismissed"}
        conn.execute(sa.text(f"UPDATE audit_event SET {field} = {json_param(conn)} WHERE seq = 3"),
                     {"v": json.dumps(value)})
    elif field in ("prev_hash", "hash"):
        conn.execute(sa.text(f"UPDATE audit_event SET {field} = :v WHERE seq = 3"), {"v": "0" * 64})
    else:
        conn.execute(sa.text(f"UPDATE audit_event SET {field} = :v WHERE seq = 3"), {"v": f"{stored[field]}x"})


@pytest.mark.parametrize("field", ["actor", "at", "action", "entity_type", "entity_id", "before", "after",
                                   "prev_hash", "hash"])
def test_hash_covers_every_field(engine: Engine, field: str) -> None:
    fill(engine, 5)
    with attacker(engine) as conn:
        _tamper_field(conn, field, rows(engine)[3])
    result = check(engine)
    assert not result.ok and result.bad_seq == 3, (field, result)


def test_same_json_rewritten_with_other_key_order_is_not_tampering(engine: Engine) -> None:
    """The hash covers values, not the bytes of the JSON column."""
    fill(engine, 3)
    after = rows(engine)[2]["after"]
    with attacker(engine) as conn:
        text = json.dumps(dict(reversed(list(after.items()))), indent=3, ensure_ascii=True)
        conn.execute(sa.text(f"UPDATE audit_event SET after = {json_param(conn)} WHERE seq = 2"), {"v": text})
    assert check(engine).ok


# --- the end of the chain: only a recorded head shows a cut or a rewrite -------------------------


def test_tail_truncation_needs_a_recorded_head(engine: Engine) -> None:
    with Session(engine) as s:
        assert head_marker(s) == f"0:{GENESIS}"
        assert verify(s, expect_head=head_marker(s)).ok
    fill(engine, 5)
    recorded = check(engine)
    anchor = f"{recorded.head_seq}:{recorded.head_hash}"
    with Session(engine) as s:
        assert head_marker(s) == anchor
    fill(engine, 3, first=5)
    later = check(engine, expect_head=anchor)
    assert later.ok and later.expected_head_seq == 5 and later.count == 8
    assert check(engine, expect_head=recorded.head_hash).ok  # the bare hash works too

    with attacker(engine) as conn:  # cut the newest events, past the recorded head
        conn.execute(sa.text("DELETE FROM audit_event WHERE seq >= 5"))
    assert check(engine).ok  # the limitation: a shorter chain is still a valid chain
    cut = check(engine, expect_head=anchor)
    assert not cut.ok and cut.bad_seq == 5 and "no longer in the chain" in cut.problem

    with attacker(engine) as conn:  # everything gone
        conn.execute(sa.text("DELETE FROM audit_event"))
    assert check(engine).ok
    gone = check(engine, expect_head=anchor)
    assert not gone.ok and gone.count == 0
    assert check(engine, expect_head=GENESIS).ok  # the head of an empty chain


def test_rewritten_and_rehashed_tail_needs_a_recorded_head(engine: Engine) -> None:
    """Whoever can write the table can edit an event and re-hash everything after it."""
    fill(engine, 6)
    recorded = check(engine)
    stored = rows(engine)
    with attacker(engine) as conn:
        prev = stored[2]["hash"]
        for seq in range(3, 7):
            ev = AuditEvent(**stored[seq])
            if seq == 3:
                ev.actor = "mallory@example.com"
            ev.prev_hash = prev
            ev.hash = prev = event_hash(ev)
            conn.execute(sa.text("UPDATE audit_event SET actor = :a, prev_hash = :p, hash = :h WHERE seq = :s"),
                         {"a": ev.actor, "p": ev.prev_hash, "h": ev.hash, "s": seq})
    assert check(engine).ok
    result = check(engine, expect_head=f"{recorded.head_seq}:{recorded.head_hash}")
    assert not result.ok and "rewritten" in result.problem


def test_recorded_head_at_another_seq(engine: Engine) -> None:
    fill(engine, 4)
    h = rows(engine)[4]["hash"]
    result = check(engine, expect_head=f"3:{h}")
    assert not result.ok and "renumbered" in result.problem
    with pytest.raises(ValueError, match="64-hex-digit"):
        check(engine, expect_head="abc")


# --- values and timestamps survive the round trip exactly -----------------------------------------


def test_timestamps_round_trip_to_the_microsecond(engine: Engine) -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    times = [datetime(2026, 11, 22, 4, 20, 19, 1, tzinfo=UTC), datetime(2026, 11, 22, 4, 20, 19, 999999, tzinfo=UTC),
             datetime(2026, 11, 22, 4, 20, 19, 0, tzinfo=UTC), datetime(1999, 12, 31, 23, 59, 59, 123456, tzinfo=ist),
             datetime(2038, 1, 19, 3, 14, 8, 500000, tzinfo=UTC)]
    with session_scope(engine) as s:
        for i, at in enumerate(times):
            append_event(session=s, actor="system", action="tick", entity_type="clock", entity_id=i, at=at)
        append_event(session=s, actor="system", action="tick", entity_type="clock", entity_id="now")
    with Session(engine) as s:
        back = list(iter_events(s))
    for ev, at in zip(back, times, strict=False):
        assert ev.at == at and ev.at.utcoffset() == timedelta(0)
        assert ev.at.microsecond == at.astimezone(UTC).microsecond
    assert back[-1].at.tzinfo is not None
    assert check(engine).ok


class Colour(Enum):
    RED = "red"


def test_values_are_stored_as_json_that_rehashes(engine: Engine) -> None:
    with session_scope(engine) as s:
        append_event(session=s, actor="system", action="odd.values", entity_type="x", entity_id=1,
                     before={"due": date(2026, 12, 1), "tags": {"b", "a", "c"}, "pair": (1, 2), "colour": Colour.RED},
                     after={"when": datetime(2026, 1, 1, 12, 0, 0, 7, tzinfo=UTC), "n": 1.5, "big": 2**60,
                            3: "int key", "text": "naïve — ✓ \"quoted\" \n"})
    ev = rows(engine)[1]
    assert ev["before"] == {"due": "2026-12-01", "tags": ["a", "b", "c"], "pair": [1, 2], "colour": "red"}
    assert ev["after"]["when"] == "2026-01-01T12:00:00.000007+00:00" and ev["after"]["3"] == "int key"
    assert ev["after"]["big"] == 2**60
    assert check(engine).ok


def test_values_that_cannot_rehash_are_refused(session: Session) -> None:
    with pytest.raises(AuditValueError, match="NaN"):
        append_event(session=session, actor="system", action="a", entity_type="x", entity_id=1,
                     after={"score": float("nan")})
    with pytest.raises(AuditValueError, match="naive"):
        append_event(session=session, actor="system", action="a", entity_type="x", entity_id=1,
                     at=datetime(2026, 1, 1))
    with pytest.raises(AuditValueError, match="cannot store"):
        append_event(session=session, actor="system", action="a", entity_type="x", entity_id=1,
                     after={"obj": object()})
    with pytest.raises(AuditValueError, match="actor"):
        append_event(session=session, actor="", action="a", entity_type="x", entity_id=1)


# --- reading leaves the caller's session alone ---------------------------------------------------


def test_verify_inside_a_transaction_keeps_its_pending_work(engine: Engine) -> None:
    fill(engine, 3)
    with session_scope(engine) as s:
        s.add(Team(id="appeals", name="Appeals", members=["a@example.com"]))
        append_event(session=s, actor="a@example.com", action="team.added", entity_type="team", entity_id="appeals",
                     after={"name": "Appeals"})
        result = verify(s)  # sees this transaction's own event
        assert result.ok and result.count == 4
        s.add(Team(id="billing", name="Billing"))
    with Session(engine) as s:
        assert s.get(Team, "appeals") is not None and s.get(Team, "billing") is not None
    assert check(engine).count == 4


def test_iter_events_streams_in_batches_and_filters(engine: Engine) -> None:
    fill(engine, 10)
    with Session(engine) as s:
        assert [e.seq for e in iter_events(s, batch=3)] == list(range(1, 11))
        assert [e.seq for e in iter_events(s, batch=4, newest_first=True)] == list(range(10, 0, -1))
        assert [e.seq for e in iter_events(s, batch=2, entity_type="impact", entity_id="2")] == [2, 6, 10]
        cut = rows(engine)[8]["at"]
        assert [e.seq for e in iter_events(s, batch=2, since=cut)] == [8, 9, 10]
        assert len(s.identity_map) == 0  # nothing read was attached to the session


# --- the append-only triggers (PostgreSQL since 0002, SQLite since 0008) -------------------------


def refused(db_url: str) -> type[Exception]:
    """What a refused write raises: RAISE EXCEPTION (SQLSTATE P0001) is a ProgrammingError with
    psycopg, RAISE(ABORT) an IntegrityError (SQLITE_CONSTRAINT_TRIGGER) on SQLite."""
    return sa.exc.ProgrammingError if is_pg(db_url) else sa.exc.IntegrityError


@pytest.mark.parametrize("sql", ["UPDATE audit_event SET actor = 'mallory@example.com' WHERE seq = 2",
                                 "DELETE FROM audit_event WHERE seq = 3", "DELETE FROM audit_event",
                                 "TRUNCATE audit_event"], ids=["update", "delete-one", "delete-all", "truncate"])
def test_trigger_refuses_update_delete_truncate(db_url: str, engine: Engine, sql: str) -> None:
    verb = sql.split()[0]
    if verb == "TRUNCATE" and not is_pg(db_url):
        pytest.skip("SQLite has no TRUNCATE (an unqualified DELETE is covered by delete-all)")
    fill(engine, 3)
    before = rows(engine)
    with pytest.raises(refused(db_url), match=f"audit_event is append-only: {verb} refused") as exc:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
    if not is_pg(db_url):
        assert "record a correction as a new event" in str(exc.value)
    assert rows(engine) == before
    result = check(engine)
    assert result.ok and result.count == 3 and result.warnings == ()


def test_orm_update_and_delete_are_refused_and_appending_still_works(db_url: str, engine: Engine) -> None:
    """The accident the triggers are for: application code that edits or deletes an event."""
    fill(engine, 3)
    with Session(engine) as s:
        ev = s.exec(sa.select(AuditEvent).where(TABLE.c.seq == 2)).scalar_one()  # type: ignore[call-overload]
        ev.actor = "mallory@example.com"
        with pytest.raises(refused(db_url), match="audit_event is append-only: UPDATE refused"):
            s.commit()
        s.rollback()
        ev = s.exec(sa.select(AuditEvent).where(TABLE.c.seq == 3)).scalar_one()  # type: ignore[call-overload]
        s.delete(ev)
        with pytest.raises(refused(db_url), match="audit_event is append-only: DELETE refused"):
            s.commit()
    fill(engine, 1, first=3)  # appends are not affected (they also serialise with a DELETE ... WHERE 0 on SQLite)
    result = check(engine)
    assert result.ok and result.count == 4 and rows(engine)[2]["actor"] == "user1@example.com"


def test_postgres_disabled_trigger_is_reported(db_url: str, engine: Engine) -> None:
    if not is_pg(db_url):
        pytest.skip("SQLite cannot disable a trigger, only drop it (test_sqlite_dropped_trigger_is_reported)")
    fill(engine, 3)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        conn.execute(sa.text("UPDATE audit_event SET action = 'impact.dismissed' WHERE seq = 2"))
    result = check(engine)
    assert not result.ok and result.bad_seq == 2
    assert any("audit_event_no_update_delete is disabled" in w for w in result.warnings)
    out = run_tracker(db_url, "audit", "verify")
    assert out.returncode == 1 and "warning: the append-only trigger" in out.stderr
    assert "tracker audit restore-triggers" in out.stderr
    assert_restored(db_url, engine, ["enabled audit_event_no_update_delete", "enabled audit_event_no_truncate"])


def test_postgres_dropped_trigger_is_restored(db_url: str, engine: Engine) -> None:
    if not is_pg(db_url):
        pytest.skip("PostgreSQL's trigger (test_sqlite_dropped_trigger_is_reported covers SQLite)")
    fill(engine, 2)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER audit_event_no_truncate ON audit_event"))
    assert check(engine).warnings == ("the append-only trigger audit_event_no_truncate is missing: recreate it "
                                      "with `tracker audit restore-triggers`, then investigate",)
    assert_restored(db_url, engine, ["created audit_event_no_truncate"])
    with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="append-only: TRUNCATE refused"):
        conn.execute(sa.text("TRUNCATE audit_event"))


def assert_restored(db_url: str, engine: Engine, done: list[str]) -> None:
    """`tracker audit restore-triggers` puts the triggers back, says what it did, audits it, and is idempotent."""
    out = run_tracker(db_url, "audit", "restore-triggers", "--by", "admin@example.com")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:len(done)] == done
    assert check(engine).warnings == ()
    events = rows(engine)
    last = events[max(events)]
    assert last["action"] == "audit.triggers_restored" and last["actor"] == "admin@example.com"
    assert last["after"] == {"restored": done}
    with engine.begin() as conn, pytest.raises(sa.exc.DBAPIError, match="append-only: UPDATE refused"):
        conn.execute(sa.text("UPDATE audit_event SET actor = 'mallory@example.com' WHERE seq = 1"))
    again = run_tracker(db_url, "audit", "restore-triggers")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert max(rows(engine)) == last["seq"]


def test_sqlite_dropped_trigger_is_reported(db_url: str, engine: Engine) -> None:
    """Someone with the database file drops a trigger and edits an event: the chain names the
    event, and verify warns that the trigger is gone."""
    if is_pg(db_url):
        pytest.skip("SQLite's triggers are dropped, PostgreSQL's disabled (test_postgres_disabled_trigger_is_reported)")
    fill(engine, 3)
    with engine.begin() as conn:
        sql = conn.execute(sa.text(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'audit_event_no_update'")).scalar_one()
        conn.execute(sa.text("DROP TRIGGER audit_event_no_update"))
        conn.execute(sa.text("UPDATE audit_event SET action = 'impact.dismissed' WHERE seq = 2"))
    result = check(engine)
    assert not result.ok and result.bad_seq == 2
    assert result.warnings == ("the append-only trigger audit_event_no_update is missing: recreate it "
                               "with `tracker audit restore-triggers`, then investigate",)
    out = run_tracker(db_url, "audit", "verify")
    assert out.returncode == 1 and "warning: the append-only trigger audit_event_no_update is missing" in out.stderr
    assert sql.startswith("CREATE TRIGGER")
    assert_restored(db_url, engine, ["created audit_event_no_update"])


def sqlite_triggers(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_event'")).scalars())


def test_the_sqlite_trigger_migration_upgrades_and_downgrades(database_url: str) -> None:
    """0008 adds the triggers on SQLite, its downgrade removes them, and leaves PostgreSQL's alone."""
    from alembic import command

    from tracker.store.db import alembic_config, make_engine, upgrade

    upgrade(database_url)
    eng = make_engine(database_url)
    pg = is_pg(database_url)
    try:
        fill(eng, 2)
        if not pg:
            assert sqlite_triggers(eng) == set(SQLITE_APPEND_ONLY_TRIGGERS)
        command.downgrade(alembic_config(database_url), "0007")
        with eng.begin() as conn:
            if pg:  # PostgreSQL's own trigger (0002) is still there
                with pytest.raises(sa.exc.ProgrammingError, match="append-only: UPDATE refused"):
                    with conn.begin_nested():
                        conn.execute(sa.text("UPDATE audit_event SET actor = 'x' WHERE seq = 1"))
            else:
                assert sqlite_triggers(eng) == set()
                conn.execute(sa.text("UPDATE audit_event SET actor = 'x' WHERE seq = 1"))  # nothing stops it
        with Session(eng) as s:
            assert verify(s).ok == pg  # the chain still catches it
        upgrade(database_url)
        if not pg:
            assert sqlite_triggers(eng) == set(SQLITE_APPEND_ONLY_TRIGGERS)
        with pytest.raises(refused(database_url), match="audit_event is append-only: DELETE refused"):
            with eng.begin() as conn:
                conn.execute(sa.text("DELETE FROM audit_event"))
        assert len(rows(eng)) == 2
    finally:
        eng.dispose()


# --- the commands ----------------------------------------------------------------------------------


def test_cli_verify_exit_codes_and_head(db_url: str, engine: Engine) -> None:
    fill(engine, 5)
    ok = run_tracker(db_url, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    head_line = next(line for line in ok.stdout.splitlines() if line.startswith("head: "))
    anchor = head_line.removeprefix("head: ")
    assert anchor == f"5:{rows(engine)[5]['hash']}" and "5 events" in ok.stdout

    fill(engine, 2, first=5)
    still = run_tracker(db_url, "audit", "verify", "--expect-head", anchor)
    assert still.returncode == 0 and "recorded head #5 is in the chain (2 event(s) after it)" in still.stdout

    bad_arg = run_tracker(db_url, "audit", "verify", "--expect-head", "not-a-hash")
    assert bad_arg.returncode == 2 and "64-hex-digit" in bad_arg.stderr

    with attacker(engine) as conn:
        conn.execute(sa.text("DELETE FROM audit_event WHERE seq >= 5"))
    cut = run_tracker(db_url, "audit", "verify", "--expect-head", anchor)
    assert cut.returncode == 1 and "no longer in the chain" in cut.stderr
    assert run_tracker(db_url, "audit", "verify").returncode == 0  # without the head it cannot tell

    with attacker(engine) as conn:
        conn.execute(sa.text("UPDATE audit_event SET after = NULL WHERE seq = 3"))
    broken = run_tracker(db_url, "audit", "verify")
    assert broken.returncode == 1
    assert f"BROKEN at event #3 (id {rows(engine)[3]['id']})" in broken.stderr and "altered" in broken.stderr
    as_json = run_tracker(db_url, "audit", "verify", "--json")
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    assert data["ok"] is False and data["bad_seq"] == 3 and data["count"] == 2


def test_cli_log_filters_and_json(db_url: str, engine: Engine) -> None:
    empty = run_tracker(db_url, "audit", "log")
    assert empty.returncode == 0 and "no audit events" in empty.stdout
    assert json.loads(run_tracker(db_url, "audit", "log", "--json").stdout) == []
    fill(engine, 6)
    out = run_tracker(db_url, "audit", "log", "--json", "--entity", "impact:2")
    assert out.returncode == 0, out.stderr
    events = json.loads(out.stdout)
    assert [e["seq"] for e in events] == [6, 2]  # newest first
    assert events[0]["after"]["note"] == "café ✓" and events[0]["hash"] == rows(engine)[6]["hash"]
    assert set(events[0]) >= {"seq", "id", "at", "actor", "action", "entity_type", "entity_id", "before", "after",
                              "prev_hash", "hash"}
    limited = json.loads(run_tracker(db_url, "audit", "log", "--json", "--limit", "2").stdout)
    assert [e["seq"] for e in limited] == [6, 5]
    since = rows(engine)[4]["at"].isoformat()
    assert [e["seq"] for e in json.loads(run_tracker(db_url, "audit", "log", "--json", "--since", since).stdout)] \
        == [6, 5, 4]
    text = run_tracker(db_url, "audit", "log", "--entity", "impact", "--limit", "1")
    assert text.returncode == 0
    assert text.stdout.startswith("#6 ") and "impact:2" in text.stdout and "status: open → needs_update" in text.stdout
    assert run_tracker(db_url, "audit", "log", "--entity", "impact:").returncode == 2
    assert run_tracker(db_url, "audit", "log", "--since", "yesterday").returncode == 2
