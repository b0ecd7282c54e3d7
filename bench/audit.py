#!/usr/bin/env python3
"""The audit trail: appends per second (one writer, and several processes racing), and how long
`verify` takes on a long chain, with the memory it needs (it streams, so that stays flat).

Run:  .venv/bin/python bench/audit.py [--events 200000] [--appends 2000] [--writers 4]
                                      [--database-url postgresql+psycopg://postgres@127.0.0.1/test]
Without --database-url a temporary SQLite file is used. On PostgreSQL the tables go into a
throwaway schema.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _writer(url: str, n: int, barrier: Any) -> None:
    from tracker.audit.trail import append_event
    from tracker.store.db import make_engine, session_scope

    engine = make_engine(url)
    barrier.wait()
    for i in range(n):
        with session_scope(engine) as s:
            append_event(session=s, actor="bench@example.com", action="bench.append", entity_type="bench",
                         entity_id=i, before={"i": i - 1}, after={"i": i})


def _bulk_chain(url: str, n: int) -> None:
    """n more events, inserted in bulk with hashes computed by tracker.audit.trail itself."""
    import sqlalchemy as sa
    from sqlmodel import Session

    from tracker.audit.trail import GENESIS, event_hash, head
    from tracker.store.db import make_engine, utcnow
    from tracker.store.models import AuditEvent

    engine = make_engine(url)
    with Session(engine) as s:
        last = head(s)
    prev, seq = (last.hash, last.seq) if last else (GENESIS, 0)
    cols = ("seq", "at", "actor", "action", "entity_type", "entity_id", "before", "after", "prev_hash", "hash")
    with engine.begin() as conn:
        batch: list[dict[str, Any]] = []
        for _ in range(n):
            seq += 1
            ev = AuditEvent(seq=seq, at=utcnow(), actor="alice@example.com", action="impact.status",
                            entity_type="impact", entity_id=str(seq % 997), before={"status": "open"},
                            after={"status": "needs_update", "note": "checked against the new policy text"},
                            prev_hash=prev, hash="")
            ev.hash = prev = event_hash(ev)
            batch.append({c: getattr(ev, c) for c in cols})
            if len(batch) == 5000:
                conn.execute(sa.insert(AuditEvent.__table__), batch)  # type: ignore[attr-defined]
                batch = []
        if batch:
            conn.execute(sa.insert(AuditEvent.__table__), batch)  # type: ignore[attr-defined]
    engine.dispose()


def _verify(url: str, expect_head: str | None = None) -> tuple[float, int, bool, float]:
    from sqlmodel import Session

    from tracker.audit.trail import verify
    from tracker.store.db import make_engine

    engine = make_engine(url)
    with Session(engine) as s:
        t = time.perf_counter()
        result = verify(s, expect_head=expect_head)
        took = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return took, result.count, result.ok, rss


def _verify_in_child(url: str, q: Any) -> None:
    q.put(_verify(url))


def verify_fresh_process(url: str) -> tuple[float, int, bool, float]:
    """verify() in its own process, so the peak RSS is verify's alone."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_verify_in_child, args=(url, q))
    p.start()
    out = q.get()
    p.join()
    return out  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000, help="length of the chain verify walks")
    ap.add_argument("--appends", type=int, default=2000, help="appends per writer")
    ap.add_argument("--writers", type=int, default=4, help="processes appending at once")
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()

    import sqlalchemy as sa

    from tracker.store.db import make_engine, upgrade

    tmp = tempfile.TemporaryDirectory()
    schema = None
    if args.database_url:
        schema = "bench_" + uuid.uuid4().hex[:10]
        with make_engine(args.database_url).begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in args.database_url else "?"
        url = f"{args.database_url}{sep}options={quote(f'-csearch_path={schema}')}"
    else:
        url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    try:
        upgrade(url)
        backend = url.split(":", 1)[0]
        ctx = mp.get_context("spawn")

        barrier = ctx.Barrier(2)
        p = ctx.Process(target=_writer, args=(url, args.appends, barrier))
        p.start()
        barrier.wait()
        t = time.perf_counter()
        p.join()
        one = time.perf_counter() - t
        print(f"[{backend}] 1 writer: {args.appends} appends (one transaction each) in {one:.2f} s "
              f"= {args.appends / one:,.0f}/s")

        barrier = ctx.Barrier(args.writers + 1)
        procs = [ctx.Process(target=_writer, args=(url, args.appends, barrier)) for _ in range(args.writers)]
        for p in procs:
            p.start()
        barrier.wait()
        t = time.perf_counter()
        for p in procs:
            p.join()
        many = time.perf_counter() - t
        total = args.writers * args.appends
        took, count, ok, _ = _verify(url)
        print(f"[{backend}] {args.writers} writers racing: {total} appends in {many:.2f} s = {total / many:,.0f}/s; "
              f"chain {'intact' if ok else 'BROKEN'} with {count} events")

        small = min(10_000, args.events)
        _bulk_chain(url, small - count if small > count else 0)
        s_took, s_count, s_ok, s_rss = verify_fresh_process(url)
        _bulk_chain(url, args.events - s_count if args.events > s_count else 0)
        b_took, b_count, b_ok, b_rss = verify_fresh_process(url)
        for n, took, ok, rss in ((s_count, s_took, s_ok, s_rss), (b_count, b_took, b_ok, b_rss)):
            print(f"[{backend}] verify {n:,} events: {took:.2f} s = {n / took:,.0f} events/s, "
                  f"peak RSS {rss:.0f} MB, {'intact' if ok else 'BROKEN'}")
    finally:
        if schema:
            with make_engine(args.database_url).begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        tmp.cleanup()


if __name__ == "__main__":
    main()
