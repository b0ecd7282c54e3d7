"""End to end: the real `tracker` command crawling the local policy site, on each database backend."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import sqlalchemy as sa
from sqlmodel import select

from spiders import KINDS
from tests.conftest import PolicySite, run_tracker, write_sources
from tracker.store.db import make_engine

REDDIT, X = "reddit-community-guidelines", "x-privacy-policy"
# The fixture's real differences (see tests/unit/test_diffing.py for the markdown line numbers).
REDDIT_2_3 = ["Reddit Content Policy > Enforcement"]
X_2_3 = ["X Privacy Policy > 6. Your Rights and Ours", "X Privacy Policy > 10. How To Contact X"]
SUMMARY = re.compile(r"checked (\d+) source\(s\) in [\d.]+s: (.*)")


def crawl(db_url: str, *ids: str, expect: int = 0, **env: str) -> dict[str, int]:
    """Run `tracker crawl`, check its exit code, and return the summary counts."""
    out = run_tracker(db_url, "crawl", *ids, **env)
    assert out.returncode == expect, f"exit {out.returncode}\nstdout: {out.stdout}\nstderr: {out.stderr}"
    m = SUMMARY.search(out.stdout)
    assert m, out.stdout
    counts = {k.replace(" ", "_"): int(n) for n, k in re.findall(r"(\d+) ([a-z ]+?)(?:,|$)", m.group(2))}
    assert sum(counts.values()) == int(m.group(1))
    return counts


def cli_json(db_url: str, *args: str) -> Any:
    """Run a read-only `tracker` command in this process (the crawls above are real subprocesses)."""
    from typer.testing import CliRunner

    from tracker.cli import app

    result = CliRunner().invoke(app, list(args), env={"TRACKER_DATABASE_URL": db_url}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def changes(db_url: str, *args: str) -> list[dict[str, Any]]:
    return list(cli_json(db_url, "changes", "list", "--json", *args))


def sources(db_url: str) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in cli_json(db_url, "sources", "list", "--json")}


def rows(db_url: str, table: str, **where: str) -> int:
    """How many rows a table holds (optionally for one source)."""
    eng = make_engine(db_url)
    try:
        with eng.connect() as conn:
            q = f"select count(*) from {table}" + "".join(f" where {k} = :{k}" for k in where)
            return int(conn.execute(sa.text(q), where).scalar_one())
    finally:
        eng.dispose()


def storage(db_url: str) -> tuple[int, int, int]:
    return rows(db_url, "snapshot"), rows(db_url, "blob"), rows(db_url, "version")


def fixed(counts: dict[str, int], **expected: int) -> None:
    """Every count not named is zero."""
    want = {"new": 0, "changed": 0, "unchanged": 0, "not_modified": 0, "failed": 0} | expected
    assert counts == want


def test_versions_noise_and_real_changes_with_validators(db_url: str, policy_site: PolicySite,
                                                         tmp_path: Path) -> None:
    write_sources(tmp_path / "sources.yaml", policy_site, [REDDIT, X])
    assert run_tracker(db_url, "sources", "sync", str(tmp_path / "sources.yaml")).returncode == 0
    policy_site.set(REDDIT, 2)
    policy_site.set(X, 2)

    # First crawl: one version each, no change.
    fixed(crawl(db_url), new=2)
    assert changes(db_url) == []
    assert rows(db_url, "version") == 2
    listed = sources(db_url)
    assert {s["last_result"] for s in listed.values()} == {"new"}
    assert all(s["last_error"] is None and s["consecutive_failures"] == 0 for s in listed.values())

    # Same versions, fresh noise: the stored validators get 304s, counted as not modified.
    before = storage(db_url)
    fixed(crawl(db_url), not_modified=2)
    assert changes(db_url) == []
    assert storage(db_url) == before
    listed = sources(db_url)
    assert {s["last_result"] for s in listed.values()} == {"not_modified"}
    assert {(s["last_status"], s["checks"]) for s in listed.values()} == {(304, 2)}
    assert all(s["last_success_at"] == s["last_checked_at"] for s in listed.values())

    # The next real version: exactly one change each, naming the headings that really changed.
    policy_site.next(REDDIT)
    policy_site.next(X)
    fixed(crawl(db_url), changed=2)
    found = {c["source_id"]: c for c in changes(db_url)}
    assert len(changes(db_url)) == 2
    assert found[REDDIT]["sections"] == REDDIT_2_3
    assert (found[REDDIT]["added"], found[REDDIT]["removed"], found[REDDIT]["modified"]) == (0, 0, 3)
    assert found[X]["sections"] == X_2_3
    assert (found[X]["added"], found[X]["removed"], found[X]["modified"]) == (0, 0, 2)
    assert rows(db_url, "version") == 4

    # And the validators of the new version are used from then on.
    fixed(crawl(db_url), not_modified=2)
    assert len(changes(db_url)) == 2


def test_noise_no_growth_and_one_change_per_version_without_validators(
        db_url: str, policy_site_novalidators: PolicySite, tmp_path: Path) -> None:
    site = policy_site_novalidators
    write_sources(tmp_path / "sources.yaml", site, [REDDIT, X])
    assert run_tracker(db_url, "sources", "sync", str(tmp_path / "sources.yaml")).returncode == 0
    # The site really sends a different page every time, and no validators.
    with urlopen(site.url(REDDIT), timeout=10) as a, urlopen(site.url(REDDIT), timeout=10) as b:
        assert a.read() != b.read()
        assert a.headers.get("ETag") is None and a.headers.get("Last-Modified") is None

    fixed(crawl(db_url), new=2)
    first = storage(db_url)
    assert first == (2, 2, 2)

    # Re-fetched and re-extracted: unchanged, and the database does not grow.
    fixed(crawl(db_url), unchanged=2)
    assert changes(db_url) == []
    assert storage(db_url) == first
    assert {s["last_result"] for s in sources(db_url).values()} == {"unchanged"}

    # Replay every version of X (Reddit jumps 0 -> 2, then 2 -> 3, then stays): one change for
    # each version whose text differs, none for the re-fetches of an unchanged one.
    site.next(X)
    fixed(crawl(db_url), changed=1, unchanged=1)
    site.next(X)
    site.set(REDDIT, 2)
    fixed(crawl(db_url), changed=2)
    site.next(X)
    site.next(REDDIT)
    fixed(crawl(db_url), changed=2)
    before = rows(db_url, "snapshot", source_id=REDDIT), rows(db_url, "blob")
    site.next(X)
    fixed(crawl(db_url), changed=1, unchanged=1)
    assert rows(db_url, "snapshot", source_id=REDDIT) == before[0]
    assert rows(db_url, "blob") == before[1] + 1  # only X's new page

    x_changes = changes(db_url, "--source", X)  # newest first
    assert len(x_changes) == 4
    assert x_changes[1]["sections"] == X_2_3
    # X v1 -> v2 only changed the "Effective" date line at the top of the policy.
    assert x_changes[2]["sections"] == ["X Privacy Policy"]
    assert (x_changes[2]["added"], x_changes[2]["removed"], x_changes[2]["modified"]) == (0, 0, 1)
    reddit_changes = changes(db_url, "--source", REDDIT)
    assert len(reddit_changes) == 2
    assert reddit_changes[0]["sections"] == REDDIT_2_3
    assert (reddit_changes[0]["added"], reddit_changes[0]["removed"], reddit_changes[0]["modified"]) == (0, 0, 3)
    assert rows(db_url, "version") == 2 + 4 + 2


def test_requests_carry_per_source_options_and_validators_only_with_a_baseline(engine: Any) -> None:
    from spiders.runner import build_requests, scrapy_settings
    from tracker.check.record import record_check
    from tracker.check.state import Fetch
    from tracker.config import get_settings
    from tracker.declare.sources import SourceOptions, SourceSpec, sync_sources
    from tracker.store.db import session_scope
    from tracker.store.models import CheckState, Source

    specs = [
        SourceSpec(id="a", name="A", url="https://one.example/a", select=["main"],
                   options=SourceOptions(download_delay=5, concurrency=1, timeout=60,
                                         headers={"Accept-Language": "en"}, obey_robots=False)),
        SourceSpec(id="b", name="B", url="https://one.example/b", select=["main"],
                   options=SourceOptions(download_delay=2, concurrency=3)),
        SourceSpec(id="c", name="C", url="https://two.example/c", select=["main"]),
    ]
    with session_scope(engine) as s:
        sync_sources(session=s, specs=specs)
    with session_scope(engine) as s:
        a = s.get(Source, "a")
        assert a is not None
        record_check(kinds=KINDS, session=s, source=a, fetch=Fetch(
            source_id="a", url=a.url, status=200, body=b"<main><p>Policy.</p></main>",
            headers={"ETag": '"e1"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}))
        # c has validators in its state but no stored version: it must be fetched in full.
        s.add(CheckState(source_id="c", etag='"stale"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT"))
    with session_scope(engine) as s:
        rows_ = list(s.exec(select(Source).order_by(Source.id)).all())
        by_kind, slots = build_requests(s, rows_, obey_robots=True)
    req = {r.id: r for r in by_kind["html"]}
    assert (req["a"].etag, req["a"].last_modified) == ('"e1"', "Mon, 01 Jan 2024 00:00:00 GMT")
    assert (req["b"].etag, req["c"].etag, req["c"].last_modified) == (None, None, None)
    assert req["a"].headers == {"Accept-Language": "en"} and req["a"].timeout == 60
    assert (req["a"].obey_robots, req["b"].obey_robots, req["c"].obey_robots) == (False, True, True)
    # Two sources on one host: the more polite delay and concurrency win; other hosts keep the defaults.
    assert slots == {"one.example": {"delay": 5.0, "concurrency": 1.0}}
    settings = get_settings(database_url="sqlite://", obey_robots=False, concurrency=4,
                            concurrency_per_domain=1, download_delay=3)
    conf = scrapy_settings(settings, slots, None, obey_robots=True)
    assert conf["DOWNLOAD_SLOTS"] == {"one.example": {"delay": 5.0, "concurrency": 1}}
    assert (conf["CONCURRENT_REQUESTS"], conf["CONCURRENT_REQUESTS_PER_DOMAIN"], conf["DOWNLOAD_DELAY"]) == (4, 1, 3)
    assert conf["ROBOTSTXT_OBEY"] is True and 429 in conf["RETRY_HTTP_CODES"]  # type: ignore[operator]
