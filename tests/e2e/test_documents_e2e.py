"""End to end: `kind: pdf` and `kind: json` sources crawled by the real `tracker` command from a local server.

The documents are tests/fixtures/docs (real versions 2 and 3 of the X Privacy Policy, printed by
Chromium and written as JSON; see tests/support/make_doc_fixtures.py). The sections a change must
name are computed here from the versions' markdown, independently of the extractors.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import FIXTURES, PolicySite, run_tracker
from tests.e2e.test_crawl_e2e import REDDIT, REDDIT_2_3, X_2_3, X, changes, crawl, fixed, rows, sources
from tests.support.make_doc_fixtures import DOC, excerpt, policy_json

DOCS = FIXTURES / "docs"
PDF = {v: (DOCS / f"x-privacy-policy-{v}.pdf").read_bytes() for v in ("v2", "v2-reprint", "v3")}
JSON = {v: json.loads((DOCS / f"x-privacy-policy-{v}.json").read_text()) for v in ("v2", "v3")}


class DocServer:
    """A local server whose routes tests set: path -> (status, content type, body).

    PDFs carry an ETag (their hash) and are answered 304 when it matches; which paths were asked
    conditionally is noted in `conditional`.
    """

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.conditional: list[str] = []
        routes, conditional = self.routes, self.conditional

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, ctype, body = routes.get(self.path, (404, "text/plain", b"not found"))
                etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"' if ctype == "application/pdf" else None
                if self.headers.get("If-None-Match"):
                    conditional.append(self.path)
                if etag and status == 200 and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(status)
                if etag:
                    self.send_header("ETag", etag)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def serve(self, path: str, body: bytes, ctype: str = "application/pdf", status: int = 200) -> None:
        self.routes[path] = (status, ctype, body)


@pytest.fixture
def docs() -> Iterator[DocServer]:
    site = DocServer()
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    yield site
    site.server.shutdown()
    site.server.server_close()


def leaves(value: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every leaf of a JSON value by its key path (lists kept whole)."""
    if isinstance(value, dict):
        out: dict[tuple[str, ...], Any] = {}
        for k, v in value.items():
            out |= leaves(v, (*path, k))
        return out
    return {path: value}


def changed_paths(old: Any, new: Any) -> list[tuple[str, ...]]:
    a, b = leaves(old), leaves(new)
    return sorted(p for p in a.keys() | b.keys() if a.get(p) != b.get(p))


def expected_pdf_sections() -> list[str]:
    """The headings whose text changed between the printed excerpts of versions 2 and 3."""
    old, new = (policy_json(excerpt((DOC / f"{v:04d}.md").read_text()), "")["policy"] for v in (2, 3))
    return sorted(" > ".join(p[:-1]) for p in changed_paths(old, new))  # (the last key is "text")


def expected_json_sections() -> list[str]:
    return sorted(" > ".join(("policy", *p)) for p in changed_paths(JSON["v2"]["policy"], JSON["v3"]["policy"]))


