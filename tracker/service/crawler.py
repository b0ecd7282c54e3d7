"""Crawls in a subprocess: `tracker crawl ID … --quiet`, killed on timeout or when the service stops.

Scrapy's reactor starts once per process, and a hung or crashed crawl must be killable without
touching the scheduler; each source's check commits in one transaction inside the subprocess, so
a kill at any moment leaves the whole check or nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tracker.config import Settings

# `tracker crawl`'s exit code when SIGINT/SIGTERM stopped it (tracker.cli.app.EXIT_INTERRUPTED; the
# service does not import the CLI).
CRAWL_INTERRUPTED = 130


@dataclass
class CrawlResult:
    """How a crawl subprocess ended."""

    exit_code: int | None
    seconds: float
    output: str = ""
    killed: str | None = None  # "timeout" | "shutdown" when the service killed it

    @property
    def tail(self) -> str:
        lines = [ln for ln in self.output.strip().splitlines() if ln.strip()]
        return lines[-1][:500] if lines else ""


def crawl_env(settings: Settings) -> dict[str, str]:
    """The environment of a crawl subprocess: this process's, with every setting made explicit."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        key = f"TRACKER_{name.upper()}"
        if value is None:
            env.pop(key, None)
        else:
            env[key] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return env


class SubprocessCrawler:
    """Runs `python -m tracker crawl ID … --quiet` and kills it on timeout or when told to abandon it."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def run(self, source_ids: list[str], *, timeout: float, abandon: threading.Event) -> CrawlResult:
        """Run one crawl batch to its end, or kill it after timeout or on abandon."""
        started = time.monotonic()
        with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as out:
            proc = subprocess.Popen(self.command(source_ids), env=crawl_env(self.settings), stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            killed: str | None = None
            while proc.poll() is None:
                if abandon.is_set():
                    killed = "shutdown"
                elif time.monotonic() - started > timeout:
                    killed = "timeout"
                if killed:
                    self._kill(proc)
                    break
                abandon.wait(0.1)
            out.seek(0)
            return CrawlResult(proc.returncode, time.monotonic() - started, out.read()[-20000:], killed)

    def command(self, source_ids: list[str]) -> list[str]:
        """The crawl's command line (a Celery worker adds a guard that dies with it)."""
        return [sys.executable, "-m", "tracker", "crawl", *source_ids, "--quiet"]

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        # SIGKILL, not SIGTERM: Scrapy's graceful stop would wait for the hung request and then
        # record "no response" errors of its own. Each source's check commits in one transaction,
        # so a kill at any moment leaves either the whole check or nothing.
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the crawl and anything it started
        except ProcessLookupError:
            pass
        proc.wait()


Crawler = Callable[..., CrawlResult]
