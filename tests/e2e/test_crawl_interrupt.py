"""SIGINT (Ctrl+C) or SIGTERM during a manual `tracker crawl`: a requested stop is not a source failure."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from tests.conftest import tracker_env
from tests.e2e.test_crawl_e2e import REDDIT, crawl, fixed
from tests.support.page_server import Route, real_page, serve_pages
from tracker.store.db import make_engine

FAST, SLOW = ["fast-1", "fast-2", "fast-3"], ["slow-1", "slow-2", "slow-3"]


def states(db_url: str) -> dict[str, tuple[int, str, int]]:
    """Each source's (checks, last result, consecutive failures)."""
    eng = make_engine(db_url)
    try:
        with eng.connect() as conn:
            q = sa.text("select source_id, checks, last_result, consecutive_failures from check_state")
            return {sid: (checks, result, failures) for sid, checks, result, failures in conn.execute(q)}
    finally:
        eng.dispose()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_crawl_leaves_unchecked_sources_alone_and_exits_130(db_url: str, tmp_path: Path,
                                                                        signum: int) -> None:
    with serve_pages() as site:
        page = real_page(REDDIT, 1)
        for sid in FAST + SLOW:
            site.routes[f"/{sid}"] = Route(page)
        sources = [{"id": sid, "name": sid, "url": site.url(f"/{sid}"), "select": ["article.policy"]}
                   for sid in FAST + SLOW]
        (tmp_path / "sources.yaml").write_text(yaml.safe_dump({"sources": sources}))
        env = tracker_env(db_url, TRACKER_DOWNLOAD_TIMEOUT="8")
        cmd = [sys.executable, "-m", "tracker"]
        assert subprocess.run([*cmd, "sources", "sync", str(tmp_path / "sources.yaml")], env=env).returncode == 0
        fixed(crawl(db_url), new=6)

        for sid in SLOW:
            site.routes[f"/{sid}"] = Route(page, delay=60)
        proc = subprocess.Popen([*cmd, "crawl"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not all(states(db_url).get(sid, (0,))[0] == 2 for sid in FAST):
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.2)
            proc.send_signal(signum)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, out + err
        assert "crawl interrupted: checked 3 source(s), 3 left unchecked with their state unchanged" in out, out + err
        after = states(db_url)
        assert {sid: after[sid] for sid in FAST} == dict.fromkeys(FAST, (2, "unchanged", 0))
        # The slow sources were never answered: as they were, not failed.
        assert {sid: after[sid] for sid in SLOW} == dict.fromkeys(SLOW, (1, "new", 0)), err
