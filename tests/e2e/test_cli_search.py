"""`tracker search`, and --since/--until/--team on changes, impacts and the audit log, as subprocesses."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tests.integration.test_search import inserted_phrase
from tests.support.web_seed import seed
from tracker.store.db import session_scope
from tracker.store.models import Change, Impact, Sop


def test_search_and_date_ranges(engine: Engine, db_url: str, tracker: Any) -> None:
    with session_scope(engine) as s:
        seed(s, versions=4)
    with Session(engine) as s:
        change, phrase = inserted_phrase(s)
        changes = list(s.exec(select(Change).order_by(col(Change.detected_at))).all())
        support = {i.id for i, sop in s.exec(select(Impact, Sop).join(Sop, col(Sop.id) == col(Impact.sop_id)))
                   if sop.team_id == "support"}
    r = tracker(db_url, "search", f'"{phrase}"', "--json")
    assert r.returncode == 0, r.stderr
    assert str(change.id) in [h["ref"] for h in json.loads(r.stdout)]
    r = tracker(db_url, "search", f'"{phrase}"')
    assert f"change #{change.id} in {change.source_id}" in r.stdout and "[" in r.stdout
    assert tracker(db_url, "search", "x", "--kind", "bogus").returncode == 2

    cut = (changes[-1].detected_at - timedelta(seconds=1)).isoformat()
    later = json.loads(tracker(db_url, "changes", "list", "--since", cut, "--json").stdout)
    earlier = json.loads(tracker(db_url, "changes", "list", "--until", cut, "--json").stdout)
    assert {c["id"] for c in later} | {c["id"] for c in earlier} == {c.id for c in changes}
    assert not {c["id"] for c in later} & {c["id"] for c in earlier}
    r = tracker(db_url, "changes", "list", "--since", "2026-02-01", "--until", "2026-01-01")
    assert r.returncode == 2 and "is not before --until" in r.stderr

    team = json.loads(tracker(db_url, "impacts", "list", "--team", "support", "--status", "open", "--json").stdout)
    assert team and {i["id"] for i in team} <= support
    assert tracker(db_url, "impacts", "list", "--team", "nope").returncode == 2
    assert "no audit events match" in tracker(db_url, "audit", "log", "--until", "2000-01-01").stdout
