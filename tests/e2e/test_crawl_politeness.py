"""Politeness, end to end: the real `tracker crawl` against a local server that notes every request it
serves, how many it was serving at once (per host and overall) and when each began.

Politeness is a promise of the product: at most TRACKER_CONCURRENCY_PER_DOMAIN requests in flight to
a host (or the host's `options.concurrency`), at most TRACKER_CONCURRENCY overall, and the host's
download delay between the starts of two requests to it. Two host names of one server (127.0.0.1 and
localhost) are two hosts to the crawler, so one server shows both limits. Each response takes a while
(PAGE_SECONDS), long enough that requests let through together are seen together. The asserts are on
behaviour (counts, limits, gaps of at least the configured delay), never on how fast a crawl went.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import run_tracker
from tests.e2e.test_crawl_e2e import crawl, fixed, rows

PAGE_SECONDS = 0.1
HOSTS = ("127.0.0.1", "localhost")


@dataclass
class Traffic:
    """What the server saw: requests served, the most in flight at once, when each began (per host)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: Counter[str] = field(default_factory=Counter)
    most: Counter[str] = field(default_factory=Counter)
    total: int = 0
    most_total: int = 0
    starts: dict[str, list[float]] = field(default_factory=dict)
    served: Counter[tuple[str, str]] = field(default_factory=Counter)

    def begin(self, host: str, path: str) -> None:
        with self.lock:
            self.in_flight[host] += 1
            self.total += 1
            self.most[host] = max(self.most[host], self.in_flight[host])
            self.most_total = max(self.most_total, self.total)
            self.starts.setdefault(host, []).append(time.monotonic())
            self.served[host, path] += 1

    def end(self, host: str) -> None:
        with self.lock:
            self.in_flight[host] -= 1
            self.total -= 1

    def gaps(self, host: str) -> list[float]:
        """Seconds between the starts of consecutive requests to the host (robots.txt included)."""
        starts = sorted(self.starts.get(host, []))
        return [b - a for a, b in zip(starts, starts[1:], strict=False)]


class SlowHandler(BaseHTTPRequestHandler):
    """Pages at /p/NAME (HTML, or JSON for /p/NAME.json), each answered after PAGE_SECONDS; an empty
    robots.txt (everything allowed), answered just as slowly: it is a request to the host too."""

    traffic: Traffic
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        self.traffic.begin(host, self.path)
        try:
            time.sleep(PAGE_SECONDS)
            name = self.path.rsplit("/", 1)[-1]
            if self.path == "/robots.txt":
                body, ctype = b"User-agent: *\nAllow: /\n", "text/plain"
            elif name.endswith(".json"):
                body, ctype = json.dumps({"policy": f"The {name} policy."}).encode(), "application/json"
            else:
                body = (f"<html><head><title>{name}</title></head><body><article class='policy'>"
                        f"<h1>{name}</h1><p>The {name} policy, served on {host}.</p></article></body></html>"
                        ).encode()
                ctype = "text/html; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            self.traffic.end(host)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the http.server API)
        pass


@dataclass
class Server:
    port: int
    traffic: Traffic

    def url(self, host: str, name: str) -> str:
        return f"http://{host}:{self.port}/p/{name}"


