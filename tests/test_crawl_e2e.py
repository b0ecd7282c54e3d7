"""End to end: the real `tracker` command crawling the local policy site."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import PolicySite, run_tracker, write_sources

DOC = "reddit-community-guidelines"


def changes(db_url: str) -> list[dict]:
    out = run_tracker(db_url, "changes", "list", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_first_crawl_noise_and_real_change(db_url: str, policy_site: PolicySite, tmp_path: Path) -> None:
    write_sources(tmp_path / "sources.yaml", policy_site, [DOC])
    assert run_tracker(db_url, "sources", "sync", str(tmp_path / "sources.yaml")).returncode == 0

    first = run_tracker(db_url, "crawl")
    assert first.returncode == 0, first.stderr
    assert "1 new" in first.stdout

    # Same version, fresh page noise, no validators sent back: still no change.
    again = run_tracker(db_url, "crawl")
    assert again.returncode == 0, again.stderr
    assert "1 not modified" in again.stdout
    assert changes(db_url) == []

    policy_site.set(DOC, 3)  # version 2 -> 3 of the fixture only touches "Enforcement"
    policy_site.set(DOC, 2)
    run_tracker(db_url, "crawl")
    policy_site.set(DOC, 3)
    moved = run_tracker(db_url, "crawl")
    assert moved.returncode == 0, moved.stderr
    found = changes(db_url)
    assert len(found) == 2
    newest = found[0]
    assert newest["sections"] == ["Reddit Content Policy > Enforcement"]
    assert (newest["added"], newest["removed"], newest["modified"]) == (0, 0, 3)
