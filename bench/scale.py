#!/usr/bin/env python3
"""Checks per second of `TRACKER_EXECUTOR=celery` with 1 and 2 `tracker worker`s, and the CPU per check.

The set-up of tests/e2e/test_celery_cluster.py: PostgreSQL (TRACKER_TEST_DATABASE_URL), Redis
(TRACKER_TEST_BROKER_URL, default redis://127.0.0.1:6379), policy sites on 127.0.0.2 … 127.0.0.9,
`tracker run` sending every source at once (never checked, TRACKER_SCHEDULE_SPREAD=0) and N workers.
For each N a fresh schema is crawled once; the wall time runs from `tracker run`'s start to the
last check recorded, and the CPU is every process's (scheduler, workers, their crawl subprocesses;
the bench's own sites are not counted), divided by the checks.

Run:  .venv/bin/python bench/scale.py [--hosts 8] [--per-host 50] [--concurrency 2]
Prints one line per worker count and the database writes per check (rows in the tables a check
writes, divided by the checks).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
import yaml  # noqa: E402

from tests.conftest import _pg_schema_url, tracker_env  # noqa: E402
from tests.support.cluster import serve_counting_site, sources_for, start, stop  # noqa: E402
from tracker.store.db import make_engine, upgrade  # noqa: E402

WRITTEN = ("check_state", "snapshot", "blob", "version", "change", "crawl_task", "job_run")


def run_once(*, base_url: str, broker: str, workers: int, hosts: int, per_host: int, concurrency: int) -> None:
    """One crawl of every source with `workers` workers; prints checks/s and CPU per check."""
    for url in _pg_schema_url(base_url):
        upgrade(url)
        engine = make_engine(url)
        with ExitStack() as stack, TemporaryDirectory() as tmp:
            sites = [stack.enter_context(serve_counting_site(f"127.0.0.{2 + i}", latency=0.0))[0]
                     for i in range(hosts)]
            sources = sources_for(sites, per_host, schedule="6h")  # one due time per source
            Path(tmp, "sources.yaml").write_text(yaml.safe_dump({"sources": sources}))
            env = tracker_env(url, TRACKER_EXECUTOR="celery", TRACKER_BROKER_URL=broker,
                              TRACKER_SOURCES_FILE=str(Path(tmp, "sources.yaml")), TRACKER_SCHEDULE_SPREAD="0",
                              TRACKER_SERVICE_POLL_INTERVAL="1", TRACKER_TASK_BATCH="25",
                              TRACKER_OBEY_ROBOTS="false")
            before = os.times()
            started = time.monotonic()
            procs = [start(["worker", "--name", f"w{i}", "--concurrency", str(concurrency)], env,
                           Path(tmp, f"w{i}.log")) for i in range(workers)]
            procs.append(start(["run"], env, Path(tmp, "run.log")))
            while _count(engine, "select count(*) from check_state where checks >= 1") < len(sources):
                time.sleep(0.2)
            wall = time.monotonic() - started
            for proc in procs:
                stop(proc)
            after = os.times()
            cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
            writes = sum(_count(engine, f"select count(*) from {t}") for t in WRITTEN)
            checks = _count(engine, "select sum(checks) from check_state")
        engine.dispose()
        n = checks
        print(f"workers={workers} concurrency={concurrency} sources={len(sources)} checks={n} hosts={hosts}: "
              f"{len(sources) / wall:.1f} checks/s "
              f"({wall:.1f}s wall, start-up included); CPU {cpu / n * 1000:.0f} ms per check; "
              f"{writes / n:.1f} rows written per check", flush=True)


def _count(engine: sa.engine.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=8)
    ap.add_argument("--per-host", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()
    base = os.environ.get("TRACKER_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    broker = os.environ.get("TRACKER_TEST_BROKER_URL", "redis://127.0.0.1:6379").rstrip("/") + "/14"
    print(f"{os.cpu_count()} CPUs; PostgreSQL {base.split('@')[-1]}; broker {broker}", flush=True)
    for workers in (1, 2):
        run_once(base_url=base, broker=broker, workers=workers, hosts=args.hosts, per_host=args.per_host,
                 concurrency=args.concurrency)


if __name__ == "__main__":
    main()
