"""A local HTTP server answering from a mutable table of routes, for crawl tests that need exact bytes,
redirects across host names, or slow answers (the policy site cannot send invalid UTF-8)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support import policy_site


@dataclass
class Route:
    """What one path answers."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/html; charset=utf-8"})
    delay: float = 0.0


class PageServer:
    """The routes, the port, and the paths requested so far."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requested: list[str] = []
        self.port = 0

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def real_page(slug: str, version: int) -> bytes:
    """The policy site's HTML page for a real corpus document (tests/fixtures/pga), as UTF-8 bytes."""
    doc = policy_site.Document(Path(__file__).resolve().parent.parent / "fixtures" / "pga" / slug)
    return policy_site.page(doc, version).encode("utf-8")


def _handler(server: PageServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            server.requested.append(f"{self.headers.get('Host', '').split(':')[0]}{self.path}")
            missing = Route(b"not found", 404, {"Content-Type": "text/plain"})
            route = server.routes.get(self.path.split("?")[0]) or missing
            if route.delay:
                time.sleep(route.delay)
            try:
                self.send_response(route.status)
                for k, v in route.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


@contextmanager
def serve_pages() -> Iterator[PageServer]:
    """A PageServer on a free port of 127.0.0.1 (also reachable as localhost: another host name)."""
    pages = PageServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(pages))
    httpd.daemon_threads = True
    pages.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield pages
    finally:
        httpd.shutdown()
        httpd.server_close()
