"""Faults: every failure keeps the baseline, is recorded on the source, and the next good fetch recovers.

Several sources, each in a different fault mode, are checked in one crawl to keep this fast.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from sqlmodel import col, select

from spiders import KINDS
from tests.conftest import FIXTURES, PolicySite, run_tracker, serve_policy_site, write_sources
from tests.e2e.test_crawl_e2e import REDDIT_2_3, changes, crawl, fixed, rows, sources
from tracker.check.record import record_check
from tracker.check.state import Fetch
from tracker.declare.sources import SourceSpec, sync_sources
from tracker.store.db import make_engine, session_scope
from tracker.store.models import CheckState, Snapshot, Source

# Each fault mode of the policy site, and what the recorded error must say.
FAULTS = {
    "500": ["HTTP 500", "after 1 retry"],
    "429": ["HTTP 429", "after 1 retry"],
    "404": ["HTTP 404"],
    "timeout": ["timed out after 2s", "TRACKER_DOWNLOAD_TIMEOUT"],
    "empty": ["empty"],
    "garbage": ["not text"],
    "selector_gone": ["'article.policy'", "matched nothing"],
}
FAST_FAULTS = ["500", "garbage", "selector_gone"]
REDIRECT = "f-redirect"


def sid(mode: str) -> str:
    return f"f-{mode.replace('_', '-')}"


@pytest.fixture
def fault_site(tmp_path: Path) -> Iterator[PolicySite]:
    """A policy site (no validators) with one copy of the Reddit document per fault mode."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for slug in [sid(m) for m in FAULTS] + [REDIRECT]:
        (corpus / slug).symlink_to(FIXTURES / "pga" / "reddit-community-guidelines", target_is_directory=True)
    with serve_policy_site(corpus, validators=False) as site:
        yield site


def test_every_fault_keeps_the_baseline_and_recovers(db_url: str, fault_site: PolicySite, tmp_path: Path) -> None:
    site = fault_site
    ids = [sid(m) for m in FAULTS] + [REDIRECT]
    write_sources(tmp_path / "sources.yaml", site, ids)
    assert run_tracker(db_url, "sources", "sync", str(tmp_path / "sources.yaml")).returncode == 0
    for i in ids:
        site.set(i, 2)
    fixed(crawl(db_url), new=len(ids))
    baseline = {i: rows(db_url, "version", source_id=i) for i in ids}
    assert set(baseline.values()) == {1}

    # Every fault at once; the redirected source also moves to its next version.
    for mode in FAULTS:
        site.mode(sid(mode), mode)
    site.mode(REDIRECT, "redirect")
    site.next(REDIRECT)
    env = {"TRACKER_DOWNLOAD_TIMEOUT": "2", "TRACKER_RETRY_TIMES": "1"}
    out = run_tracker(db_url, "crawl", **env)
    assert out.returncode == 3, out.stdout + out.stderr
    assert f"{len(FAULTS)} failed" in out.stdout and "1 changed" in out.stdout
    for mode in FAULTS:
        assert f"failed {sid(mode)}: " in out.stderr  # the summary names each failure
    listed = sources(db_url)
    error_since = {}
    for mode, fragments in FAULTS.items():
        src = listed[sid(mode)]
        assert src["last_result"] == "failed", mode
        assert src["consecutive_failures"] == 1, mode
        assert src["error_since"] is not None, mode
        for fragment in fragments:
            assert fragment in src["last_error"], (mode, src["last_error"])
        assert rows(db_url, "version", source_id=sid(mode)) == 1, f"{mode} must keep the baseline"
        error_since[mode] = src["error_since"]
    # Nothing but the redirected source's real change was recorded.
    (change,) = changes(db_url)
    assert change["source_id"] == REDIRECT and change["sections"] == REDDIT_2_3
    redirected = listed[REDIRECT]
    assert redirected["last_result"] == "changed" and redirected["last_error"] is None
    assert redirected["final_url"] == site.url(REDIRECT) + "?hop=1"
    assert redirected["url"] == site.url(REDIRECT)

    # Failing again: the streak grows, error_since stays, and no second copy of the same error is kept.
    error_snapshots = rows(db_url, "snapshot")
    fixed(crawl(db_url, *[sid(m) for m in FAST_FAULTS], expect=3, **env), failed=len(FAST_FAULTS))
    listed = sources(db_url)
    for mode in FAST_FAULTS:
        assert listed[sid(mode)]["consecutive_failures"] == 2
        assert listed[sid(mode)]["error_since"] == error_since[mode]
    assert rows(db_url, "snapshot") == error_snapshots
    eng = make_engine(db_url)
    with session_scope(eng) as s:
        kept = s.exec(select(Snapshot).where(Snapshot.source_id == sid("garbage")).order_by(col(Snapshot.id))).all()
        assert [k.purpose for k in kept] == ["version", "error"]
        assert kept[1].content_sha256 is not None and "not text" in (kept[1].error or "")
    eng.dispose()

    # Everything back to normal: errors cleared, the text compared again, no spurious change.
    for i in ids:
        site.mode(i, "ok")
    fixed(crawl(db_url), unchanged=len(ids))
    listed = sources(db_url)
    for i in ids:
        assert listed[i]["last_result"] == "unchanged"
        assert (listed[i]["last_error"], listed[i]["error_since"], listed[i]["consecutive_failures"]) == (None, None, 0)
        assert rows(db_url, "version", source_id=i) == (2 if i == REDIRECT else 1)
    assert listed[REDIRECT]["final_url"] is None  # no longer redirected
    assert len(changes(db_url)) == 1


