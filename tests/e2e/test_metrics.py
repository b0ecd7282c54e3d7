"""`tracker metrics --json` and /metrics on a seeded database, against figures computed here independently."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tests.integration.test_web import login
from tests.support.web_seed import add_users, seed
from tracker.config import Settings
from tracker.store.db import session_scope
from tracker.store.models import Impact, Sop
from tracker.web import create_app

NOW = datetime.now(UTC).replace(microsecond=0)
SINCE, UNTIL = NOW - timedelta(days=30), NOW + timedelta(seconds=1)


def _decide(engine: Engine) -> list[dict[str, Any]]:
    """Give the seeded impacts known creation, decision and due times; return them as plain dicts."""
    plan: list[dict[str, Any]] = []
    with session_scope(engine) as s:
        impacts = sorted(s.exec(select(Impact)).all(), key=lambda i: i.id or 0)
        teams = {sop.id: sop.team_id for sop in s.exec(select(Sop)).all()}
        for n, imp in enumerate(impacts):
            imp.created_at = NOW - timedelta(days=20 - n % 15, hours=n)
            imp.due_date = (imp.created_at + timedelta(days=2 + n % 4)).date()
            if n % 3 != 2:
                imp.status = "updated" if n % 2 else "dismissed"
                imp.resolved_at = imp.created_at + timedelta(hours=5 + 17 * n)
                imp.resolved_by = "editor@example.com"
            else:
                imp.status, imp.resolved_at = "open", None
            s.add(imp)
            plan.append({"team": teams[imp.sop_id], "created": imp.created_at, "resolved": imp.resolved_at,
                         "due": imp.due_date, "status": imp.status})
    return plan


def _expected(plan: list[dict[str, Any]], team: str | None) -> dict[str, Any]:
    rows = [p for p in plan if team is None or p["team"] == team]
    decided = [p for p in rows if p["resolved"] is not None and SINCE <= p["resolved"] < UNTIL]
    hours = sorted((p["resolved"] - p["created"]).total_seconds() / 3600 for p in decided)
    mid = len(hours) // 2
    median = (hours[mid] if len(hours) % 2 else (hours[mid - 1] + hours[mid]) / 2) if hours else None
    rank = -(-9 * len(hours) // 10)  # ceil(0.9 n)
    with_due = [p for p in decided if p["due"] is not None]
    today = datetime.now(UTC).date()
    return {
        "opened": sum(1 for p in rows if SINCE <= p["created"] < UNTIL),
        "decided": len(decided),
        "median_hours": round(median, 2) if median is not None else None,
        "p90_hours": round(hours[rank - 1], 2) if hours else None,
        "on_time_share": round(sum(1 for p in with_due if p["resolved"].date() <= p["due"]) / len(with_due), 4)
        if with_due else None,
        "overdue_now": sum(1 for p in rows if p["status"] == "open" and p["due"] < today),
    }


@pytest.fixture
def plan(engine: Engine) -> list[dict[str, Any]]:
    with session_scope(engine) as s:
        seed(s, versions=5)
        add_users(s)
    return _decide(engine)


def test_metrics_json_matches_independent_figures(plan: list[dict[str, Any]], db_url: str, tracker: Any) -> None:
    r = tracker(db_url, "metrics", "--json", "--since", SINCE.isoformat(), "--until", UNTIL.isoformat())
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    keys = ("opened", "decided", "median_hours", "p90_hours", "on_time_share", "overdue_now")
    assert {k: got["total"][k] for k in keys} == _expected(plan, None)
    by_team = {t["key"]: t for t in got["teams"]}
    for team in {p["team"] for p in plan}:
        assert {k: by_team[team][k] for k in keys} == _expected(plan, team), team
    assert sum(w["opened"] for w in got["weeks"]) == got["total"]["opened"]
    assert sum(w["decided"] for w in got["weeks"]) == got["total"]["decided"]
    assert got["total"]["decided"] > 3 and got["total"]["overdue_now"] >= 0
    text = tracker(db_url, "metrics", "--since", SINCE.isoformat()).stdout
    assert "median hours to decision" in text and "trust-safety" in text


def _html_table(page: str, name: str) -> list[list[str]]:
    found = re.search(rf'<table class="metrics-table" data-table="{name}">(.*?)</table>', page, re.S)
    assert found, name
    rows = re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S)
    import html

    return [[html.unescape(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)] for r in rows]


def test_metrics_page_charts_and_csv_match_the_tables(plan: list[dict[str, Any]], db_url: str) -> None:
    settings = Settings(database_url=db_url, secret_key="test-secret-key-0123456789")
    with TestClient(create_app(settings), follow_redirects=False) as c:
        login(c, "viewer")
        params = {"since": SINCE.date().isoformat(), "until": NOW.date().isoformat()}
        r = c.get("/metrics", params=params)
        assert r.status_code == 200 and r.text.count('<svg class="chart"') == 4
        assert "<script" not in r.text
        for name in ("teams", "sops", "sources", "weeks"):
            got = c.get("/metrics.csv", params={**params, "table": name})
            assert got.headers["content-type"].startswith("text/csv")
            assert list(csv.reader(io.StringIO(got.text))) == _html_table(r.text, name), name
        assert c.get("/metrics", params={"team": "nope"}).status_code == 400
        assert c.get("/metrics.csv", params={"table": "nope"}).status_code == 400


def test_metrics_narrowed_to_one_team(engine: Engine, plan: list[dict[str, Any]]) -> None:
    from tracker.impacts.metrics import compute

    with Session(engine) as s:
        m = compute(session=s, since=SINCE, until=UNTIL, team="support")
    assert {t.key for t in m.teams} == {"support"}
    assert m.total.opened == _expected(plan, "support")["opened"]
