"""`tracker sources sync --dry-run` changes nothing; `tracker --version`; --by falls back to TRACKER_ACTOR."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def _sources(path: Path, n: int) -> Path:
    path.write_text(yaml.safe_dump({"sources": [
        {"id": f"s{i}", "name": f"S {i}", "url": f"http://127.0.0.1:9/s{i}", "select": ["main"]}
        for i in range(n)]}))
    return path


def test_dry_run_changes_nothing_and_a_real_sync_disables(db_url: str, tracker: Any, tmp_path: Path) -> None:
    assert tracker(db_url, "db", "upgrade").returncode == 0
    assert tracker(db_url, "sources", "sync", str(_sources(tmp_path / "a.yaml", 6))).returncode == 0
    few = _sources(tmp_path / "b.yaml", 1)
    r = tracker(db_url, "sources", "sync", str(few), "--dry-run")
    assert r.returncode == 0 and "  - s5 (disabled" in r.stdout and "dry run: nothing was changed" in r.stdout
    listed = json.loads(tracker(db_url, "sources", "list", "--json").stdout)
    assert all(s["enabled"] for s in listed)
    # Not a terminal (a pipe): no question, the sync happens.
    r = tracker(db_url, "sources", "sync", str(few))
    assert r.returncode == 0 and "synced" in r.stdout
    listed = json.loads(tracker(db_url, "sources", "list", "--json").stdout)
    assert [s["id"] for s in listed if s["enabled"]] == ["s0"]


def test_version_and_actor(db_url: str, tracker: Any) -> None:
    r = tracker(db_url, "--version")
    assert r.returncode == 0 and r.stdout.startswith("tracker ")
    assert tracker(db_url, "db", "upgrade").returncode == 0
    r = tracker(db_url, "impacts", "needs-update", "1")
    assert r.returncode == 2 and "pass --by EMAIL or set TRACKER_ACTOR" in r.stderr
    r = tracker(db_url, "impacts", "needs-update", "1", TRACKER_ACTOR="pm@example.com")
    assert "TRACKER_ACTOR" not in r.stderr and "no impact" in (r.stderr + r.stdout).lower()
