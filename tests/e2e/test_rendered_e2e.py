"""End to end: `render: browser` sources crawled by the real `tracker crawl` in Debian's headless Chromium.

The pages are shells whose script fetches a real version of the X Privacy Policy (tests/fixtures/pga)
and inserts it with fresh noise (tests/support/rendered_site.py): without a browser there is no policy
text at all. A plain html source rides in the same crawl, fetched by Scrapy alone. The sections a change
must name are computed from the versions' markdown, independently of the extractor.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from tests.conftest import FIXTURES, IN_CI, ROOT, run_tracker
from tests.e2e.test_crawl_e2e import X_2_3, X, changes, crawl, fixed, rows, sources
from tests.e2e.test_documents_e2e import changed_paths, sync
from tests.support.make_doc_fixtures import policy_json
from tests.support.page_server import PageServer, Route, real_page, serve_pages
from tests.support.rendered_site import serve_rendered
from tracker.check.record import load_blob
from tracker.store.db import make_engine
from tracker.store.models import Snapshot

CHROMIUM = "/usr/bin/chromium"
RULES = {"select": ["article.policy"], "remove": [".promo"]}
FAULTS = {"r-500": "HTTP 500", "r-empty": "matched nothing", "r-wait": "wait_for 'article.policy' never appeared"}

pytestmark = pytest.mark.slow


def _need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail("CI=true but Debian's chromium is not installed (.ci/run installs it with apt-get)")
        pytest.skip("chromium is not installed (apt-get install chromium)")


@pytest.fixture
def pages() -> Iterator[PageServer]:
    with serve_pages() as server:
        yield server


def expected_sections(old: int, new: int) -> list[str]:
    """Headings (the markdown's two levels, which the page renders as h1 and h2) whose text changed."""
    a, b = (policy_json((FIXTURES / "pga" / X / f"{v:04d}.md").read_text(), "")["policy"] for v in (old, new))
    return sorted({" > ".join(p[:-1][:2]) for p in changed_paths(a, b)})


def plain_page(version: int) -> Route:
    """The policy site's page with a script that a browser would run and Scrapy never does."""
    probe = b'<script>fetch("/api/plain-probe.json")</script></main>'
    return Route(real_page(X, version).replace(b"</main>", probe))


def raw_page(db_url: str, source_id: str) -> str:
    """The page the source's newest snapshot kept, as the crawl saw it."""
    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            snap = session.exec(select(Snapshot).where(Snapshot.source_id == source_id)
                                .order_by(col(Snapshot.id).desc())).first()
            assert snap is not None and snap.content_sha256 is not None
            return load_blob(session=session, sha256=snap.content_sha256).decode("utf-8")
    finally:
        engine.dispose()


def entry(sid: str, url: str, **fields: Any) -> dict[str, Any]:
    return {"id": sid, "name": sid, "url": url, **RULES, **fields}


def test_rendered_pages_versions_noise_changes_and_faults(db_url: str, pages: PageServer, tmp_path: Path) -> None:
    _need_chromium()
    entries = [entry("x-rendered", serve_rendered(pages, X, 2, path="x"), render="browser", wait_for="article.policy"),
               entry("x-plain", pages.url("/plain"))]
    entries += [entry("r-500", serve_rendered(pages, X, 2, path="r-500"), render="browser"),
                entry("r-empty", serve_rendered(pages, X, 2, path="r-empty"), render="browser",
                      select=["main"], remove=[".promo"]),
                entry("r-wait", serve_rendered(pages, X, 2, path="r-wait"), render="browser",
                      wait_for="article.policy")]
    # r-500 and r-empty wait for nothing: their script runs late, so give them the text in the shell.
    for name in ("r-500", "r-empty"):
        pages.routes[f"/r/{name}"] = Route(real_page(X, 2))
    pages.routes["/plain"] = plain_page(2)
    sync(db_url, tmp_path / "sources.yaml", entries)

    # First check: one version each; only the rendered pages were loaded by a browser (which ran their
    # scripts and skipped their images).
    fixed(crawl(db_url), new=5)
    assert any(p.endswith("/api/x.json") for p in pages.requested)
    assert not any(p.endswith("/api/plain-probe.json") for p in pages.requested)
    assert not any("/pixel/" in p for p in pages.requested)
    # What was kept is the DOM the script built, its noise included (which the rules must ignore).
    rendered = raw_page(db_url, "x-rendered")
    assert "Offer " in rendered and "data-session=" in rendered and "Rendered at " in rendered
    assert "How To Contact X" in rendered.split("<footer")[0]
    listed = sources(db_url)
    assert listed["x-rendered"]["options"]["render"] == "browser"
    text = run_tracker(db_url, "sources", "list").stdout
    assert f"{'x-rendered':40} html (browser) " in text
    assert f"{'x-plain':40} html " in text and f"{'x-plain':40} html (browser)" not in text
    versions = rows(db_url, "version")

    # Same versions, fresh script noise: nothing recorded.
    fixed(crawl(db_url, "x-rendered", "x-plain"), unchanged=2)
    assert rows(db_url, "version") == versions
    assert changes(db_url) == []

    # The next real version: exactly one change each, naming the headings that really changed.
    serve_rendered(pages, X, 3, path="x")
    pages.routes["/plain"] = plain_page(3)
    fixed(crawl(db_url, "x-rendered", "x-plain"), changed=2)
    found = {c["source_id"]: c for c in changes(db_url)}
    assert len(changes(db_url)) == 2
    assert expected_sections(2, 3) == sorted(X_2_3)
    assert sorted(found["x-rendered"]["sections"]) == expected_sections(2, 3)
    assert found["x-rendered"]["sections"] == found["x-plain"]["sections"]

    # Faults keep the baseline and record an error naming what went wrong.
    pages.routes["/r/r-500"] = Route(real_page(X, 3), status=500)
    pages.routes["/r/r-empty"] = Route(b"")
    pages.routes["/api/r-wait.json"] = Route(b"gone", status=404)
    fixed(crawl(db_url, *FAULTS, expect=3, TRACKER_BROWSER_WAIT_TIMEOUT="2", TRACKER_RETRY_TIMES="0"), failed=3)
    listed = sources(db_url)
    for sid, fragment in FAULTS.items():
        assert listed[sid]["last_result"] == "failed"
        assert fragment in listed[sid]["last_error"], (sid, listed[sid]["last_error"])
        assert rows(db_url, "version", source_id=sid) == 1
    assert len(changes(db_url)) == 2


BLOCK_IMPORT = """import sys

class _NoBrowserExtra:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "scrapy_playwright":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoBrowserExtra())
"""


@pytest.mark.parametrize(("env", "fragment"), [
    ("no-extra", "pip install '.[browser]'"),
    ("no-chromium", "TRACKER_BROWSER_PATH"),
])
def test_without_the_extra_or_chromium_a_rendered_source_fails_and_says_how_to_fix_it(
        db_url: str, pages: PageServer, tmp_path: Path, env: str, fragment: str) -> None:
    entries = [entry("x-rendered", serve_rendered(pages, X, 2, path="x"), render="browser"),
               entry("x-plain", pages.url("/plain"))]
    pages.routes["/plain"] = plain_page(2)
    sync(db_url, tmp_path / "sources.yaml", entries)
    extra: dict[str, str] = {"TRACKER_BROWSER_PATH": str(tmp_path / "no-chromium")}
    if env == "no-extra":
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(BLOCK_IMPORT)
        extra = {"PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    fixed(crawl(db_url, expect=3, **extra), new=1, failed=1)
    listed = sources(db_url)
    assert listed["x-plain"]["last_result"] == "new"
    error = listed["x-rendered"]["last_error"]
    assert error.startswith("render: browser needs") and fragment in error, error
    assert not any("/api/" in p for p in pages.requested)
