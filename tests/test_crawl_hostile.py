"""Hostile or unlucky pages through the real crawl: stray bytes in UTF-8, redirects to other hosts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import run_tracker
from tests.support.page_server import Route, real_page, serve_pages
from tests.test_crawl_e2e import changes, cli_json, crawl, fixed

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
