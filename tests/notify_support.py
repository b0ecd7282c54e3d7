"""A real local HTTP receiver for channel deliveries, and a seeded database with team channels."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlmodel import Session

from tests.support.web_seed import seed
from tracker.store.models import Sop, Team


@dataclass
class Receiver:
    """What the receiver got, and how it answers: "ok", "500" or "slow" (answers after 3 s)."""

    base: str
    mode: str = "ok"
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r["json"] for r in self.requests]


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A threaded HTTP server on 127.0.0.1 recording every POST (path, headers, JSON body)."""
    state = Receiver(base="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "json": json.loads(raw or b"null")})
            if state.mode == "slow":
                time.sleep(3)
            code = 500 if state.mode == "500" else 200
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if code == 200 else b"boom")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def seed_with_channels(session: Session, channels: list[str], *, alert: str | None = "immediate") -> None:
    """The web seed (teams, SOPs, impacts just mapped), trust-safety notified on `channels`."""
    seed(session, versions=3)
    team = session.get(Team, "trust-safety")
    assert team is not None
    team.notify = channels
    session.add(team)
    for sop_id in ("SOP-TS-001", "SOP-TS-007"):
        sop = session.get(Sop, sop_id)
        assert sop is not None
        sop.alert = alert
        session.add(sop)
    session.commit()
