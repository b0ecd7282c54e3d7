"""Hostile pages on a local HTTP server, and the real `tracker crawl` measured against them.

Shared by tests/e2e/test_hostile_pages.py (which asserts bounds) and bench/hostile.py (which prints
the figures): peak RSS comes from the crawl process itself (getrusage at exit), database growth
from the SQLite file.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

# 16 MB: 2,000,000 paragraphs of one character.
MANY_BLOCKS = b"<!doctype html><html><body>" + b"<p>x</p>" * 2_000_000 + b"</body></html>"
LONG_HEADING_TEXT = "Terms " * 9_000  # 54 KB


def long_heading_page(version: int = 0) -> bytes:
    """94 KB: a 54 KB <h1> above 5,000 short paragraphs (version changes every paragraph)."""
    paras = "".join(f"<p>{i} v{version}</p>" for i in range(5_000))
    return f"<!doctype html><html><body><h1>{LONG_HEADING_TEXT}</h1>{paras}</body></html>".encode()


ESCAPES_PAGE = (b"<!doctype html><html><body><h1>Terms\x1b]0;pwned\x07</h1>"
                b"<p>Clear\x1b[2J the screen\x1b[31m red</p></body></html>")


class HostileSite:
    """Serves /many, /long (its version settable), /escapes and /chunked (CHUNKED_BYTES, no length)."""

    CHUNKED_BYTES = 3 * 1024 * 1024

    def __init__(self) -> None:
        self.long_version = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/chunked":
                    return self._chunked()
                body = {"/many": MANY_BLOCKS, "/escapes": ESCAPES_PAGE}.get(self.path)
                if self.path == "/long":
                    body = long_heading_page(site.long_version)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _chunked(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"<p>" + b"y" * 65_000 + b"</p>"
                try:
                    for _ in range(HostileSite.CHUNKED_BYTES // len(chunk) + 1):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the crawler hung up: what the size limit does

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def hostile_site() -> Iterator[HostileSite]:
    site = HostileSite()
    try:
        yield site
    finally:
        site.close()


def write_sources(path: Path, site: HostileSite, *names: str) -> Path:
    """A sources file with one source per hostile page (id = the page's name)."""
    doc = {"sources": [{"id": n, "name": n, "url": f"{site.base}/{n}", "options": {"obey_robots": False}}
                       for n in names]}
    path.write_text(yaml.safe_dump(doc))
    return path


# Runs the CLI in a process that reports its own peak RSS at exit (exact, unlike sampling it).
_MEASURED = ("import atexit, resource, runpy, sys; "
             "atexit.register(lambda: sys.stderr.write("
             "'\\nPEAK_RSS_KB %d\\n' % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)); "
             "sys.argv = ['tracker', *sys.argv[1:]]; runpy.run_module('tracker', run_name='__main__')")


@dataclass
class Measured:
    """One measured `tracker` run."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float
    db_growth_mb: float


def sqlite_bytes(db_url: str) -> int:
    """The SQLite database's size (file and its write-ahead log)."""
    path = Path(db_url.removeprefix("sqlite:///"))
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def measured_run(db_url: str, *args: str, env: dict[str, str], timeout: float = 300) -> Measured:
    """Run `tracker ARGS` with env; its time, peak RSS and the database's growth."""
    before = sqlite_bytes(db_url)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _MEASURED, *args], env=env, capture_output=True, text=True,
                         timeout=timeout)
    seconds = time.perf_counter() - start
    m = re.search(r"PEAK_RSS_KB (\d+)", out.stderr)
    peak = int(m.group(1)) / 1024 if m else float("nan")
    return Measured(out.returncode, out.stdout, out.stderr, seconds, peak,
                    (sqlite_bytes(db_url) - before) / 1e6)
