"""A Celery set-up for tests and benchmarks: a reachable broker, policy sites on 127.0.0.2…, subprocesses.

Each test gets its own Redis database number, so parallel runs never take each other's tasks.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, IN_CI, PolicySite

BROKER_ENV = "TRACKER_TEST_BROKER_URL"
DEFAULT_BROKER = "redis://127.0.0.1:6379"


def broker_url() -> str:
    """A reachable broker for one test (a random Redis database), or skip — and fail in CI."""
    base = os.environ.get(BROKER_ENV, DEFAULT_BROKER).rstrip("/")
    # Under pytest-xdist each worker draws from its own five databases, so parallel cluster tests never share one.
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) % 3
    db = 1 + 5 * worker + random.randrange(5)
    url = f"{base}/{db}" if base.startswith("redis") and base.count("/") == 2 else base
    try:
        from kombu import Connection

        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"CI=true but the Celery broker {url} is unreachable ({exc}); .ci/run starts Redis")
        pytest.skip(f"no Celery broker at {url} ({exc}); set {BROKER_ENV} or start redis-server")
    return url


@dataclass
class HostStats:
    """Requests in flight at one site, and the most there ever were."""

    inflight: int = 0
    peak: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def serve_counting_site(host: str, *, latency: float = 0.02) -> Iterator[tuple[PolicySite, HostStats]]:
    """The policy site on `host`, recording the peak of requests in flight (each slowed by `latency`)."""
    from tests.support import policy_site as ps

    stats = HostStats()

    class Counting(ps.Handler):  # type: ignore[misc]
        site = ps.Site(FIXTURES / "pga", validators=True)

        def do_GET(self) -> None:
            if self.path.startswith("/_control"):
                return super().do_GET()
            with stats.lock:
                stats.inflight += 1
                stats.requests += 1
                stats.peak = max(stats.peak, stats.inflight)
            try:
                time.sleep(latency)
                super().do_GET()
            finally:
                with stats.lock:
                    stats.inflight -= 1

    server = ThreadingHTTPServer((host, 0), Counting)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield PolicySite(f"http://{host}:{server.server_address[1]}"), stats
    finally:
        server.shutdown()
        server.server_close()


def sources_for(sites: list[PolicySite], per_host: int, schedule: str = "40s") -> list[dict[str, Any]]:
    """`per_host` distinct sources on each site, alternating between its two documents."""
    docs = sorted(p.name for p in (FIXTURES / "pga").iterdir() if (p / "index.json").exists())
    return [{"id": f"h{h}-s{i:03d}", "name": f"host {h} source {i}", "url": f"{site.url(docs[i % len(docs)])}?copy={i}",
             "select": ["article.policy"], "schedule": schedule}
            for h, site in enumerate(sites) for i in range(per_host)]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A `tracker` subprocess, its output in a log file (read it when an assertion fails)."""
    out = log.open("wb")
    return subprocess.Popen([sys.executable, "-m", "tracker", *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM, then wait (SIGKILL if it will not stop)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class BrokerProxy:
    """A TCP relay to the broker that can be cut and restored on the same port (a broker outage)."""

    def __init__(self, target: str):
        from urllib.parse import urlparse

        u = urlparse(target)
        self.target = (u.hostname or "127.0.0.1", u.port or 6379)
        self.path = u.path
        self.scheme = u.scheme
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.server: Any = None
        self.conns: list[Any] = []

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{self.path}"

    def up(self) -> None:
        import socket
        import socketserver

        proxy = self

        class Relay(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                upstream = socket.create_connection(proxy.target)
                proxy.conns += [self.request, upstream]
                pump = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
                pump.start()
                _pump(self.request, upstream)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Relay)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        for conn in self.conns:
            try:
                conn.close()
            except OSError:
                pass
        self.conns = []


def _pump(src: Any, dst: Any) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.close()
            except OSError:
                pass