def no_text_pdf() -> bytes:
    """A valid PDF whose one page has no text layer (as a scan without OCR)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def reordered(value: Any) -> Any:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


def sync(db_url: str, path: Path, entries: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump({"sources": entries}, sort_keys=False))
    out = run_tracker(db_url, "sources", "sync", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


def index_page(href: str) -> bytes:
    return (f'<html><body><h1>Privacy</h1><a href="/about">About</a>'
            f'<a class="current" href="{href}">Privacy Policy (PDF)</a></body></html>').encode()


PDF_FAULTS = {"f-500": "HTTP 500", "f-empty": "empty", "f-garbage": "not a PDF", "f-notext": "no text layer"}


def test_pdf_sources_versions_reprints_changes_and_faults(db_url: str, docs: DocServer, tmp_path: Path) -> None:
    entries = [{"id": "x-pdf", "name": "X privacy (PDF)", "url": f"{docs.base}/x.pdf", "kind": "pdf"},
               {"id": "x-pdf-linked", "name": "X privacy (linked PDF)", "url": f"{docs.base}/privacy",
                "kind": "pdf", "link_select": "a.current"}]
    entries += [{"id": f, "name": f, "url": f"{docs.base}/{f}.pdf", "kind": "pdf"} for f in PDF_FAULTS]
    sync(db_url, tmp_path / "sources.yaml", entries)
    for path in ("/x.pdf", "/files/x-2023-09.pdf", *(f"/{f}.pdf" for f in PDF_FAULTS)):
        docs.serve(path, PDF["v2"])
    docs.serve("/privacy", index_page("/files/x-2023-09.pdf"), "text/html")
    fixed(crawl(db_url), new=6)
    listed = sources(db_url)
    assert {s["kind"] for s in listed.values()} == {"pdf"}
    text = run_tracker(db_url, "sources", "list").stdout
    assert all(f"{sid:40} pdf " in text for sid in listed)

    # Nothing moved: the PDFs answer 304 to the validators, which went to the PDF, not the index page.
    fixed(crawl(db_url, "x-pdf", "x-pdf-linked"), not_modified=2)
    assert sorted(docs.conditional) == ["/files/x-2023-09.pdf", "/x.pdf"]

    # The same version printed again (new creation date and file ID): nothing to record.
    assert PDF["v2-reprint"] != PDF["v2"]
    docs.serve("/x.pdf", PDF["v2-reprint"])
    docs.serve("/files/x-2023-09.pdf", PDF["v2-reprint"])
    fixed(crawl(db_url, "x-pdf", "x-pdf-linked"), unchanged=2)
    assert rows(db_url, "version") == 6

    # The next real version; the linked one under a new file name, found through the index page.
    docs.serve("/x.pdf", PDF["v3"])
    docs.serve("/files/x-2024-02.pdf", PDF["v3"])
    docs.serve("/privacy", index_page("/files/x-2024-02.pdf"), "text/html")
    fixed(crawl(db_url, "x-pdf", "x-pdf-linked"), changed=2)
    found = {c["source_id"]: c for c in changes(db_url)}
    assert set(found) == {"x-pdf", "x-pdf-linked"}
    want = expected_pdf_sections()
    assert len(want) == 2
    assert sorted(found["x-pdf"]["sections"]) == want
    assert sorted(found["x-pdf-linked"]["sections"]) == want
    assert sources(db_url)["x-pdf-linked"]["final_url"] == f"{docs.base}/files/x-2024-02.pdf"

    # Faults keep the baseline and record an error.
    docs.serve("/f-500.pdf", b"oops", "text/plain", status=500)
    docs.serve("/f-empty.pdf", b"")
    docs.serve("/f-garbage.pdf", bytes(range(256)) * 40, "application/octet-stream")
    docs.serve("/f-notext.pdf", no_text_pdf())
    docs.serve("/privacy", b"<html><body><p>moved</p></body></html>", "text/html")
    fixed(crawl(db_url, *PDF_FAULTS, "x-pdf-linked", expect=3), failed=5)
    listed = sources(db_url)
    for sid, fragment in (*PDF_FAULTS.items(), ("x-pdf-linked", "found no link")):
        assert listed[sid]["last_result"] == "failed"
        assert fragment in listed[sid]["last_error"], (sid, listed[sid]["last_error"])
        assert rows(db_url, "version", source_id=sid) == (2 if sid == "x-pdf-linked" else 1)
    assert len(changes(db_url)) == 2


JSON_FAULTS = {"j-500": "HTTP 500", "j-empty": "empty", "j-garbage": "not text", "j-nomatch": "selected nothing"}


def test_json_sources_versions_reformatting_changes_and_faults(db_url: str, docs: DocServer,
                                                                tmp_path: Path) -> None:
    ids = ["x-json", *JSON_FAULTS]
    sync(db_url, tmp_path / "sources.yaml",
         [{"id": i, "name": i, "url": f"{docs.base}/{i}.json", "kind": "json", "select": "policy"} for i in ids])
    body = json.dumps(JSON["v2"]).encode()
    for i in ids:
        docs.serve(f"/{i}.json", body, "application/json")
    fixed(crawl(db_url), new=len(ids))
    assert {s["kind"] for s in sources(db_url).values()} == {"json"}

    # Keys reordered and re-indented: nothing to record.
    docs.serve("/x-json.json", json.dumps(reordered(JSON["v2"]), indent=4).encode(), "application/json")
    fixed(crawl(db_url, "x-json"), unchanged=1)

    docs.serve("/x-json.json", json.dumps(JSON["v3"], indent=2).encode(), "application/json")
    fixed(crawl(db_url, "x-json"), changed=1)
    (change,) = changes(db_url)
    want = expected_json_sections()
    assert len(want) == 2
    assert sorted(change["sections"]) == want

    docs.serve("/j-500.json", b"{}", "application/json", status=500)
    docs.serve("/j-empty.json", b"", "application/json")
    docs.serve("/j-garbage.json", bytes(range(256)) * 40, "application/json")
    docs.serve("/j-nomatch.json", json.dumps({"meta": JSON["v2"]["meta"]}).encode(), "application/json")
    fixed(crawl(db_url, *JSON_FAULTS, expect=3), failed=len(JSON_FAULTS))
    listed = sources(db_url)
    for sid, fragment in JSON_FAULTS.items():
        assert listed[sid]["last_result"] == "failed"
        assert fragment in listed[sid]["last_error"], (sid, listed[sid]["last_error"])
        assert rows(db_url, "version", source_id=sid) == 1


def test_sync_refuses_an_invalid_jmespath_with_its_line_and_id(sqlite_url: str, tmp_path: Path) -> None:
    from tracker.store.db import upgrade

    upgrade(sqlite_url)
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  - id: ok-json\n    name: ok\n    url: https://example.org/a.json\n    kind: json\n"
                    "  - id: bad-json\n    name: bad\n    url: https://example.org/b.json\n    kind: json\n"
                    "    select: \"policy[?\"\n")
    out = run_tracker(sqlite_url, "sources", "sync", str(path))
    assert out.returncode != 0
    assert "line 6 (source bad-json)" in out.stdout + out.stderr
    assert "invalid JMESPath expression 'policy[?'" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_a_document_of_several_pages_is_one_version_and_one_failing_page_fails_it(
        db_url: str, policy_site: PolicySite, tmp_path: Path) -> None:
    site = policy_site
    entry = {"id": "two-pages", "name": "Reddit and X together", "urls": [site.url(REDDIT), site.url(X)],
             "select": ["article.policy"], "remove": [".cookie-banner", "nav"]}
    sync(db_url, tmp_path / "sources.yaml", [entry])
    site.set(REDDIT, 2)
    site.set(X, 2)
    fixed(crawl(db_url), new=1)
    first = sources(db_url)["two-pages"]
    assert first["url"] == site.url(REDDIT) and first["options"]["urls"] == [site.url(REDDIT), site.url(X)]
    fixed(crawl(db_url), unchanged=1)  # the pages' noise is no change

    site.next(REDDIT)
    fixed(crawl(db_url), changed=1)
    (change,) = changes(db_url)
    assert change["sections"] == REDDIT_2_3  # the first page's change; the second page is unchanged

    site.next(X)
    site.mode(X, "500")
    fixed(crawl(db_url, expect=3), failed=1)
    failing = sources(db_url)["two-pages"]
    assert "HTTP 500" in failing["last_error"] and site.url(X) in failing["last_error"]
    assert rows(db_url, "version", source_id="two-pages") == 2
    site.mode(X, "ok")
    fixed(crawl(db_url), changed=1)
    assert sorted(changes(db_url)[0]["sections"]) == sorted(X_2_3)


def test_urls_is_refused_with_url_or_with_one_page(sqlite_url: str, tmp_path: Path) -> None:
    from tracker.store.db import upgrade

    upgrade(sqlite_url)
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  - id: both\n    name: both\n    url: https://example.org/a\n"
                    "    urls: [https://example.org/a, https://example.org/b]\n"
                    "  - id: one\n    name: one\n    urls: [https://example.org/a]\n")
    out = run_tracker(sqlite_url, "sources", "sync", str(path))
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "(source both): give `url` (one page) or `urls` (several pages), not both" in text
    assert "(source one): urls: must list two or more pages" in text
