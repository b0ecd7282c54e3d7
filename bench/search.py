#!/usr/bin/env python3
"""Search latency over 1,000 versions of corpus documents, and the time to build the SLA page for
10,000 impacts, on SQLite and (when TRACKER_TEST_DATABASE_URL is set) PostgreSQL.

The versions are recorded the way the crawl records them (tracker.check.record.record_check, which
keeps the search index in step): the corpus's documents, version after version, as several copies
of each source until --versions versions are stored. Impacts are then inserted in bulk on those
changes (one per change and SOP) with creation, decision and due times spread over 90 days.

Run:  .venv/bin/python bench/search.py [--versions 1000] [--impacts 10000]
      TRACKER_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test .venv/bin/python bench/search.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session, col, select  # noqa: E402

from tests.support.policy_site import Document, page  # noqa: E402
from tracker.check.record import Fetch, record_check  # noqa: E402
from tracker.impacts.metrics import compute  # noqa: E402
from tracker.store.db import make_engine, session_scope, upgrade  # noqa: E402
from tracker.store.models import Change, Impact, Sop, Source, Team  # noqa: E402
from tracker.store.search import search  # noqa: E402
from tracker.web.metrics import panels  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "pga"
QUERIES = ['"community guidelines"', "privacy data", '"personal information"', "harassment", "account termination",
           "advertising partners", '"terms of service" arbitration', "nothingmatcheszz"]


def fill(url: str, versions: int) -> int:
    """Record `versions` versions of the corpus documents; returns the changes recorded."""
    docs = [Document(d) for d in sorted(CORPUS.iterdir()) if (d / "index.json").exists()]
    engine = make_engine(url)
    stored = copy = 0
    start = datetime(2026, 1, 1, tzinfo=UTC)
    while stored < versions:
        for doc in docs:
            src_id = f"{doc.slug}-{copy}"
            with session_scope(engine) as s:
                src = Source(id=src_id, name=src_id, url=f"https://example.com/{src_id}", select=["article.policy"])
                s.add(src)
                s.flush()
                for v in range(len(doc.versions)):
                    if stored >= versions:
                        break
                    fetch = Fetch(source_id=src_id, url=src.url, status=200, body=page(doc, v).encode(),
                                  headers={"Content-Type": "text/html; charset=utf-8"},
                                  fetched_at=start + timedelta(hours=stored))
                    if record_check(session=s, source=src, fetch=fetch).version_id is not None:
                        stored += 1
        copy += 1
    with Session(engine) as s:
        n = len(s.exec(select(Change.id)).all())
    engine.dispose()
    return n


def add_impacts(url: str, count: int) -> None:
    """Bulk-insert `count` impacts: one per change and SOP, over as many SOPs as that needs."""
    engine = make_engine(url)
    with session_scope(engine) as s:
        changes = list(s.exec(select(Change.id, Change.source_id, Change.detected_at)).all())
        teams = ["support", "trust-safety", "legal"]
        for t in teams:
            s.add(Team(id=t, name=t.title()))
        s.flush()
        sops = -(-count // max(1, len(changes)))
        for n in range(sops):
            s.add(Sop(id=f"SOP-{n:03d}", title=f"SOP {n}", owner="o@example.com", team_id=teams[n % 3], watches=[]))
        s.flush()
        rows = []
        now = datetime.now(UTC)
        for i in range(count):
            cid, src, _ = changes[i % len(changes)]
            created = now - timedelta(days=90) + timedelta(minutes=13 * i % (90 * 24 * 60))
            decided = i % 4 != 0
            rows.append({"change_id": cid, "sop_id": f"SOP-{i // len(changes):03d}", "source_id": src,
                         "status": "updated" if decided else "open", "reasons": [], "created_at": created,
                         "updated_at": created, "due_date": (created + timedelta(days=5)).date(),
                         "resolved_at": created + timedelta(hours=1 + i % 200) if decided else None})
        s.execute(sa.insert(Impact), rows)
    engine.dispose()


def bench(url: str, label: str, versions: int, impacts: int) -> None:
    upgrade(url)
    t0 = time.perf_counter()
    changes = fill(url, versions)
    t1 = time.perf_counter()
    print(f"[{label}] recorded {versions} versions ({changes} changes) with the index in step in {t1 - t0:.1f} s")
    engine = make_engine(url)
    with Session(engine) as s:
        for q in QUERIES:
            times, hits = [], 0
            for _ in range(5):
                a = time.perf_counter()
                hits = len(search(s, q, limit=50))
                times.append((time.perf_counter() - a) * 1000)
            print(f"[{label}] search {q!r:38} {hits:3} hits  median {statistics.median(times):7.1f} ms  "
                  f"max {max(times):7.1f} ms")
    add_impacts(url, impacts)
    with Session(engine) as s:
        n = len(s.exec(select(col(Impact.id))).all())
        times = []
        for _ in range(3):
            a = time.perf_counter()
            now = datetime.now(UTC)
            panels(compute(session=s, since=now - timedelta(days=90), until=now))
            times.append(time.perf_counter() - a)
    print(f"[{label}] metrics page (figures, 4 charts, 4 tables) for {n} impacts: "
          f"median {statistics.median(times):.2f} s")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--impacts", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench(f"sqlite:///{tmp}/bench.db", "sqlite", args.versions, args.impacts)
    base = os.environ.get("TRACKER_TEST_DATABASE_URL")
    if not base:
        print("(set TRACKER_TEST_DATABASE_URL to a PostgreSQL URL to run it there too)")
        return
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in base else "?"
        bench(f"{base}{sep}options=-csearch_path%3D{schema}", "postgresql", args.versions, args.impacts)
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
