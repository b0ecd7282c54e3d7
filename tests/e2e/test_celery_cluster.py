"""`TRACKER_EXECUTOR=celery` end to end: PostgreSQL, Redis, `tracker run` and two `tracker worker`s over
400 sources on 8 local hosts; one worker is killed with SIGKILL in the middle of a batch.

Afterwards every source has exactly one check per due time and one change for its one page update,
no host ever had more requests in flight than its per-host limit, the killed worker's batch was
finished by the other worker, and `tracker status` names the lost worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.conftest import _pg_schema_url, _postgres_url, tracker_env
from tests.support.cluster import HostStats, broker_url, serve_counting_site, sources_for, start, stop
from tracker.store.db import make_engine, upgrade

pytestmark = [pytest.mark.celery, pytest.mark.slow, pytest.mark.postgres]

HOSTS = [f"127.0.0.{i}" for i in range(2, 10)]
PER_HOST = 50
PER_HOST_LIMIT = 2
INTERVAL = 40  # seconds: the sources' schedule


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A migrated PostgreSQL schema (the workers and the scheduler share it)."""
    for url in _pg_schema_url(_postgres_url()):
        upgrade(url)
        yield url


def wait_for(what: str, check: Callable[[], bool], timeout: float, procs: dict[str, subprocess.Popen[bytes]],
             logs: Path) -> None:
    """Poll until `check()` holds; on timeout fail with the processes' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            print(f"{time.strftime('%H:%M:%S')} {what}", flush=True)
            return
        time.sleep(0.5)
    tails = {p.name: p.read_text(errors="replace")[-3000:] for p in sorted(logs.glob("*.log"))}
    states = {name: proc.poll() for name, proc in procs.items()}
    pytest.fail(f"timed out waiting for {what}; exit codes {states}; logs {tails}")  # pragma: no cover


def test_two_workers_one_killed_every_source_checked_once_per_due_time(pg_url: str, tmp_path: Path) -> None:
    broker = broker_url()
    engine = make_engine(pg_url)

    def q(sql: str, **params: object) -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())

    with ExitStack() as stack:
        served = [stack.enter_context(serve_counting_site(h, latency=0.05)) for h in HOSTS]
        sites, stats = [s for s, _ in served], [st for _, st in served]
        sources = sources_for(sites, PER_HOST)
        (tmp_path / "sources.yaml").write_text(yaml.safe_dump({"sources": sources}))
        env = tracker_env(pg_url, TRACKER_EXECUTOR="celery", TRACKER_BROKER_URL=broker,
                          TRACKER_SOURCES_FILE=str(tmp_path / "sources.yaml"), TRACKER_SCHEDULE_SPREAD="0",
                          TRACKER_SERVICE_POLL_INTERVAL="1", TRACKER_WORKER_HEARTBEAT="1",
                          TRACKER_HOST_LEASE_SECONDS="4", TRACKER_TASK_BATCH="25",
                          TRACKER_BROKER_VISIBILITY_TIMEOUT="100", TRACKER_CRAWL_TIMEOUT="90",
                          # One crawl never has more than PER_HOST_LIMIT requests in flight (overall, so
                          # per host too): a higher peak at a site means two crawls on one host at once.
                          TRACKER_CONCURRENCY=str(PER_HOST_LIMIT),
                          TRACKER_CONCURRENCY_PER_DOMAIN=str(PER_HOST_LIMIT), TRACKER_OBEY_ROBOTS="false",
                          TRACKER_DOWNLOAD_TIMEOUT="10", TRACKER_RECORD_BATCH="1")
        procs: dict[str, subprocess.Popen[bytes]] = {}
        stack.callback(lambda: [stop(p, 30) for p in procs.values()])
        for name in ("worker-a", "worker-b"):
            procs[name] = start(["worker", "--name", name, "--concurrency", "2"], env, tmp_path / f"{name}.log")
        procs["run"] = start(["run"], env, tmp_path / "run1.log")

        def checks_at_least(n: int) -> bool:
            return q("select count(*) from check_state where checks >= :n", n=n)[0][0] == len(sources)

        def all_sent() -> bool:
            return q("select count(*) from crawl_task where state <> 'unsent'")[0][0] > 0 and sum(
                len(r[0]) for r in q("select sources from crawl_task")) >= len(sources)

        # Round 1 (every source due at once: never checked): the scheduler sends it, then stops, so
        # nothing else falls due while the workers crawl.
        wait_for("round 1 sent", all_sent, 60, procs, tmp_path)
        assert stop(procs.pop("run")) == 0
        wait_for("round 1 checked", lambda: checks_at_least(1), 240, procs, tmp_path)
        assert q("select max(checks) from check_state")[0][0] == 1
        # One page update everywhere; round 2 is the due time that passed while the scheduler was down.
        for site in sites:
            for doc in ("reddit-community-guidelines", "x-privacy-policy"):
                site.next(doc)
        # Start the scheduler just after a due time has passed, so it has a whole interval to send
        # round 2 (and is stopped) before the next one.
        next_run = max(r[0] for r in q("select next_run_time from apscheduler_jobs where id like 'source:%'"))
        since_boundary = max(0.0, time.time() - next_run) % INTERVAL
        wait = next_run - time.time() if time.time() < next_run else (
            0.0 if since_boundary < INTERVAL / 4 else INTERVAL - since_boundary)
        time.sleep(wait + 0.5)
        round2_start = q("select coalesce(max(created_at), now()) from crawl_task")[0][0]
        procs["run"] = start(["run"], env, tmp_path / "run2.log")

        def killable() -> bool:
            # worker-a is running a batch of which some, not all, sources are already checked again.
            for sources_json, in q("select sources from crawl_task where state = 'running' and worker = 'worker-a' "
                                   "and created_at > :t", t=round2_start):
                done = q("select count(*) from check_state where checks >= 2 and source_id = any(:ids)",
                         ids=list(sources_json))[0][0]
                if 0 < done < len(sources_json):
                    return True
            return False

        wait_for("worker-a mid-batch in round 2", killable, 90, procs, tmp_path)
        killed_task = q("select id from crawl_task where state = 'running' and worker = 'worker-a' "
                        "and created_at > :t limit 1", t=round2_start)[0][0]
        os.kill(procs["worker-a"].pid, signal.SIGKILL)
        procs.pop("worker-a").wait()
        wait_for("round 2 sent", lambda: sum(len(r[0]) for r in q(
            "select sources from crawl_task where created_at > :t", t=round2_start)) >= len(sources),
            60, procs, tmp_path)
        assert stop(procs.pop("run")) == 0
        wait_for("round 2 checked", lambda: checks_at_least(2), 240, procs, tmp_path)
        wait_for("every batch done", lambda: q("select count(*) from crawl_task where state <> 'done'")[0][0] == 0,
                 60, procs, tmp_path)

        # Every source: one check per due time, two versions, one change for its one page update.
        per_source = q("select s.id, c.checks, (select count(*) from version v where v.source_id = s.id), "
                       "(select count(*) from change g where g.source_id = s.id) "
                       "from source s join check_state c on c.source_id = s.id")
        assert len(per_source) == len(sources)
        wrong = [row for row in per_source if tuple(row[1:]) != (2, 2, 1)]
        assert wrong == []
        assert q("select worker, state from crawl_task where id = :i", i=killed_task)[0] == ("worker-b", "done")
        peaks = {site.base: st.peak for site, st in zip(sites, stats, strict=True)}
        assert all(1 <= peak <= PER_HOST_LIMIT for peak in peaks.values()), peaks
        assert_requests_counted(stats)
        wait_for("worker-a shown lost", lambda: "worker-a LOST" in _status(env), 30, procs, tmp_path)
        status = _status(env)
        assert "worker-b running" in status, status
    engine.dispose()


def assert_requests_counted(stats: list[HostStats]) -> None:
    """Each site was asked for its pages at least twice (two rounds), which makes the peaks meaningful."""
    assert all(st.requests >= 2 * PER_HOST for st in stats), [st.requests for st in stats]


def _status(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "tracker", "status"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout
