"""Hostile pages through the real `tracker crawl` (issue 11): bounded memory, database growth and a
clear error, never a 2.4 GB crawl or a 541 MB change. Figures are printed by bench/hostile.py;
here only bounds that do not depend on the machine's speed are asserted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from tests.conftest import run_tracker, tracker_env
from tests.support.hostile_site import LONG_HEADING_TEXT, HostileSite, hostile_site, measured_run, write_sources
from tracker.store.db import make_engine, session_scope, upgrade
from tracker.store.models import CheckState, Version


@pytest.fixture
def site() -> Iterator[HostileSite]:
    with hostile_site() as s:
        yield s


def _setup(db_url: str, site: HostileSite, tmp_path: Path, *names: str) -> None:
    upgrade(db_url)
    sources = write_sources(tmp_path / "sources.yaml", site, *names)
    out = run_tracker(db_url, "sources", "sync", str(sources))
    assert out.returncode == 0, out.stderr


def _state(db_url: str, source_id: str) -> CheckState:
    eng = make_engine(db_url)
    try:
        with session_scope(eng) as s:
            state = s.get(CheckState, source_id)
            assert state is not None
            s.expunge(state)
            return state
    finally:
        eng.dispose()


def test_a_page_of_two_million_blocks_fails_with_the_limit_named(sqlite_url: str, site: HostileSite,
                                                                  tmp_path: Path) -> None:
    _setup(sqlite_url, site, tmp_path, "many")
    run = measured_run(sqlite_url, "crawl", env=tracker_env(sqlite_url))
    assert run.returncode == 3, run.stdout + run.stderr  # exit 3: a source failed
    state = _state(sqlite_url, "many")
    assert state.last_result == "failed"
    assert "more than 20000 blocks (TRACKER_MAX_BLOCKS)" in (state.last_error or "")
    assert "Traceback" not in run.stderr
    # Before the limits: 2.4 GB and 226 MB. The parse of the 16 MB page itself is most of what is left.
    assert run.peak_rss_mb < 1000, run.peak_rss_mb
    assert run.db_growth_mb < 5, run.db_growth_mb  # the raw page kept once for inspection, compressed


def test_a_long_heading_is_stored_once_per_version(sqlite_url: str, site: HostileSite, tmp_path: Path) -> None:
    _setup(sqlite_url, site, tmp_path, "long")
    env = tracker_env(sqlite_url)
    first = measured_run(sqlite_url, "crawl", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    site.long_version = 1  # every paragraph changes: a change of 10,000 block changes
    second = measured_run(sqlite_url, "crawl", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 changed" in second.stdout
    # Before: 541 MB per change, the crawl peaking at 1.2 GB.
    assert first.db_growth_mb < 2, first.db_growth_mb
    assert second.db_growth_mb < 5, second.db_growth_mb
    assert max(first.peak_rss_mb, second.peak_rss_mb) < 400, (first.peak_rss_mb, second.peak_rss_mb)
    eng = make_engine(sqlite_url)
    with session_scope(eng) as s:
        (version, _) = s.exec(select(Version).order_by(col(Version.id))).all()
        stored = json.dumps(version.blocks)
        # The heading's own block holds it whole, once; the path of the 5,000 paragraphs holds 300 characters.
        assert stored.count(LONG_HEADING_TEXT.strip()) == 1 and len(stored) < 250_000
    eng.dispose()


def test_a_chunked_page_past_the_size_limit_names_it(sqlite_url: str, site: HostileSite, tmp_path: Path) -> None:
    _setup(sqlite_url, site, tmp_path, "chunked")
    limit = 1024 * 1024
    out = run_tracker(sqlite_url, "crawl", TRACKER_MAX_PAGE_BYTES=str(limit))
    assert out.returncode == 3, out.stdout + out.stderr
    error = _state(sqlite_url, "chunked").last_error or ""
    assert f"{site.base}/chunked is larger than TRACKER_MAX_PAGE_BYTES ({limit} bytes) allows" in error
    assert f"more than {limit} bytes arrived" in error
    assert "DownloadCancelledError" not in error


def test_escape_sequences_never_reach_the_terminal(sqlite_url: str, site: HostileSite, tmp_path: Path) -> None:
    _setup(sqlite_url, site, tmp_path, "escapes")
    assert run_tracker(sqlite_url, "crawl").returncode == 0
    eng = make_engine(sqlite_url)
    with session_scope(eng) as s:
        (version,) = s.exec(select(Version)).all()
        stored = json.dumps(version.blocks, ensure_ascii=False)
    eng.dispose()
    assert "\x1b" not in stored and "\x07" not in stored
    assert "Clear the screen red" in stored and "Terms0;pwned" not in stored


def test_the_block_limit_is_a_setting_and_the_baseline_stays(sqlite_url: str, site: HostileSite,
                                                             tmp_path: Path) -> None:
    _setup(sqlite_url, site, tmp_path, "escapes")
    assert run_tracker(sqlite_url, "crawl").returncode == 0
    out = run_tracker(sqlite_url, "crawl", TRACKER_MAX_BLOCKS="1")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "more than 1 blocks (TRACKER_MAX_BLOCKS)" in (_state(sqlite_url, "escapes").last_error or "")
    eng = make_engine(sqlite_url)
    with session_scope(eng) as s:
        assert len(s.exec(select(Version)).all()) == 1  # the baseline, untouched
    eng.dispose()
    assert run_tracker(sqlite_url, "crawl").returncode == 0  # back under the limit: unchanged, recovered
    assert _state(sqlite_url, "escapes").last_error is None
