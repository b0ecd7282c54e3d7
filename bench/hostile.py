#!/usr/bin/env python3
"""Crawl two hostile pages with the real `tracker crawl` and print time, peak RSS and database growth.

  many   16 MB: 2,000,000 `<p>x</p>` (before the limits: 29 s, 2.4 GB, +226 MB; now refused past
         TRACKER_MAX_BLOCKS, the raw page kept once)
  long   94 KB: a 54 KB <h1> above 5,000 paragraphs, crawled new and then changed in every paragraph
         (before: +541 MB per change, 1.2 GB peak; now each heading path is stored once)

The same crawls are held to bounds in tests/e2e/test_hostile_pages.py; this script only prints figures.
Run:  .venv/bin/python bench/hostile.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import run_tracker, tracker_env  # noqa: E402
from tests.support.hostile_site import Measured, hostile_site, measured_run, write_sources  # noqa: E402
from tracker.store.db import upgrade  # noqa: E402


def main() -> int:
    print(f"{'page':<18} {'result':<10} {'seconds':>8} {'peak RSS MB':>12} {'DB growth MB':>13}")
    with tempfile.TemporaryDirectory() as tmp, hostile_site() as site:
        db_url = f"sqlite:///{Path(tmp) / 'tracker.db'}"
        upgrade(db_url)
        sources = write_sources(Path(tmp) / "sources.yaml", site, "many", "long")
        if run_tracker(db_url, "sources", "sync", str(sources)).returncode != 0:
            print("sources sync failed", file=sys.stderr)
            return 1
        env = tracker_env(db_url)
        runs = [("many (16 MB)", "many"), ("long (new)", "long")]
        for label, source_id in runs:
            _row(label, measured_run(db_url, "crawl", source_id, env=env))
        site.long_version = 1
        _row("long (changed)", measured_run(db_url, "crawl", "long", env=env))
    return 0


def _row(label: str, run: Measured) -> None:
    result = "failed" if run.returncode == 3 else "ok" if run.returncode == 0 else f"exit {run.returncode}"
    print(f"{label:<18} {result:<10} {run.seconds:>8.2f} {run.peak_rss_mb:>12.0f} {run.db_growth_mb:>13.2f}")


if __name__ == "__main__":
    sys.exit(main())
