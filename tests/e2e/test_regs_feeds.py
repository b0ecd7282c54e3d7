"""End to end: `feed` sources (RSS 2.0 and Atom) and faults of every new kind, through the real
`tracker crawl` against a local server whose answers each test sets."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import FIXTURES, run_tracker
from tests.e2e.test_crawl_e2e import changes, crawl, fixed, rows, sources

Answer = tuple[int, dict[str, str], bytes]


class Server:
    """A local HTTP server answering each path with what the test put there."""

    def __init__(self, base: str, answers: dict[str, Answer]):
        self.base = base
        self.answers = answers

    def put(self, path: str, body: bytes | str, status: int = 200, **headers: str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.answers[path] = (status, {k.replace("_", "-"): v for k, v in headers.items()}, data)


@pytest.fixture
def server() -> Iterator[Server]:
    answers: dict[str, Answer] = {}

    class Handler(BaseHTTPRequestHandler):
        table: ClassVar[dict[str, Answer]] = answers

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            status, headers, body = self.table.get(urlparse(self.path).path, (404, {}, b"not found"))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", answers)
    finally:
        httpd.shutdown()
        httpd.server_close()


FEEDS = {"rss": ("ftc-press.rss", "item", "application/rss+xml"),
         "atom": ("osa.atom", "entry", "application/atom+xml")}


def feed_parts(name: str) -> tuple[str, list[str], str]:
    """A fixture feed as head, entries and tail, so a test can move its window."""
    file, tag, _ = FEEDS[name]
    text = (FIXTURES / "feeds" / file).read_text()
    entries = re.findall(rf"\s*<{tag}>.*?</{tag}>", text, re.S)
    head = text[:text.index(entries[0])]
    tail = text[text.index(entries[-1]) + len(entries[-1]):]
    return head, entries, tail


def sync(db_url: str, tmp_path: Path, entries: list[dict[str, Any]]) -> None:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"sources": entries}))
    out = run_tracker(db_url, "sources", "sync", str(tmp_path / "s.yaml"))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", sorted(FEEDS))
def test_feed_window_new_and_updated_entries(db_url: str, server: Server, tmp_path: Path, name: str) -> None:
    head, entries, tail = feed_parts(name)
    ctype = FEEDS[name][2]
    sync(db_url, tmp_path, [{"id": "press", "name": "Press", "kind": "feed", "url": f"{server.base}/feed"}])
    server.put("/feed", head.replace("{build}", "Mon, 06 Jan 2025 10:00:00 GMT") + "".join(entries) + tail,
               Content_Type=ctype)
    fixed(crawl(db_url), new=1)
    assert changes(db_url) == []  # the baseline is not news

    # The window moves on: the oldest entry drops out, the feed's own date changes. Not a removal.
    server.put("/feed", head.replace("{build}", "Tue, 07 Jan 2025 10:00:00 GMT") + "".join(entries[:-1]) + tail,
               Content_Type=ctype)
    fixed(crawl(db_url), unchanged=1)
    assert changes(db_url) == []

    # A new entry: one change adding it.
    tag = FEEDS[name][1]
    new = (entries[0].replace("Children", "Teens").replace("coppa", "teens").replace("1420", "9999")
           .replace("Commencement No. 2", "Commencement No. 3"))
    assert new != entries[0]
    server.put("/feed", head.replace("{build}", "Wed, 08 Jan 2025 10:00:00 GMT") + new + "".join(entries[:-1]) + tail,
               Content_Type=ctype)
    fixed(crawl(db_url), changed=1)
    (added,) = changes(db_url)
    assert added["kind"] == "feed" and added["entry"]["title"] in (
        "FTC Finalizes Changes to Teens's Privacy Rule",
        "The Online Safety Act 2023 (Commencement No. 3) Regulations 2023")
    assert added["added"] > 0 and added["removed"] == 0

    # An entry whose content changes later: one change of that entry.
    updated = re.sub(rf"(<{tag}>.*?)(</(?:description|summary)>)", r"\1 Corrected.\2", entries[1], count=1, flags=re.S)
    assert updated != entries[1]
    server.put("/feed", head.replace("{build}", "Thu, 09 Jan 2025 10:00:00 GMT") + new + updated
               + "".join(entries[2:-1]) + tail, Content_Type=ctype)
    fixed(crawl(db_url), changed=1)
    found = changes(db_url)
    assert len(found) == 2
    assert found[0]["modified"] >= 1 and found[0]["entry"]["id"] != added["entry"]["id"]


def _baseline_kept(db_url: str, source_id: str, versions: int, entries: int) -> dict[str, Any]:
    assert rows(db_url, "version", source_id=source_id) == versions
    assert rows(db_url, "stream_entry", source_id=source_id) == entries
    assert changes(db_url) == []
    listed = sources(db_url)[source_id]
    assert listed["last_result"] == "failed" and listed["last_error"]
    return listed


def _fr_page(base: str, count: int, results: list[dict[str, Any]], nxt: str | None) -> str:
    return json.dumps({"count": count, "total_pages": 2, "next_page_url": nxt, "results": results})


DOC = {"document_number": "2099-00001", "title": "Test rule", "type": "Rule", "publication_date": "2099-01-02",
       "agencies": [{"name": "Federal Trade Commission", "slug": "federal-trade-commission"}],
       "effective_on": "2099-02-01", "abstract": "A rule.", "html_url": "/documents/x"}


@pytest.mark.parametrize("fault", ["500", "429", "malformed"])
def test_feed_faults_keep_the_baseline(db_url: str, server: Server, tmp_path: Path, fault: str) -> None:
    head, entries, tail = feed_parts("rss")
    sync(db_url, tmp_path, [{"id": "press", "name": "Press", "kind": "feed", "url": f"{server.base}/feed"}])
    server.put("/feed", head.replace("{build}", "x") + "".join(entries) + tail, Content_Type="application/rss+xml")
    fixed(crawl(db_url), new=1)
    if fault == "500":
        server.put("/feed", "oops", status=500)
    elif fault == "429":
        server.put("/feed", "slow down", status=429, Retry_After="1")
    else:
        server.put("/feed", "<html><body>Maintenance <b>tonight</body>", Content_Type="text/html")
    fixed(crawl(db_url, expect=3), failed=1)
    listed = _baseline_kept(db_url, "press", versions=1, entries=3)
    assert {"500": "HTTP 500", "429": "HTTP 429", "malformed": "not an RSS or Atom feed"}[fault] in listed["last_error"]


@pytest.mark.parametrize("fault", ["500", "malformed", "empty", "loop"])
def test_federal_register_faults_keep_the_baseline(db_url: str, server: Server, tmp_path: Path, fault: str) -> None:
    sync(db_url, tmp_path, [{"id": "fr", "name": "FR", "kind": "federal_register", "url": server.base,
                             "query": {"agencies": ["federal-trade-commission"], "per_page": 1}}])
    path = "/api/v1/documents.json"
    server.put(path, _fr_page(server.base, 1, [DOC], None), Content_Type="application/json")
    fixed(crawl(db_url), new=1)
    if fault == "500":
        server.put(path, "{}", status=500)
    elif fault == "malformed":
        server.put(path, '{"count": 3, "results": [{"document_number": "2099-0', Content_Type="application/json")
    elif fault == "empty":
        server.put(path, _fr_page(server.base, 4, [], None), Content_Type="application/json")
    else:  # page 1 says its next page is itself
        other = DOC | {"document_number": "2099-00002"}
        server.put(path, _fr_page(server.base, 2, [other], f"{server.base}{path}"), Content_Type="application/json")
    fixed(crawl(db_url, expect=3), failed=1)
    listed = _baseline_kept(db_url, "fr", versions=1, entries=1)
    assert {"500": "HTTP 500", "malformed": "malformed Federal Register JSON", "empty": "empty result page",
            "loop": "paging loop"}[fault] in listed["last_error"]


@pytest.mark.parametrize("fault", ["429", "malformed-json", "malformed-xml"])
def test_ecfr_faults_keep_the_baseline(db_url: str, server: Server, tmp_path: Path, fault: str) -> None:
    sync(db_url, tmp_path, [{"id": "cfr", "name": "CFR", "kind": "ecfr", "url": server.base,
                             "query": {"title": 16, "part": "312"}}])
    versions = "/api/versioner/v1/versions/title-16.json"
    edition = {"date": "2024-01-01", "amendment_date": "2023-12-01", "issue_date": "2024-01-01",
               "identifier": "312.5", "part": "312"}
    server.put(versions, json.dumps({"content_versions": [edition]}), Content_Type="application/json")
    part = ('<DIV5 N="312" TYPE="PART"><HEAD>PART 312—CHILDREN\'S ONLINE PRIVACY PROTECTION RULE</HEAD>'
            '<DIV8 N="312.5" TYPE="SECTION"><HEAD>§ 312.5 Parental consent.</HEAD><P>(a) General.</P></DIV8></DIV5>')
    server.put("/api/versioner/v1/full/2024-01-01/title-16.xml", part, Content_Type="application/xml")
    fixed(crawl(db_url), new=1)
    newer = edition | {"date": "2025-01-01", "issue_date": "2025-01-01"}
    server.put(versions, json.dumps({"content_versions": [edition, newer]}), Content_Type="application/json")
    if fault == "429":
        server.put(versions, "", status=429, Retry_After="1")
    elif fault == "malformed-json":
        server.put(versions, "{not json", Content_Type="application/json")
    else:
        server.put("/api/versioner/v1/full/2025-01-01/title-16.xml", "<DIV5><HEAD>PART 312",
                   Content_Type="application/xml")
    fixed(crawl(db_url, expect=3), failed=1)
    listed = _baseline_kept(db_url, "cfr", versions=1, entries=0)
    assert {"429": "HTTP 429", "malformed-json": "malformed eCFR versions JSON",
            "malformed-xml": "malformed eCFR XML"}[fault] in listed["last_error"]
