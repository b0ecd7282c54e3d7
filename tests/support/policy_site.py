#!/usr/bin/env python3
"""(Vendored for the test suite from the project's shared tools; serves tests/fixtures/pga.)

A local stand-in for the policy pages a tracker watches, built from real document histories.

It serves every document under a corpus folder (../corpus/pga by default: one folder per
document, NNNN.md versions and an index.json) as a realistic HTML page: the policy text in
<main><article class="policy">, wrapped in navigation, a cookie banner, scripts, tracking links
and a "generated at" footer that change on every request (noise a tracker must ignore).
A control API moves each document from version to version and injects faults.

Run:   python policy_site.py [--corpus DIR] [--port 8700] [--no-validators]
Needs: markdown-it-py (pip install markdown-it-py).

Pages
  GET /docs/<slug>                current version of a document (ETag / Last-Modified, 304s)
  GET /docs/<slug>?v=N            version N, whatever the current one is
  GET /bulk/<i>                   page i of an endless set of distinct pages (for load tests):
                                  document i % D at version (i // D) % V
  GET /feed.xml                   Atom feed: one entry per document, updated at its current version
  GET /regs/documents.json        a Federal-Register-like JSON listing (one result per document)

Control (GET or POST, answers JSON)
  /_control/state                 current version and fault mode of every document
  /_control/set?doc=S&v=N         put document S at version N
  /_control/next?doc=S            advance document S by one version
  /_control/mode?doc=S&mode=M     fault mode: ok | 500 | 404 | 429 | slow | timeout | empty |
                                  garbage | redirect | selector_gone
  /_control/reset                 every document back to version 0, mode ok
"""
from __future__ import annotations

import argparse
import hashlib
import html
import json
import random
import threading
import time
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

try:
    from markdown_it import MarkdownIt
except ImportError:  # pragma: no cover
    raise SystemExit("policy_site.py needs markdown-it-py: pip install markdown-it-py")

MODES = {"ok", "500", "404", "429", "slow", "timeout", "empty", "garbage", "redirect", "selector_gone"}
_md = MarkdownIt("commonmark").enable("table")


class Document:
    def __init__(self, folder: Path):
        meta = json.loads((folder / "index.json").read_text())
        self.slug = folder.name
        self.title = meta["document"].removesuffix(".md").replace("/", " ")
        self.versions = meta["versions"]
        self.folder = folder
        self._html: dict[int, str] = {}

    def body(self, v: int) -> str:
        if v not in self._html:
            self._html[v] = _md.render((self.folder / f"{v:04d}.md").read_text())
        return self._html[v]

    def date(self, v: int) -> datetime:
        return datetime.fromisoformat(self.versions[v]["date"]).astimezone(UTC)


class Site:
    def __init__(self, corpus: Path, validators: bool):
        self.docs = {d.name: Document(d) for d in sorted(corpus.iterdir()) if (d / "index.json").exists()}
        if not self.docs:
            raise SystemExit(f"no documents under {corpus}")
        self.validators = validators
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.current = dict.fromkeys(self.docs, 0)
            self.mode = dict.fromkeys(self.docs, "ok")

    def state(self) -> dict:
        return {s: {"version": self.current[s], "versions": len(d.versions), "mode": self.mode[s],
                    "date": d.versions[self.current[s]]["date"]} for s, d in self.docs.items()}


def page(doc: Document, v: int, *, selector_gone: bool = False) -> str:
    """The HTML page around version v of a document, with fresh noise on every call."""
    nonce, token = uuid.uuid4().hex, uuid.uuid4().hex
    others = [f'<li><a href="/docs/{s}?utm_source=nav&amp;_r={random.randint(0, 10**9)}">{s}</a></li>'
              for s in random.sample(range(0, 6), 6)]
    article_open = '<div class="content-v2">' if selector_gone else '<article class="policy">'
    article_close = "</div>" if selector_gone else "</article>"
    now = datetime.now(UTC).isoformat()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(doc.title)}</title>
