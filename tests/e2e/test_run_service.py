"""The service for real: crawl subprocesses against local servers, `tracker run` as a process, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from spiders import KINDS
from tests.conftest import PolicySite, run_tracker, tracker_env, write_sources
from tests.notify_support import receiver
from tracker.config import Settings
from tracker.declare.sources import SourceSpec, sync_sources
from tracker.service.jobs import Service
from tracker.service.scheduler import next_source_runs
from tracker.store.db import make_engine, session_scope, utcnow
from tracker.store.models import CheckState, Delivery, JobRun, Sop, Team

REDDIT = "reddit-community-guidelines"
pytestmark = pytest.mark.slow


@pytest.fixture
def hanging_server() -> Iterator[tuple[str, list[str]]]:
    """A server that accepts requests and never answers them; yields its base URL and the paths asked for."""
    release = threading.Event()
    seen: list[str] = []

    class Hang(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            release.wait(120)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hang)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll until check() is truthy (a real process is doing real work); fail with `what` after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def scalar(db_url: str, sql: str, **params: Any) -> Any:
    eng = make_engine(db_url)
    try:
        with eng.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    finally:
        eng.dispose()


def test_a_hanging_crawl_is_killed_recorded_and_the_service_goes_on(
        db_url: str, engine: Engine, hanging_server: tuple[str, list[str]], policy_site: PolicySite) -> None:
    base, seen = hanging_server
    with session_scope(engine) as s:
        sync_sources(session=s, specs=[
            SourceSpec(id="hangs", name="Hangs", url=f"{base}/policy", schedule="1h"),
            SourceSpec(id="reddit", name="Reddit", url=policy_site.url(REDDIT), select=["article.policy"]),
        ])
    with receiver() as hook:
        with session_scope(engine) as s:
            s.add(Team(id="legal", name="Legal", notify=[f"json://127.0.0.1:{hook.port}/hooks?rto=5&cto=5"]))
            s.flush()
            s.add(Sop(id="SOP-1", title="Hangs SOP", owner="o@example.com", team_id="legal",
                      watches=[{"source": "hangs", "sections": [], "keywords": []}]))
        _killed_crawl_is_recorded_and_alerted(db_url, engine, seen, hook)


def _killed_crawl_is_recorded_and_alerted(db_url: str, engine: Engine, seen: list[str], hook: Any) -> None:
    # Long enough for a crawl process to start on a busy machine and reach the server, short for a test.
    settings = Settings(database_url=db_url, crawl_timeout=15, download_timeout=60, download_delay=0,
                        retry_times=0, shutdown_grace=1, notify_failures_after=1)
    svc = Service(settings=settings)
    svc.start(paused=True)
    try:
        result = svc.run_batch(["hangs"])
        # The killed crawl never sent its alerts; the service sends the failure alert at once.
        assert [b["title"] for b in hook.bodies()] == ["Source failing: Hangs"], hook.bodies()
        with Session(engine) as s:
            assert [(d.kind, d.status) for d in s.exec(select(Delivery)).all()] == [("failure", "sent")]
        assert result.killed == "timeout" and seen, "the crawl was killed before it reached the server"
        with Session(engine) as s:
            state = s.get(CheckState, "hangs")
            assert state is not None and state.last_result == "failed"
            assert state.last_error is not None and "crawl killed after 15s" in state.last_error
            assert state.error_since is not None and state.consecutive_failures == 1
            run = s.exec(select(JobRun).where(JobRun.kind == "crawl")).one()
            assert run.result == "killed" and run.detail["unchecked"] == ["hangs"]
        # The service is still there, and the next batch works.
        assert svc._worker is not None and svc._worker.is_alive()
        svc.settings.crawl_timeout = 120
        assert svc.run_batch(["reddit"]).exit_code == 0
        with Session(engine) as s:
            reddit = s.get(CheckState, "reddit")
            assert reddit is not None and reddit.last_result == "new"
    finally:
        svc.stop("test over")
    assert scalar(db_url, "select count(*) from version where source_id = 'hangs'") == 0


def start_run(db_url: str, tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    """`tracker run` as a real process, logging JSON lines to a file."""
    log = open(tmp_path / f"run-{time.monotonic_ns()}.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "tracker", "run", "--log-format", "json"],
                            env=tracker_env(db_url, TRACKER_SERVICE_POLL_INTERVAL="1", TRACKER_SCHEDULE_SPREAD="1",
                                            **env),
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def stop_run(proc: subprocess.Popen[str], timeout: float = 60) -> list[dict[str, Any]]:
    """SIGTERM the service, check it exits 0, and return its log events."""
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout)
    proc.log.seek(0)  # type: ignore[attr-defined]
    text = proc.log.read()  # type: ignore[attr-defined]
    assert code == 0, text
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def checks(db_url: str, sid: str) -> int:
    return int(scalar(db_url, "select coalesce(max(checks), 0) from check_state where source_id = :s", s=sid) or 0)


SOPS = f"""
sops:
  - id: SOP-TS-1
    title: Enforcement
    owner: ts@example.com
    watches:
      - source: {REDDIT}
        sections: ["*Enforcement"]