# -- robots.txt ------------------------------------------------------------------------------

PAGE = b"""<!doctype html><html><body><article class="policy"><h1>Terms</h1>
<p>Policy text of %s.</p></article></body></html>"""


class RobotsSite:
    """A tiny site whose robots.txt disallows /private/, recording every path requested."""

    def __init__(self) -> None:
        self.requested: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site.requested.append(self.path)
                if self.path == "/robots.txt":
                    body, ctype = b"User-agent: *\nDisallow: /private/\n", "text/plain"
                else:
                    body, ctype = PAGE % self.path.encode(), "text/html; charset=utf-8"
                    if "big" in self.path:
                        body = body.replace(b"</p>", b"x" * 10_000 + b"</p>")
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def robots_site() -> Iterator[RobotsSite]:
    site = RobotsSite()
    yield site
    site.close()


def test_robots_txt_is_obeyed_per_source(db_url: str, robots_site: RobotsSite, tmp_path: Path) -> None:
    base = robots_site.base
    entries = [
        {"id": "public", "url": f"{base}/public/terms"},
        {"id": "private", "url": f"{base}/private/terms"},
        {"id": "private-allowed", "url": f"{base}/private/allowed", "options": {"obey_robots": False}},
        {"id": "private-strict", "url": f"{base}/private/strict", "options": {"obey_robots": True}},
        {"id": "too-big", "url": f"{base}/public/big"},  # beyond TRACKER_MAX_PAGE_BYTES below
    ]
    doc = {"sources": [{"name": e["id"], "select": ["article.policy"], **e} for e in entries]}
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(doc))
    assert run_tracker(db_url, "sources", "sync", str(tmp_path / "sources.yaml")).returncode == 0

    # Obeyed by default: the disallowed pages are never requested, and that is a clear error.
    fixed(crawl(db_url, expect=3, TRACKER_MAX_PAGE_BYTES="4096"), new=2, failed=3)
    assert "/robots.txt" in robots_site.requested
    assert "/private/terms" not in robots_site.requested
    assert "/private/strict" not in robots_site.requested
    assert "/private/allowed" in robots_site.requested
    listed = sources(db_url)
    for blocked in ("private", "private-strict"):
        error = listed[blocked]["last_error"]
        assert f"{base}/{blocked.replace('-', '/')}" in error
        assert "disallowed by the site's robots.txt" in error and "obey_robots" in error
        assert listed[blocked]["consecutive_failures"] == 1
        assert rows(db_url, "version", source_id=blocked) == 0
    assert listed["private-allowed"]["last_result"] == "new"
    assert listed["too-big"]["last_error"].startswith(f"{base}/public/big is larger than TRACKER_MAX_PAGE_BYTES")

    # Off globally: a source that says obey_robots: true still obeys.
    robots_site.requested.clear()
    fixed(crawl(db_url, "public", "private", "private-allowed", "private-strict", expect=3,
                TRACKER_OBEY_ROBOTS="false"), new=1, unchanged=2, failed=1)
    assert "/private/terms" in robots_site.requested
    assert "/private/strict" not in robots_site.requested
    listed = sources(db_url)
    assert listed["private"]["last_result"] == "new" and listed["private"]["last_error"] is None
    assert listed["private-strict"]["consecutive_failures"] == 2