<meta name="csrf-token" content="{token}">
<script nonce="{nonce}">window.__BOOT__={{"session":"{uuid.uuid4().hex}","t":{time.time()}}};</script>
<style>.cookie-banner{{position:fixed}}</style></head>
<body data-build="{random.randint(1000, 9999)}">
<div class="cookie-banner" id="cb-{token[:8]}">We use cookies. <button>Accept</button></div>
<header class="site-header"><nav><ul>{''.join(others)}</ul></nav></header>
<main id="main">
<h1 class="page-title">{html.escape(doc.title)}</h1>
{article_open}
{doc.body(v)}
{article_close}
<aside class="related">Trending now: item {random.randint(1, 500)}</aside>
</main>
<footer class="site-footer">Page generated at {now}. Request id {uuid.uuid4()}.</footer>
<script>track("{uuid.uuid4().hex}")</script>
</body></html>"""


class Handler(BaseHTTPRequestHandler):
    site: Site
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        try:
            if parts[:1] == ["_control"]:
                return self.control(parts[1] if len(parts) > 1 else "state", q)
            if len(parts) == 2 and parts[0] == "docs":
                return self.document(parts[1], q)
            if len(parts) == 2 and parts[0] == "bulk" and parts[1].isdigit():
                return self.bulk(int(parts[1]))
            if parts == ["feed.xml"]:
                return self.feed()
            if parts == ["regs", "documents.json"]:
                return self.regs()
            self.send(404, b"not found", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- responses -------------------------------------------------------------
    def send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def json(self, obj: object, status: int = 200) -> None:
        self.send(status, json.dumps(obj, indent=1).encode(), "application/json")

    def control(self, verb: str, q: dict) -> None:
        site = self.site
        if verb == "reset":
            site.reset()
            return self.json(site.state())
        if verb == "state":
            return self.json(site.state())
        slug = q.get("doc")
        if slug not in site.docs:
            return self.json({"error": f"unknown doc {slug!r}", "docs": list(site.docs)}, 400)
        with site.lock:
            if verb == "set":
                v = int(q.get("v", 0))
                if not 0 <= v < len(site.docs[slug].versions):
                    return self.json({"error": "version out of range"}, 400)
                site.current[slug] = v
            elif verb == "next":
                site.current[slug] = min(site.current[slug] + 1, len(site.docs[slug].versions) - 1)
            elif verb == "mode":
                if q.get("mode") not in MODES:
                    return self.json({"error": f"mode must be one of {sorted(MODES)}"}, 400)
                site.mode[slug] = q["mode"]
            else:
                return self.json({"error": f"unknown control verb {verb!r}"}, 400)
        return self.json(site.state()[slug])

    def document(self, slug: str, q: dict) -> None:
        site = self.site
        doc = site.docs.get(slug)
        if doc is None:
            return self.send(404, b"no such document", "text/plain")
        mode = site.mode[slug]
        if mode in {"500", "404", "429"}:
            return self.send(int(mode), f"error {mode}".encode(), "text/plain",
                             {"Retry-After": "1"} if mode == "429" else None)
        if mode == "timeout":
            time.sleep(120)
            return
        if mode == "slow":
            time.sleep(3)
        if mode == "redirect" and "hop" not in q:
            return self.send(302, b"", "text/plain", {"Location": f"/docs/{slug}?hop=1"})
        if mode == "empty":
            return self.send(200, b"", "text/html; charset=utf-8")
        if mode == "garbage":
            return self.send(200, bytes(random.getrandbits(8) for _ in range(4096)), "text/html")
        v = int(q["v"]) if "v" in q else site.current[slug]
        v = max(0, min(v, len(doc.versions) - 1))
        return self.html_page(doc, v, selector_gone=(mode == "selector_gone"))

    def html_page(self, doc: Document, v: int, *, selector_gone: bool = False) -> None:
        headers: dict[str, str] = {"Cache-Control": "no-cache"}
        if self.site.validators and not selector_gone:
            etag = '"' + hashlib.sha1(f"{doc.slug}:{v}".encode()).hexdigest()[:16] + '"'
            modified = doc.date(v)
            headers |= {"ETag": etag, "Last-Modified": format_datetime(modified, usegmt=True)}
            inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
            fresh = inm == etag if inm else False
            if not inm and ims:
                try:
                    fresh = parsedate_to_datetime(ims) >= modified.replace(microsecond=0)
                except (TypeError, ValueError):
                    fresh = False
            if fresh:
                return self.send(304, b"", "text/html; charset=utf-8", headers)
        body = page(doc, v, selector_gone=selector_gone).encode()
        return self.send(200, body, "text/html; charset=utf-8", headers)

    def bulk(self, i: int) -> None:
        docs = list(self.site.docs.values())
        doc = docs[i % len(docs)]
        v = (i // len(docs)) % len(doc.versions)
        return self.html_page(doc, v)

    def feed(self) -> None:
        site = self.site
        host = self.headers.get("Host", "127.0.0.1")
        entries = []
        for s, d in site.docs.items():
            v = site.current[s]
            entries.append(
                f"<entry><id>urn:policy:{s}:{v}</id><title>{html.escape(d.title)} updated</title>"
                f'<link href="http://{host}/docs/{s}?v={v}"/><updated>{d.date(v).isoformat()}</updated>'
                f"<summary>Version {v} of {html.escape(d.title)}</summary></entry>")
        body = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
                f"<id>urn:policy-site</id><title>Policy updates</title>"
                f"<updated>{datetime.now(UTC).isoformat()}</updated>{''.join(entries)}</feed>")
        return self.send(200, body.encode(), "application/atom+xml")

    def regs(self) -> None:
        site = self.site
        host = self.headers.get("Host", "127.0.0.1")
        results = []
        for s, d in site.docs.items():
            v = site.current[s]
            results.append({"document_number": f"{s}-{v}", "title": d.title, "type": "Rule",
                            "publication_date": d.date(v).date().isoformat(),
                            "html_url": f"http://{host}/docs/{s}?v={v}",
                            "abstract": f"Version {v} of {d.title}."})
        return self.json({"count": len(results), "results": results})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parent.parent / "fixtures" / "pga")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8700)
    ap.add_argument("--no-validators", action="store_true", help="send no ETag/Last-Modified, never 304")
    args = ap.parse_args()
    Handler.site = Site(args.corpus, validators=not args.no_validators)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"policy site on http://{args.host}:{args.port} serving {len(Handler.site.docs)} documents", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
