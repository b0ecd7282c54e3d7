#!/usr/bin/env python3
"""Export 1,000,000 audit events (plus changes and impacts) in every format: time and peak RSS.

Builds a temporary SQLite database quickly: the events are bulk-inserted with their chain hashes
precomputed by tracker.audit.trail's own functions (so the chain verifies), a day's worth spread over a
30-day period. Each format is then exported in a fresh process (`run_export`, the code behind
`tracker export`), so its peak RSS is its own; a smaller run next to the big one shows memory does
not grow with the number of rows.

Run:  .venv/bin/python bench/export.py [--events 1000000] [--small 100000] [--formats csv,jsonl,xlsx]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 30


def build(url: str, events: int, changes: int = 2000) -> float:
    """Fill a migrated database: sources, SOPs, changes, impacts and `events` chained audit events."""
    import sqlalchemy as sa

    from tracker.audit.trail import GENESIS, canonical
    from tracker.store.db import make_engine, upgrade
    from tracker.store.models import AuditEvent, Change, Impact, Sop, Source, Team, Version

    t0 = time.perf_counter()
    upgrade(url)
    engine = make_engine(url)
    step = timedelta(seconds=DAYS * 86400 / max(events, 1))
    with engine.begin() as conn:
        conn.execute(sa.insert(Source.__table__), [  # type: ignore[attr-defined]
            {"id": f"src-{i}", "name": f"Source {i}", "url": f"https://s{i}.example/policy", "kind": "html",
             "select": [], "remove": [], "tags": [], "options": {}, "enabled": True,
             "created_at": START, "updated_at": START} for i in range(10)])
        conn.execute(sa.insert(Team.__table__), [{"id": "ts", "name": "Trust & Safety", "members": [],  # type: ignore[attr-defined]
                                                  "enabled": True}])
        conn.execute(sa.insert(Sop.__table__), [  # type: ignore[attr-defined]
            {"id": f"sop-{i}", "title": f"SOP {i}", "owner": "pm@example.com", "team_id": "ts", "watches": [],
             "enabled": True, "created_at": START, "updated_at": START} for i in range(20)])
        conn.execute(sa.insert(Version.__table__), [  # type: ignore[attr-defined]
            {"id": i + 1, "source_id": f"src-{i % 10}", "created_at": START, "text_hash": f"{i:064x}",
             "blocks": [], "block_count": 0, "rules": {}, "rules_hash": "0" * 64} for i in range(changes + 10)])
        conn.execute(sa.insert(Change.__table__), [  # type: ignore[attr-defined]
            {"id": i + 1, "source_id": f"src-{i % 10}", "from_version_id": i + 1, "to_version_id": i + 11,
             "detected_at": START + timedelta(days=DAYS) * i / changes, "technical": False,
             "sections": ["Policy > Enforcement"], "added": 1, "removed": 0, "modified": 2, "diff": {}}
            for i in range(changes)])
        conn.execute(sa.insert(Impact.__table__), [  # type: ignore[attr-defined]
            {"id": i + 1, "change_id": i // 2 + 1, "sop_id": f"sop-{i % 20}", "source_id": f"src-{(i // 2) % 10}",
             "status": ("open", "needs_update", "in_progress", "updated", "dismissed")[i % 5],
             "reasons": [{"watch": 0, "sections": ["Policy > Enforcement"]}], "assignee": "pm@example.com",
             "due_date": date(2026, 1, 20), "created_at": START + timedelta(days=DAYS) * (i // 2) / changes,
             "updated_at": START + timedelta(days=DAYS), "resolved_at": None, "resolved_by": None,
             "decision_note": None} for i in range(changes * 2)])
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    prev, batch = GENESIS, []
    with engine.begin() as conn:
        for seq in range(1, events + 1):
            at = START + step * (seq - 1)
            impact = seq % (changes * 2) + 1
            before = {"status": "open"}
            after = {"status": "needs_update", "note": f"event {seq}"}
            data = canonical(seq=seq, at=at, actor="pm@example.com", action="impact.status", entity_type="impact",
                             entity_id=str(impact), before=before, after=after, prev_hash=prev)
            digest = hashlib.sha256(prev.encode() + data).hexdigest()
            batch.append({"seq": seq, "at": at, "actor": "pm@example.com", "action": "impact.status",
                          "entity_type": "impact", "entity_id": str(impact), "before": before, "after": after,
                          "prev_hash": prev, "hash": digest})
            prev = digest
            if len(batch) == 20_000:
                conn.execute(sa.insert(table), batch)
                batch = []
        if batch:
            conn.execute(sa.insert(table), batch)
    engine.dispose()
    return time.perf_counter() - t0


def one(url: str, fmt: str, out: Path) -> None:
    """Child process: one export, then its figures as JSON on stdout."""
    from sqlmodel import Session

    from tracker.export.run import ExportQuery, run_export
    from tracker.store.db import make_engine

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # after the imports
    engine = make_engine(url)
    query = ExportQuery(date_from=START.date(), date_to=(START + timedelta(days=DAYS)).date(), format=fmt)
    t0 = time.perf_counter()
    with Session(engine) as s:
        result = run_export(session=s, query=query, output=out, base_url="https://tracker.example.com")
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = sum(f["bytes"] for f in result.manifest["files"])
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak / 1024, "base_rss_mb": base_rss / 1024,
                      "rows": result.manifest["row_counts"], "bytes": size,
                      "chain_verified": result.manifest["audit_chain"]["verified"]}))


def run(events: int, formats: list[str], work: Path) -> list[dict[str, object]]:
    """Build a database with `events` events and export it in every format, each in its own process."""
    url = f"sqlite:///{work / f'bench-{events}.db'}"
    # Built in a child process too: Linux carries a parent's peak RSS into its children.
    proc = subprocess.run([sys.executable, __file__, "--build", str(events), "--url", url],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        raise SystemExit("building the database failed")
    built = float(proc.stdout.strip().splitlines()[-1])
    print(f"\n{events:,} audit events: database built in {built:.1f}s", flush=True)
    print(f"  {'format':<6} {'time':>8} {'rows/s':>9} {'peak RSS':>9} {'(imports)':>10} {'size':>9}", flush=True)
    figures = []
    for fmt in formats:
        out = work / f"export-{events}-{fmt}" / ("export.xlsx" if fmt == "xlsx" else "data")
        out.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([sys.executable, __file__, "--one", fmt, "--url", url, "--out", str(out)],
                              capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(f"the {fmt} export failed")
        f = json.loads(proc.stdout.strip().splitlines()[-1])
        rows = sum(f["rows"].values())
        print(f"  {fmt:<6} {f['seconds']:>7.1f}s {rows / f['seconds']:>9,.0f} {f['peak_rss_mb']:>7.0f}MB "
              f"{f['base_rss_mb']:>8.0f}MB {f['bytes'] / 1e6:>7.0f}MB", flush=True)
        figures.append({"events": events, "format": fmt, **f})
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=100_000, help="a smaller run to compare memory with (0: none)")
    ap.add_argument("--formats", default="csv,jsonl,xlsx")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--build", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        one(args.url, args.one, Path(args.out))
        return
    if args.build is not None:
        print(build(args.url, args.build))
        return
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    print("export benchmark: SQLite, each format exported in its own process "
          "(chain verification of every event included in the time)")
    with tempfile.TemporaryDirectory(prefix="tracker-export-bench-") as tmp:
        figures = []
        for n in ([args.small] if args.small else []) + [args.events]:
            figures += run(n, formats, Path(tmp))
    if args.small:
        print("\npeak RSS, small run -> big run (flat memory: about the same):")
        for fmt in formats:
            small = next(f for f in figures if f["format"] == fmt and f["events"] == args.small)
            big = next(f for f in figures if f["format"] == fmt and f["events"] == args.events)
            print(f"  {fmt:<6} {small['peak_rss_mb']:.0f}MB -> {big['peak_rss_mb']:.0f}MB "
                  f"for {args.events / args.small:.0f}x the events")


if __name__ == "__main__":
    main()
