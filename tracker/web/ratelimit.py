"""Login rate limiting: failures counted per client address and email in a sliding window."""

from __future__ import annotations

import threading
import time
from collections import deque


class LoginLimiter:
    """At most `max_failures` failed logins per (address, email) within `window` seconds.

    Kept in the server's memory: one `tracker serve` process is one limiter (a restart forgets).
    """

    def __init__(self, *, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, address: str, email: str, *, now: float | None = None) -> float:
        """Seconds until this address may try this email again (0: it may now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self._recent((address, email), now)
            if len(times) < self.max_failures:
                return 0.0
            return max(0.0, times[0] + self.window - now)

    def failed(self, address: str, email: str, *, now: float | None = None) -> None:
        """Count one failed login."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._recent((address, email), now).append(now)
            if len(self._failures) > 10_000:  # bound memory under a spray of addresses
                for key in [k for k, v in self._failures.items() if not v][:5_000]:
                    del self._failures[key]

    def succeeded(self, address: str, email: str) -> None:
        """Forget the failures of an address and email that just logged in."""
        with self._lock:
            self._failures.pop((address, email), None)
