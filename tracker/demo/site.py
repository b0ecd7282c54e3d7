"""A local, offline stand-in for policy pages, for `tracker demo`: serves the bundled sample as noisy HTML.

Each document is a folder of NNNN.md versions (tracker/demo/data/pga/<slug>/). The page wraps the
current version in navigation, a cookie banner, scripts and a footer that change on every request
— the noise a real site has and the tracker must ignore. Modelled on the project's
tools/policy_site.py, trimmed to what the demo needs.
"""

from __future__ import annotations

import hashlib
import html
import json
import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


@dataclass
class Document:
    """One policy document and its versions."""

    slug: str
    title: str
    folder: Path
    versions: list[dict[str, Any]]
    current: int = 0
    _html: dict[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path) -> Document:
        meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        title = str(meta["document"]).removesuffix(".md").replace("/", " ")
        return cls(slug=folder.name, title=title, folder=folder, versions=list(meta["versions"]))

    def body(self, v: int) -> str:
        if v not in self._html:
            from markdown_it import MarkdownIt

            text = (self.folder / f"{v:04d}.md").read_text(encoding="utf-8")
            self._html[v] = MarkdownIt("commonmark").enable("table").render(text)
        return self._html[v]


class DemoSite:
    """The documents the demo serves, and which version of each is current."""

    def __init__(self, corpus: Path):
        self.docs = {d.name: Document.load(d) for d in sorted(corpus.iterdir()) if (d / "index.json").is_file()}
        if not self.docs:
            raise ValueError(f"no documents (folders with index.json) under {corpus}")
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def advance(self, slug: str) -> int:
        """Move a document to its next real version; returns the version now served."""
        with self.lock:
            doc = self.docs[slug]
            doc.current = min(doc.current + 1, len(doc.versions) - 1)
            return doc.current

    def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 in a background thread; returns the base URL."""
        handler = type("Handler", (_Handler,), {"site": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="demo-site", daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def render_page(doc: Document, v: int) -> str:
    """The HTML page around version v, with fresh noise on every call."""
    token = uuid.uuid4().hex
    nav = "".join(f'<li><a href="/docs/{s}?utm_source=nav&amp;_r={random.randint(0, 10**9)}">{s}</a></li>'
                  for s in random.sample(range(6), 6))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(doc.title)}</title>
<meta name="csrf-token" content="{token}">
<script>window.__BOOT__={{"session":"{uuid.uuid4().hex}"}};</script></head>
<body data-build="{random.randint(1000, 9999)}">
<div class="cookie-banner" id="cb-{token[:8]}">We use cookies. <button>Accept</button></div>
<header class="site-header"><nav><ul>{nav}</ul></nav></header>
<main id="main">
<h1 class="page-title">{html.escape(doc.title)}</h1>
<article class="policy">
{doc.body(v)}
</article>
<aside class="related">Trending now: item {random.randint(1, 500)}</aside>
</main>
<footer class="site-footer">Page generated at {datetime.now(UTC).isoformat()}. Request id {uuid.uuid4()}.</footer>
</body></html>"""


class _Handler(BaseHTTPRequestHandler):
    site: DemoSite
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        parts = [p for p in urlparse(self.path).path.split("/") if p]
        try:
            if parts == ["robots.txt"]:
                return self._send(200, b"User-agent: *\nAllow: /\n", "text/plain")
            if len(parts) == 2 and parts[0] == "docs" and parts[1] in self.site.docs:
                return self._document(self.site.docs[parts[1]])
            if not parts:
                links = "".join(f'<li><a href="/docs/{s}">{html.escape(d.title)}</a></li>'
                                for s, d in self.site.docs.items())
                return self._send(200, f"<ul>{links}</ul>".encode(), "text/html; charset=utf-8")
            self._send(404, b"not found", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _document(self, doc: Document) -> None:
        with self.site.lock:
            v = doc.current
        etag = '"' + hashlib.sha1(f"{doc.slug}:{v}".encode()).hexdigest()[:16] + '"'
        modified = datetime.fromisoformat(doc.versions[v]["date"]).astimezone(UTC)
        headers = {"ETag": etag, "Last-Modified": format_datetime(modified, usegmt=True), "Cache-Control": "no-cache"}
        if self.headers.get("If-None-Match") == etag:
            return self._send(304, b"", "text/html; charset=utf-8", headers)
        self._send(200, render_page(doc, v).encode("utf-8"), "text/html; charset=utf-8", headers)

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and status != 304:
            self.wfile.write(body)
