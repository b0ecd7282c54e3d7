"""`tracker status` shows notification state: messages sent in the last day and deliveries failing now."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy.engine import Engine

from tests.conftest import run_tracker
from tracker.store.db import session_scope, utcnow
from tracker.store.models import Delivery


def test_status_shows_sent_and_failing_deliveries(db_url: str, engine: Engine) -> None:
    now = utcnow()
    out = run_tracker(db_url, "status")
    assert out.returncode == 0, out.stderr
    assert "notify:    0 sent in the last 24h\n" in out.stdout
    with session_scope(engine) as s:
        s.add(Delivery(channel="team:trust#1", message_key="alert:1", kind="alert", target="slack://***@T0/B0",
                       status="sent", attempts=1, created_at=now - timedelta(hours=2),
                       updated_at=now - timedelta(hours=2)))
        s.add(Delivery(channel="team:trust#1", message_key="alert:0", kind="alert", target="slack://***@T0/B0",
                       status="sent", attempts=1, created_at=now - timedelta(days=3),
                       updated_at=now - timedelta(days=3)))
        s.add(Delivery(channel="team:legal#1", message_key="failure:src", kind="failure",
                       target="mailto://***@mail.example", status="failed", attempts=3,
                       error="connection refused\x1b[31m\x07", created_at=now - timedelta(hours=1),
                       updated_at=now - timedelta(minutes=5)))
    out = run_tracker(db_url, "status")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    notify = next(i for i, line in enumerate(lines) if line.startswith("notify:"))
    assert lines[notify].startswith("notify:    1 sent in the last 24h (last 2h ago); 1 FAILING")
    assert lines[notify + 1].strip().startswith("failure to mailto://***@mail.example: 3 attempt(s) since ")
    assert "connection refused" in lines[notify + 1] and "\x1b" not in out.stdout and "\x07" not in out.stdout
    data = json.loads(run_tracker(db_url, "status", "--json").stdout)["notifications"]
    assert data["sent_24h"] == 1 and data["failing"] == 1
    assert [d["target"] for d in data["failing_shown"]] == ["mailto://***@mail.example"]
