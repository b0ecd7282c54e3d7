"""The Federal Register and eCFR stand-ins for end-to-end tests, as a real subprocess on a free
port of 127.0.0.1: the project's shared ../shared/tools/policy_site.py when it exists, else the
vendored copy under tests/support/regs/, both serving tests/fixtures/regs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "regs"
SHARED = Path("/work/shared/tools/policy_site.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RegsSite:
    """A running stand-in: its base URL and its clocks."""

    def __init__(self, base: str):
        self.base = base

    def control(self, verb: str, **params: str) -> Any:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        with urlopen(f"{self.base}/_control/{verb}?{query}", timeout=10) as r:
            return json.loads(r.read())

    def fr_publish(self, until: str) -> Any:
        return self.control("fr_publish", until=until)

    def ecfr_asof(self, date: str) -> Any:
        return self.control("ecfr_asof", date=date)


@contextmanager
def serve_regs(regs: Path = FIXTURES) -> Iterator[RegsSite]:
    """Start the stand-in and wait until it answers; stop it afterwards."""
    port = _free_port()
    script = [str(SHARED)] if SHARED.exists() else [str(HERE / "regs" / "serve.py")]
    proc = subprocess.Popen([sys.executable, *script, "--regs", str(regs), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    site = RegsSite(f"http://127.0.0.1:{port}")
    try:
        for _ in range(200):
            try:
                site.control("fr_publish")
                break
            except (URLError, OSError):
                if proc.poll() is not None:
                    raise RuntimeError(f"the regs stand-in exited: {proc.stderr.read() if proc.stderr else ''!r}")  # noqa: B904
                time.sleep(0.05)
        yield site
    finally:
        proc.terminate()
        proc.wait(timeout=10)
