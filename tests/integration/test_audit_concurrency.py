"""Several real processes appending to the audit trail at once keep one valid chain (no fork, no
lost event, no failed append), on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tracker.audit.trail import append_event, verify
from tracker.store.db import make_engine, session_scope
from tracker.store.models import AuditEvent, Team

PROCESSES = 4
EACH = 60


def _append_many(url: str, worker: int, n: int, with_work: bool, barrier: Any, results: Any) -> None:
    """A writer process: n appends, each in its own transaction, as fast as it can."""
    engine = make_engine(url)
    with engine.connect() as conn:  # connect (and import everything) before the race starts
        conn.execute(sa.text("SELECT 1"))
    done, errors = 0, []
    barrier.wait(timeout=120)
    for i in range(n):
        try:
            with session_scope(engine) as s:
                if with_work:  # the shape of real actions: read, change something, then audit it
                    s.exec(select(Team).limit(1)).all()
                    s.add(Team(id=f"w{worker}-{i}", name=f"Team {worker}/{i}"))
                    s.flush()
                append_event(session=s, actor=f"worker{worker}@example.com", action="load.append",
                             entity_type="worker", entity_id=worker, before={"i": i - 1}, after={"i": i})
                if with_work:
                    s.exec(select(AuditEvent.seq).where(AuditEvent.entity_id == str(worker))).all()
            done += 1
        except Exception as exc:  # reported to the test, which fails on any
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
    engine.dispose()
    results.put((worker, done, errors[:3]))


def run_writers(url: str, *, processes: int, each: int, with_work: bool) -> list[tuple[int, int, list[str]]]:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_append_many, args=(url, w, each, with_work, barrier, results))
             for w in range(processes)]
    for p in procs:
        p.start()
    out = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0, f"writer process exited with {p.exitcode}"
    return sorted(out)


@pytest.mark.parametrize("with_work", [False, True], ids=["append-only", "with-work"])
def test_concurrent_writers_keep_one_chain(db_url: str, engine: Engine, with_work: bool) -> None:
    with session_scope(engine) as s:  # an existing chain to extend
        append_event(session=s, actor="system", action="load.start", entity_type="test", entity_id=1)

    results = run_writers(db_url, processes=PROCESSES, each=EACH, with_work=with_work)

    for worker, done, errors in results:
        assert (done, errors) == (EACH, []), f"worker {worker}: {done}/{EACH} appended, errors {errors}"
    total = 1 + PROCESSES * EACH
    with Session(engine) as s:
        result = verify(s)
        events = s.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert result.ok, result.problem
    assert result.count == len(events) == total
    assert [e.seq for e in events] == list(range(1, total + 1))
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    for w in range(PROCESSES):
        mine = [e.after["i"] for e in events if e.actor == f"worker{w}@example.com"]
        assert mine == list(range(EACH))  # each writer's events in its own order, none lost
    # The writers really raced: their appends interleave in the chain (more runs than writers). On
    # SQLite a writer that just committed often wins the lock again before the waiting ones wake,
    # so runs are long there and interleaving is not guaranteed; PostgreSQL queues them fairly.
    runs = 1 + sum(a.actor != b.actor for a, b in zip(events[1:], events[2:], strict=False))
    if engine.dialect.name == "postgresql":
        assert runs > PROCESSES
    if with_work:
        with Session(engine) as s:
            assert len(s.exec(select(Team)).all()) == PROCESSES * EACH
