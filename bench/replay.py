#!/usr/bin/env python3
"""Replay every version of real policy documents through policy_site with the real `tracker crawl`.

For each version: put the site at it, crawl (a new version and one change when its text differs),
crawl again (conditional GET: 304, not modified), clear the stored validators and crawl again
(a full fetch and re-extraction of the same version: unchanged). Counts are checked against an
independent extraction of the rendered pages; the database must not grow on re-fetches.

"text differs": the blocks of a version, extracted independently from the rendered page, differ
in words from the previous version's (a change expected); "headings only": the same words under
another heading structure (a new version expected, no change).

Run:  .venv/bin/python bench/replay.py [--database-url postgresql+psycopg://…] [--docs slug …]
Exit: 0 when every count agrees, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import CORPUS, Site, machine, policy_site, run_tracker, tracker_env  # noqa: E402
from tracker.check.blocks import Block, Rules, blocks_hash  # noqa: E402
from tracker.check.diff import diff_blocks  # noqa: E402
from tracker.check.extract import extract  # noqa: E402
from tracker.store.db import make_engine  # noqa: E402

DOCS = ("tiktok-privacy-policy", "youtube-community-guidelines")
RULES = Rules(select=("article.policy",))
HISTORY_TABLES = ("snapshot", "blob", "version", "change")


@dataclass
class DocResult:
    """What was expected and what the tracker recorded for one document."""

    slug: str
    versions: int = 0
    differing: list[int] = field(default_factory=list)  # versions whose text differs from the previous
    restructured: list[int] = field(default_factory=list)  # same words, other heading structure: a version, no change
    results: list[tuple[str, str, str]] = field(default_factory=list)  # per version: crawl, 304 re-fetch, full re-fetch
    refetch_changes: int = 0
    problems: list[str] = field(default_factory=list)


def expected_texts(site: Site, slug: str, versions: int) -> tuple[list[int], list[int]]:
    """From the rendered pages: versions whose text differs from the previous one (a change each),
    and versions whose blocks differ only in heading structure (a new version, no change)."""
    differing: list[int] = []
    restructured: list[int] = []
    previous: list[Block] | None = None
    for v in range(versions):
        body, ctype = site.get(f"/docs/{slug}?v={v}")
        blocks = extract(body, RULES, content_type=ctype).blocks
        if previous is not None and blocks_hash(blocks) != blocks_hash(previous):
            (differing if diff_blocks(previous, blocks) else restructured).append(v)
        previous = blocks
    return differing, restructured


class Db:
    """Reads the benchmark database: counts, check results and its size on disk."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)

    def scalar(self, sql: str, **params: object) -> int:
        with self.engine.connect() as c:
            return int(c.execute(sa.text(sql), params).scalar() or 0)

    def changes(self, slug: str) -> int:
        return self.scalar('SELECT count(*) FROM "change" WHERE source_id = :s', s=slug)

    def last_results(self) -> dict[str, str]:
        with self.engine.connect() as c:
            rows = c.execute(sa.text("SELECT source_id, last_result FROM check_state")).all()
        return {str(sid): str(result) for sid, result in rows}

    def clear_validators(self) -> None:
        with self.engine.begin() as c:
            c.execute(sa.text("UPDATE check_state SET etag = NULL, last_modified = NULL"))

    def rows(self, table: str, slug: str | None = None) -> int:
        if slug is None or table == "blob":
            return self.scalar(f'SELECT count(*) FROM "{table}"')
        return self.scalar(f'SELECT count(*) FROM "{table}" WHERE source_id = :s', s=slug)

    def size(self) -> int:
        """Bytes on disk: the SQLite file (after a WAL checkpoint), or PostgreSQL's history tables."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as c:
                c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            path = Path(self.engine.url.database or "")
            wal = path.with_name(path.name + "-wal")
            return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        # PostgreSQL keeps dead row versions of updated check states until VACUUM; what must not
        # grow is the history: snapshots, blobs, versions and changes (with indexes and TOAST).
        return sum(self.scalar(f"SELECT pg_total_relation_size('\"{t}\"')") for t in HISTORY_TABLES)

    def dispose(self) -> None:
        self.engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--database-url", help="use this (empty, e.g. PostgreSQL) database instead of a temp SQLite file")
    ap.add_argument("--docs", nargs="+", default=list(DOCS), help="documents of the corpus to replay")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--limit", type=int, default=0, help="replay only the first N versions (quick runs)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tracker-replay-"))
    url = args.database_url or f"sqlite:///{tmp / 'replay.db'}"
    env = tracker_env(url, TRACKER_DOWNLOAD_DELAY="0", TRACKER_RETRY_TIMES="0", TRACKER_CRAWL_LOG_LEVEL="ERROR")
    started = time.perf_counter()
    crawl_seconds: list[float] = []
    print(f"replay on {machine()}")
    print(f"database: {url}")
    with policy_site(corpus=args.corpus) as site:
        state = site.control("state")
        docs: dict[str, DocResult] = {}
        for slug in args.docs:
            if slug not in state:
                raise SystemExit(f"document {slug!r} is not in {args.corpus} (have: {', '.join(state)})")
            n = state[slug]["versions"]
            docs[slug] = DocResult(slug, versions=min(n, args.limit) if args.limit else n)
        for d in docs.values():
            d.differing, d.restructured = expected_texts(site, d.slug, d.versions)

        run_tracker(env, "db", "upgrade")
        sources = [{"id": s, "name": s.replace("-", " ").title(), "url": site.url(s), "kind": "html",
                    "select": list(RULES.select), "schedule": "6h"} for s in docs]
        (tmp / "sources.yaml").write_text(yaml.safe_dump({"sources": sources}, sort_keys=False))
        run_tracker(env, "sources", "sync", str(tmp / "sources.yaml"))
        db = Db(url)
        sizes: list[tuple[int, int, int]] = []  # (version, before re-fetches, after re-fetches)

        def crawl(ids: list[str]) -> dict[str, str]:
            t = time.perf_counter()
            proc = run_tracker(env, "crawl", "--quiet", *ids, check=False)
            crawl_seconds.append(time.perf_counter() - t)
            if proc.returncode != 0:
                raise SystemExit(f"`tracker crawl` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
            results = db.last_results()
            return {i: results.get(i, "?") for i in ids}

        for v in range(max(d.versions for d in docs.values())):
            active = [d for d in docs.values() if v < d.versions]
            ids = [d.slug for d in active]
            for d in active:
                site.control("set", doc=d.slug, v=v)
            first = crawl(ids)
            before_changes = {d.slug: db.changes(d.slug) for d in active}
            size_before = db.size()
            refetch = crawl(ids)  # the stored validators come back as a 304
            db.clear_validators()
            full = crawl(ids)  # a full fetch of a freshly rendered page, re-extracted
            size_after = db.size()
            sizes.append((v, size_before, size_after))
            for d in active:
                d.results.append((first[d.slug], refetch[d.slug], full[d.slug]))
                d.refetch_changes += db.changes(d.slug) - before_changes[d.slug]
                want = "new" if v == 0 else "changed" if v in d.differing else "unchanged"
                got = (first[d.slug], refetch[d.slug], full[d.slug])
                if got != (want, "not_modified", "unchanged"):
                    d.problems.append(f"v{v}: crawl/304 re-fetch/full re-fetch gave {got}, "
                                      f"expected ({want}, not_modified, unchanged)")
            print(f"  v{v:>3}: " + "  ".join(f"{d.slug}={'/'.join(r[:3] for r in d.results[-1])}" for d in active)
                  + f"  db {size_before:,} -> {size_after:,} B", flush=True)

        ok = True
        print()
        header = (f"{'document':<30} {'versions':>8} {'text differs':>12} {'changes':>8} {'headings only':>13} "
                  f"{'re-fetches':>10} {'changes on re-fetch':>19} {'snapshot':>8} {'version':>8} {'change':>7}")
        print(header)
        print("-" * len(header))
        for d in docs.values():
            recorded = db.changes(d.slug)
            snaps, vers = db.rows("snapshot", d.slug), db.rows("version", d.slug)
            if recorded != len(d.differing):
                d.problems.append(f"{recorded} changes recorded, {len(d.differing)} versions differ in text")
            want_versions = 1 + len(d.differing) + len(d.restructured)
            if vers != want_versions or snaps != vers:
                d.problems.append(f"{vers} versions and {snaps} snapshots stored, expected {want_versions} each")
            if d.refetch_changes:
                d.problems.append(f"{d.refetch_changes} changes recorded on re-fetches of the same version")
            print(f"{d.slug:<30} {d.versions:>8} {len(d.differing):>12} {recorded:>8} {len(d.restructured):>13} "
                  f"{2 * d.versions:>10} {d.refetch_changes:>19} {snaps:>8} {vers:>8} {recorded:>7}")
            ok = ok and not d.problems
        total_versions = sum(1 + len(d.differing) + len(d.restructured) for d in docs.values())
        blobs = db.rows("blob")
        print(f"rows: snapshot {db.rows('snapshot')}, blob {blobs}, version {db.rows('version')}, "
              f"change {db.rows('change')}")
        if blobs != total_versions:
            ok = False
            print(f"PROBLEM: {blobs} blobs stored for {total_versions} versions (one raw page per version expected)")
        grew = [(v, b, a) for v, b, a in sizes if a > b]
        sqlite = db.engine.dialect.name == "sqlite"
        what = "database file" if sqlite else "history tables (snapshot, blob, version, change)"
        print(f"{what}: {sizes[0][1]:,} B after the first crawl, {sizes[-1][2]:,} B at the end; "
              f"re-fetch rounds that grew it: {len(grew)} of {len(sizes)}"
              + (f" (+{sum(a - b for _, b, a in grew):,} B)" if grew else " (0 B)"))
        if grew:
            ok = False
            for v, b, a in grew[:10]:
                print(f"  PROBLEM: re-fetches of v{v} grew it from {b:,} to {a:,} B")
        for d in docs.values():
            for p in d.problems:
                print(f"PROBLEM {d.slug}: {p}")
        db.dispose()
    n = len(crawl_seconds)
    print(f"{n} crawls (one `tracker crawl` process each) in {time.perf_counter() - started:.0f}s, "
          f"median {sorted(crawl_seconds)[n // 2]:.2f}s per crawl")
    print("RESULT:", "all counts agree" if ok else "counts DISAGREE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