@pytest.fixture
def server() -> Iterator[Server]:
    traffic = Traffic()
    handler = type("Handler", (SlowHandler,), {"traffic": traffic})
    # A listen backlog above any limit tested: with the default 5, connections opened together beyond it
    # wait for the client's SYN retry (a second), which would look like a limit the crawler never had.
    server_cls = type("Listener", (ThreadingHTTPServer,), {"request_queue_size": 64})
    httpd = server_cls(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(httpd.server_address[1], traffic)
    finally:
        httpd.shutdown()
        httpd.server_close()


def sync(db_url: str, tmp_path: Path, sources: list[dict[str, Any]]) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({"sources": sources}, sort_keys=False))
    out = run_tracker(db_url, "sources", "sync", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


def page(server: Server, host: str, name: str, **options: Any) -> dict[str, Any]:
    """A source watching one of the server's pages (JSON when the name ends in .json)."""
    src: dict[str, Any] = {"id": name.replace(".", "-"), "name": name, "url": server.url(host, name),
                           "select": "policy" if name.endswith(".json") else ["article.policy"]}
    if name.endswith(".json"):
        src["kind"] = "json"
    if options:
        src["options"] = options
    return src


def checked_all(db_url: str, server: Server, sources: list[dict[str, Any]], counts: dict[str, int]) -> None:
    """Every source was checked: the crawl counts each as new, each has its version, and the server
    served each page exactly once (keeping to the limits left nothing out)."""
    fixed(counts, new=len(sources))
    assert rows(db_url, "version") == len(sources)
    pages = Counter({k: n for k, n in server.traffic.served.items() if k[1] != "/robots.txt"})
    assert pages == Counter((urlsplit(s["url"]).hostname, urlsplit(s["url"]).path) for s in sources)


def limits(server: Server, per_host: dict[str, int], overall: int) -> None:
    """The most requests in flight at once: per host exactly its limit (kept, and used), overall at most
    TRACKER_CONCURRENCY."""
    assert dict(server.traffic.most) == per_host
    assert server.traffic.most_total <= overall


def test_per_host_and_overall_limits_hold(db_url: str, server: Server, tmp_path: Path) -> None:
    """30 sources over two hosts, 2 per host and 3 overall: neither limit is passed, and both are reached
    (a limit kept by crawling one page at a time would not be politeness but slowness)."""
    sources = [page(server, HOSTS[i % 2], f"page{i:02d}") for i in range(30)]
    sync(db_url, tmp_path, sources)
    checked_all(db_url, server, sources, crawl(db_url, TRACKER_CONCURRENCY="3", TRACKER_CONCURRENCY_PER_DOMAIN="2"))
    limits(server, {"127.0.0.1": 2, "localhost": 2}, overall=3)
    assert server.traffic.most_total == 3


def test_limit_of_two_per_host_with_room_overall(db_url: str, server: Server, tmp_path: Path) -> None:
    """30 sources on one host, 2 per host, 8 overall: 2 at a time, however much room is left overall."""
    sources = [page(server, "127.0.0.1", f"page{i:02d}") for i in range(30)]
    sync(db_url, tmp_path, sources)
    checked_all(db_url, server, sources, crawl(db_url, TRACKER_CONCURRENCY="8", TRACKER_CONCURRENCY_PER_DOMAIN="2"))
    limits(server, {"127.0.0.1": 2}, overall=8)


def test_a_wide_limit_is_used(db_url: str, server: Server, tmp_path: Path) -> None:
    """8 per host and 8 overall: the crawl keeps 8 requests in flight, so keeping the limits does not
    serialise a crawl that may go wider."""
    sources = [page(server, "127.0.0.1", f"page{i:02d}") for i in range(30)]
    sync(db_url, tmp_path, sources)
    checked_all(db_url, server, sources, crawl(db_url, TRACKER_CONCURRENCY="8", TRACKER_CONCURRENCY_PER_DOMAIN="8"))
    limits(server, {"127.0.0.1": 8}, overall=8)


def test_source_concurrency_option_limits_its_host(db_url: str, server: Server, tmp_path: Path) -> None:
    """`options.concurrency: 1` on a host's sources: one request at a time there, while the other host
    keeps the default limit (3 here)."""
    sources = [page(server, "127.0.0.1", f"one{i:02d}", concurrency=1) for i in range(12)]
    sources += [page(server, "localhost", f"three{i:02d}") for i in range(12)]
    sync(db_url, tmp_path, sources)
    checked_all(db_url, server, sources, crawl(db_url, TRACKER_CONCURRENCY="8", TRACKER_CONCURRENCY_PER_DOMAIN="3"))
    limits(server, {"127.0.0.1": 1, "localhost": 3}, overall=8)


def test_kinds_share_their_host_limit(db_url: str, server: Server, tmp_path: Path) -> None:
    """HTML and JSON sources on one host (each kind has its own spider): the host's limit is the
    host's, not each kind's; and the overall limit is the crawl's."""
    sources = [page(server, "127.0.0.1", f"page{i:02d}") for i in range(12)]
    sources += [page(server, "127.0.0.1", f"doc{i:02d}.json") for i in range(12)]
    sources += [page(server, "localhost", f"page{i:02d}") for i in range(12)]
    sources += [page(server, "localhost", f"doc{i:02d}.json") for i in range(12)]
    for src in sources[24:]:
        src["id"] = f"lh-{src['id']}"
    sync(db_url, tmp_path, sources)
    checked_all(db_url, server, sources, crawl(db_url, TRACKER_CONCURRENCY="3", TRACKER_CONCURRENCY_PER_DOMAIN="2"))
    limits(server, {"127.0.0.1": 2, "localhost": 2}, overall=3)


def test_download_delay_spaces_requests(db_url: str, server: Server, tmp_path: Path) -> None:
    """TRACKER_DOWNLOAD_DELAY on one host, a longer `options.download_delay` on the other: requests to a
    host, its robots.txt among them, start at least the delay apart. Scrapy draws each wait between
    0.5x and 1.5x the delay, so the floor is half the delay (less a little for the clocks)."""
    delay, option = 0.2, 0.4
    sources = [page(server, "127.0.0.1", f"slow{i:02d}", download_delay=option) for i in range(6)]
    sources += [page(server, "localhost", f"page{i:02d}") for i in range(6)]
    sync(db_url, tmp_path, sources)
    checked_all(db_url, server, sources, crawl(db_url, TRACKER_DOWNLOAD_DELAY=str(delay)))
    traffic = server.traffic
    assert max(traffic.most.values()) <= 2, dict(traffic.most)
    slack = 0.02
    for host, wait in (("127.0.0.1", option), ("localhost", delay)):
        gaps = traffic.gaps(host)
        assert len(gaps) == 6, (host, gaps)  # robots.txt and six pages
        assert min(gaps) >= 0.5 * wait - slack, (host, gaps)