# -- a source the crawl lost -----------------------------------------------------------------


def test_a_source_lost_by_the_crawl_is_recorded_as_failed(db_url: str) -> None:
    from spiders.runner import record_lost

    spec = SourceSpec(id="lost", name="Lost", url="http://127.0.0.1:9/terms", select=["article"])
    eng = make_engine(db_url)
    with session_scope(eng) as s:
        sync_sources(session=s, specs=[spec])
    (outcome,) = record_lost(database_url=db_url, source_ids=["lost"])
    assert outcome.result == "failed" and "without a response" in (outcome.error or "")
    with session_scope(eng) as s:
        state = s.get(CheckState, "lost")
        assert state is not None
        assert state.consecutive_failures == 1 and state.last_result == "failed"
        assert "without a response" in (state.last_error or "") and state.error_since is not None
    # A source that vanished meanwhile is still reported, never silently dropped.
    (gone,) = record_lost(database_url=db_url, source_ids=["no-such-source"])
    assert gone.result == "failed" and "vanished" in (gone.error or "")
    assert record_lost(database_url=db_url, source_ids=[]) == []
    eng.dispose()


def test_a_304_without_a_stored_version_is_an_error(db_url: str) -> None:
    spec = SourceSpec(id="odd", name="Odd", url="http://127.0.0.1:9/terms", select=["article"])
    eng = make_engine(db_url)
    with session_scope(eng) as s:
        sync_sources(session=s, specs=[spec])
    with session_scope(eng) as s:
        source = s.get(Source, "odd")
        assert source is not None
        outcome = record_check(kinds=KINDS, session=s, source=source,
                               fetch=Fetch(source_id="odd", url=source.url, status=304))
    assert outcome.result == "failed" and "no version is stored yet" in (outcome.error or "")
    eng.dispose()


def test_a_kind_without_a_spider_is_a_recorded_failure(db_url: str) -> None:
    # A database written by a newer tracker may hold kinds this one cannot fetch.
    spec = SourceSpec(id="future", name="Future", url="http://127.0.0.1:9/feed.xml", select=["entry"])
    eng = make_engine(db_url)
    with session_scope(eng) as s:
        sync_sources(session=s, specs=[spec])
        s.flush()
        source = s.get(Source, "future")
        assert source is not None
        source.kind = "gopher"
    eng.dispose()
    fixed(crawl(db_url, expect=3), failed=1)
    error = sources(db_url)["future"]["last_error"]
    assert error.startswith("no spider fetches sources of kind 'gopher'")
    assert "known: ecfr, federal_register, feed, html" in error


def test_retry_waits_back_off_and_honour_retry_after() -> None:
    from email.utils import format_datetime

    from scrapy import Request
    from scrapy.settings import Settings as ScrapySettings

    from spiders.middlewares import BackoffRetryMiddleware, _retry_after
    from tracker.store.db import utcnow

    assert _retry_after(b"7") == 7.0
    later = _retry_after(format_datetime(utcnow() + timedelta(seconds=30), usegmt=True).encode())
    assert later is not None and 25 <= later <= 30
    assert _retry_after(b"soon") is None and _retry_after(None) is None
    mw = BackoffRetryMiddleware(ScrapySettings({"TRACKER_RETRY_BACKOFF_BASE": 2.0, "TRACKER_RETRY_BACKOFF_MAX": 10.0}))
    first = mw._delay(Request("http://x/", meta={"retry_times": 0}), None)
    third = mw._delay(Request("http://x/", meta={"retry_times": 2}), None)
    assert 1.5 <= first <= 2.5 and 6.0 <= third <= 10.0  # base * 2**n, with jitter, capped
    assert mw._delay(Request("http://x/", meta={"retry_times": 5}), None) == 10.0
    assert mw._delay(Request("http://x/"), 3.0) == 3.0  # Retry-After wins...
    assert mw._delay(Request("http://x/"), 3600.0) == 10.0  # ...up to the cap
