"""Hostile or unlucky pages through the real crawl: stray bytes in UTF-8, redirects to other hosts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import run_tracker
from tests.e2e.test_crawl_e2e import changes, cli_json, crawl, fixed
from tests.support.page_server import Route, real_page, serve_pages

X = "x-privacy-policy"


def sync(db_url: str, tmp_path: Path, sources: list[dict[str, object]]) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({"sources": sources}, sort_keys=False))
    out = run_tracker(db_url, "sources", "sync", str(path))
    assert out.returncode == 0, out.stderr


def source(sid: str, url: str, **fields: object) -> dict[str, object]:
    return {"id": sid, "name": sid.title(), "url": url, "select": ["article.policy"], **fields}


def with_stray_byte(page: bytes, word: bytes) -> bytes:
    """The page with one windows-1252 right quote (0x92, invalid in UTF-8) pasted before a word."""
    assert page.count(word) >= 1
    return page.replace(word, b"\x92" + word, 1)


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "text/html"])
def test_one_stray_byte_in_a_utf8_page_changes_only_its_block(db_url: str, tmp_path: Path,
                                                               content_type: str) -> None:
    # Declared UTF-8 by the header, or (no charset in the header) by the page's own <meta charset>.
    with serve_pages() as site:
        page = real_page(X, 2)
        site.routes["/x"] = Route(page, headers={"Content-Type": content_type})
        sync(db_url, tmp_path, [source("x", site.url("/x"))])
        fixed(crawl(db_url), new=1)
        stray = with_stray_byte(page, b"Most people who use X")
        site.routes["/x"] = Route(stray, headers={"Content-Type": content_type})
        fixed(crawl(db_url), changed=1)
        (change,) = changes(db_url)
        assert (change["added"], change["removed"], change["modified"]) == (0, 0, 1), change
        shown = cli_json(db_url, "changes", "show", str(change["id"]), "--format", "json")
        assert "\ufffdMost people who use X" in str(shown) and "Ã" not in str(shown)
        # The byte fixed: again only that block, back to the first text.
        site.routes["/x"] = Route(page, headers={"Content-Type": content_type})
        fixed(crawl(db_url), changed=1)
        assert [(c["added"], c["removed"], c["modified"]) for c in changes(db_url)] == [(0, 0, 1), (0, 0, 1)]


def test_offhost_redirects_are_flagged_or_refused_per_source(db_url: str, tmp_path: Path) -> None:
    with serve_pages() as site:
        site.routes["/page"] = Route(real_page(X, 1))
        # 127.0.0.1 and localhost: one server, two host names.
        site.routes["/moved"] = Route(b"", 302, {"Location": site.url("/page", host="localhost")})
        site.routes["/same"] = Route(b"", 302, {"Location": site.url("/page")})
        sync(db_url, tmp_path, [
            source("followed", site.url("/moved")),
            source("refused", site.url("/moved"), options={"offhost_redirects": "refuse"}),
            source("on-host", site.url("/same"), options={"offhost_redirects": "refuse"}),
        ])
        out = run_tracker(db_url, "crawl")
        assert out.returncode == 3, out.stdout + out.stderr
        # The refused chain stops before asking the other host: only the followed source went there.
        assert site.requested.count("localhost/page") == 1 and site.requested.count("127.0.0.1/page") == 1
    listed = {s["id"]: s for s in cli_json(db_url, "sources", "list", "--json")}
    assert listed["followed"]["last_result"] == "new" and listed["followed"]["redirected_host"] == "localhost"
    assert listed["on-host"]["last_result"] == "new" and listed["on-host"]["redirected_host"] is None
    refused = listed["refused"]
    assert refused["last_result"] == "failed" and refused["redirected_host"] is None
    assert "redirects to another host (localhost:" in refused["last_error"]
    assert "options.offhost_redirects: refuse" in refused["last_error"]

    text = run_tracker(db_url, "sources", "list").stdout
    (flag,) = [line for line in text.splitlines() if "redirected to another host" in line]
    assert "localhost" in flag and "offhost_redirects: refuse" in flag

    preview = tmp_path / "preview"
    out = run_tracker(db_url, "digest", "--preview", str(preview),
                      TRACKER_DIGEST_EVERYTHING_TO='["ops@example.com"]')
    assert out.returncode == 0, out.stderr
    (txt,) = preview.glob("*.txt")
    (html,) = preview.glob("*.html")
    assert "Followed: redirected to another host, localhost" in txt.read_text()
    assert "1 SOURCE REDIRECTED TO ANOTHER HOST" in txt.read_text()
    assert "redirected to another host</b>: localhost" in html.read_text()

    from fastapi.testclient import TestClient

    from tests.integration.test_web import login
    from tests.support.web_seed import add_users
    from tracker.config import Settings
    from tracker.store.db import make_engine, session_scope
    from tracker.web import create_app

    eng = make_engine(db_url)
    with session_scope(eng) as s:
        add_users(s)
    eng.dispose()
    with TestClient(create_app(Settings(database_url=db_url, secret_key="test-secret-key-0123456789")),
                    follow_redirects=False) as c:
        login(c, "viewer")
        page = c.get("/sources").text
        assert page.count("redirected to another host") == 1 and "localhost:" in page
        api = {s["id"]: s for s in c.get("/api/sources").json()}
        assert api["followed"]["redirected_host"] == "localhost" and api["refused"]["redirected_host"] is None