"""


def test_tracker_run_checks_on_a_seconds_schedule_and_stops_on_sigterm(
        db_url: str, tmp_path: Path, policy_site: PolicySite) -> None:
    sources = write_sources(tmp_path / "sources.yaml", policy_site, [REDDIT], schedule="2s")
    sops = tmp_path / "sops.yaml"
    sops.write_text(SOPS)
    proc = start_run(db_url, tmp_path, TRACKER_SOURCES_FILE=str(sources), TRACKER_SOPS_FILE=str(sops))
    try:
        wait_for("two scheduled checks of the source", lambda: checks(db_url, REDDIT) >= 2, timeout=90)
        status = run_tracker(db_url, "status", "--json")
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        assert data["scheduler"]["alive"] is True and data["scheduler"]["pid"] == proc.pid
        (reddit,) = data["sources"]
        assert reddit["id"] == REDDIT and reddit["schedule"] == "2s" and reddit["last_result"] in (
            "new", "unchanged", "not_modified") and reddit["next_run"] is not None
        # The source changes while the service runs: the next scheduled check records it.
        policy_site.set(REDDIT, 3)
        wait_for("the change to be recorded",
                 lambda: scalar(db_url, "select count(*) from change where source_id = :s", s=REDDIT) == 1)
        # …and mapped to the SOP the service synced from TRACKER_SOPS_FILE, in the same transaction.
        assert scalar(db_url, "select sop_id from impact") == "SOP-TS-1"
    finally:
        events = stop_run(proc)
    names = [e["event"] for e in events]
    assert names[:2] == ["sync.done", "sync.done"] and "service.started" in names and names[-1] == "service.stopped"
    finished = [e for e in events if e["event"] == "crawl.finished"]
    assert finished and all(e["result"] == "ok" and e["sources"] == [REDDIT] for e in finished)
    assert all({"ts", "level", "logger", "event"} <= set(e) for e in events)
    status = json.loads(run_tracker(db_url, "status", "--json").stdout)
    assert status["scheduler"]["alive"] is False and status["scheduler"]["stop_reason"] == "SIGTERM"
    text = run_tracker(db_url, "status").stdout
    assert "scheduler: NOT running" in text and REDDIT in text


def crawl_child_connected(proc: subprocess.Popen[str], port: int) -> bool:
    """Whether the service's crawl subprocess has a connection open to the site (the fetch is in flight)."""
    try:
        for child in psutil.Process(proc.pid).children(recursive=True):
            conns = getattr(child, "net_connections", None) or child.connections  # psutil < 6 has connections()
            for conn in conns(kind="tcp"):
                if conn.raddr and conn.raddr.port == port:
                    return True
    except psutil.Error:
        return False
    return False


def test_sigterm_during_a_crawl_leaves_no_partial_version_and_the_check_runs_after_restart(
        db_url: str, tmp_path: Path, policy_site: PolicySite) -> None:
    sources = write_sources(tmp_path / "sources.yaml", policy_site, [REDDIT], schedule="1h")
    out = run_tracker(db_url, "sources", "sync", str(sources))
    assert out.returncode == 0, out.stderr
    policy_site.set(REDDIT, 2)
    assert run_tracker(db_url, "crawl").returncode == 0  # the baseline
    # The page moves to its next version, but the site hangs while serving it.
    policy_site.set(REDDIT, 3)
    policy_site.mode(REDDIT, "timeout")
    # A first run stores the hourly job; the source was checked, so it is not due for a while.
    proc = start_run(db_url, tmp_path)
    wait_for("the jobs to be stored", lambda: scalar(db_url, "select count(*) from apscheduler_jobs") == 2)
    stop_run(proc)
    # Its hourly run comes due (as after a long stop); the restarted service starts the check at once.
    force_due(db_url, REDDIT)
    port = int(policy_site.base.rsplit(":", 1)[1])
    proc = start_run(db_url, tmp_path, TRACKER_SHUTDOWN_GRACE="1")
    wait_for("the crawl to be in flight", lambda: crawl_child_connected(proc, port), timeout=60)
    started = time.monotonic()
    events = stop_run(proc)
    assert time.monotonic() - started < 20
    assert [e for e in events if e["event"] == "service.abandoning_crawl"]
    stopped = [e for e in events if e["event"] == "service.stopped"][0]
    assert stopped["rescheduled"] == [REDDIT], json.dumps(events, indent=1)
    # Nothing half-written: still exactly the baseline, no change, no stray snapshot; no error blamed on the source.
    assert scalar(db_url, "select count(*) from version where source_id = :s", s=REDDIT) == 1
    assert scalar(db_url, "select count(*) from change") == 0
    assert scalar(db_url, "select count(*) from snapshot where purpose = 'version'") == 1
    assert scalar(db_url, "select last_result from check_state where source_id = :s", s=REDDIT) == "new"
    assert scalar(db_url, "select result from job_run order by id desc limit 1") == "abandoned"
    eng = make_engine(db_url)
    with Session(eng) as s:
        due = next_source_runs(session=s)[REDDIT]
    eng.dispose()
    assert due <= utcnow() + timedelta(seconds=1)  # due again at once

    # The site recovers; the restarted service runs the abandoned check first thing.
    policy_site.mode(REDDIT, "ok")
    proc = start_run(db_url, tmp_path)
    try:
        wait_for("the change after restart",
                 lambda: scalar(db_url, "select count(*) from change where source_id = :s", s=REDDIT) == 1)
    finally:
        stop_run(proc)
    assert scalar(db_url, "select count(*) from version where source_id = :s", s=REDDIT) == 2


