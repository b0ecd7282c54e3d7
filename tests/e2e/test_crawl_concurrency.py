"""Two crawls at once (a manual `tracker crawl` beside the service's, or two manual ones) after one page
update: each transition of a page is recorded exactly once, whichever crawl records it first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import PolicySite, tracker_env
from tests.e2e.test_crawl_e2e import REDDIT, X, crawl, fixed, rows

SOURCES = 60


def test_two_concurrent_crawls_record_one_change_per_page_update(db_url: str, policy_site: PolicySite,
                                                                 tmp_path: Path) -> None:
    site = policy_site
    ids = [f"s{i:02d}" for i in range(SOURCES)]
    # Many sources on one policy site: each a distinct URL of one of its two documents.
    sources = [{"id": sid, "name": sid, "url": f"{site.url(REDDIT if i % 2 else X)}?copy={i}",
                "select": ["article.policy"]} for i, sid in enumerate(ids)]
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump({"sources": sources}))
    env = tracker_env(db_url, TRACKER_DOWNLOAD_DELAY="0", TRACKER_CONCURRENCY_PER_DOMAIN="16")
    cmd = [sys.executable, "-m", "tracker"]
    assert subprocess.run([*cmd, "sources", "sync", str(tmp_path / "sources.yaml")], env=env).returncode == 0
    fixed(crawl(db_url, TRACKER_CONCURRENCY_PER_DOMAIN="16"), new=SOURCES)

    site.next(REDDIT)
    site.next(X)
    crawls = [subprocess.Popen([*cmd, "crawl", "--quiet"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=180)[0] for p in crawls]
    assert [p.returncode for p in crawls] == [0, 0], outputs
    for sid in ids:
        assert (rows(db_url, "version", source_id=sid), rows(db_url, "change", source_id=sid)) == (2, 1), sid
    assert rows(db_url, "change") == SOURCES