def force_due(db_url: str, sid: str) -> None:
    """Make a stored job due now, through APScheduler's own job store (as a missed run would be)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    eng = make_engine(db_url)
    try:
        scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(engine=eng)})
        scheduler.start(paused=True)
        scheduler.modify_job(f"source:{sid}", next_run_time=utcnow())
        scheduler.remove_jobstore("default", shutdown=False)
        scheduler.shutdown(wait=False)
    finally:
        eng.dispose()


def test_a_crashing_crawl_is_recorded(db_url: str, engine: Engine, tmp_path: Path) -> None:
    with session_scope(engine) as s:
        sync_sources(session=s, specs=[SourceSpec(id="crashy", name="Crashy", url="http://127.0.0.1:9/x")])

    class Crashing:
        def run(self, source_ids: list[str], *, timeout: float, abandon: threading.Event) -> Any:
            from tracker.service.crawler import CrawlResult

            return CrawlResult(exit_code=-11, seconds=0.1, output="Segmentation fault")

    svc = Service(settings=Settings(database_url=db_url), crawler=Crashing())
    svc.start(paused=True)
    try:
        svc.run_batch(["crashy"])
    finally:
        svc.stop("test over")
    with Session(engine) as s:
        state = s.get(CheckState, "crashy")
        assert state is not None and state.last_result == "failed"
        assert state.last_error is not None and "crashed (exit code -11)" in state.last_error
        assert "Segmentation fault" in state.last_error
    assert os.getpid()  # the test process (the "service") is alive and well


KILLED_MID_CHECK = """
import sys, time
from pathlib import Path
from tracker.store.db import make_engine, session_scope
from spiders import KINDS
from tracker.check.state import Fetch
from tracker.check.record import record_check
from tracker.store.models import Source

def hook(session, change):
    # Called inside the transaction that records the version and the change, before it commits.
    print("in-transaction", flush=True)
    time.sleep(120)

engine = make_engine(sys.argv[1])
with session_scope(engine) as s:
    src = s.get(Source, "doc")
    record_check(kinds=KINDS, session=s, source=src, on_change=hook, fetch=Fetch(
        source_id="doc", url=src.url, status=200, headers={"Content-Type": "text/html"},
        body=Path(sys.argv[2]).read_bytes()))
"""


def policy_html(version: int) -> bytes:
    from markdown_it import MarkdownIt

    from tests.conftest import FIXTURES

    md = (FIXTURES / "pga" / REDDIT / f"{version:04d}.md").read_text()
    body = MarkdownIt().render(md)
    return f"<html><body><nav>menu</nav><article class='policy'>{body}</article></body></html>".encode()


def test_a_check_killed_inside_its_transaction_leaves_nothing_behind(db_url: str, engine: Engine,
                                                                      tmp_path: Path) -> None:
    """What makes killing a crawl safe: a source's snapshot, version and change commit together or not at all."""
    from tracker.check.record import record_check
    from tracker.check.state import Fetch
    from tracker.store.models import Source

    with session_scope(engine) as s:
        sync_sources(session=s, specs=[SourceSpec(id="doc", name="Doc", url="https://example.org/doc",
                                                  select=["article.policy"])])
    with session_scope(engine) as s:
        src = s.get(Source, "doc")
        assert src is not None
        record_check(kinds=KINDS, session=s, source=src, fetch=Fetch(source_id="doc", url=src.url, status=200,
                                                        headers={"Content-Type": "text/html"}, body=policy_html(2)))
    counts = {t: scalar(db_url, f"select count(*) from {t}") for t in ("snapshot", "blob", "version", "change")}
    assert counts == {"snapshot": 1, "blob": 1, "version": 1, "change": 0}

    page = tmp_path / "v3.html"
    page.write_bytes(policy_html(3))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MID_CHECK, db_url, str(page)],
                            env=tracker_env(db_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "in-transaction", proc.stderr.read() if proc.stderr else ""
        # The new snapshot, blob, version and change are written (flushed) but not committed: kill it now.
        proc.kill()
    finally:
        proc.wait(30)
    assert {t: scalar(db_url, f"select count(*) from {t}") for t in counts} == counts
    assert scalar(db_url, "select last_result from check_state where source_id = 'doc'") == "new"
    # The next check records the change as if nothing had happened.
    with session_scope(engine) as s:
        src = s.get(Source, "doc")
        assert src is not None
        outcome = record_check(kinds=KINDS, session=s, source=src, fetch=Fetch(
            source_id="doc", url=src.url, status=200, headers={"Content-Type": "text/html"}, body=policy_html(3)))
    assert outcome.result == "changed" and outcome.sections == ["Reddit Content Policy > Enforcement"]
