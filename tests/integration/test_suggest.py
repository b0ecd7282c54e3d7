"""Suggested SOPs for changes that touched none: the BM25 ranking on the corpus, accept and dismiss."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tests.integration.test_web import login
from tests.support.web_seed import USERS, add_users, seed
from tracker.config import Settings
from tracker.impacts.suggest import change_query, rank, sop_documents, suggest, tokens
from tracker.store.db import session_scope
from tracker.store.models import AuditEvent, Change, Impact, Sop
from tracker.web import create_app

# SOPs no corpus change is mapped to, so the right SOP has to beat them.
DISTRACTORS = {
    "SOP-AD-002": "Advertising partners and sponsored content review",
    "SOP-PAY-003": "Payments, refunds and subscription billing disputes",
    "SOP-MIN-004": "Minor safety and age verification escalations",
    "SOP-IP-005": "Copyright and trademark takedown notices",
    "SOP-LE-006": "Law enforcement data requests",
    "SOP-MUS-008": "Music licensing and artist royalties",
}


@pytest.fixture
def seeded(engine: Engine) -> None:
    with session_scope(engine) as s:
        seed(s, versions=5)
        add_users(s)
        for sop_id, title in DISTRACTORS.items():
            s.add(Sop(id=sop_id, title=title, owner="o@example.com", team_id="support", watches=[]))


def test_tokens_drop_short_and_common_words() -> None:
    assert tokens("The user's DATA, and 12 of its rights") == ["user", "data", "rights"]


def test_held_back_changes_rank_their_sop_in_the_top_3(engine: Engine, seeded: None) -> None:
    hits = total = 0
    with Session(engine) as s:
        mapped = s.exec(select(Impact.change_id, Impact.sop_id)).all()
        by_change: dict[int, set[str]] = {}
        for change_id, sop_id in mapped:
            by_change.setdefault(change_id, set()).add(sop_id)
        for change_id, sops in sorted(by_change.items()):
            change = s.get(Change, change_id)
            assert change is not None
            # Held back: the change's own impacts are not part of what the SOPs are known by.
            top = [x.sop_id for x in rank(change_query(change), sop_documents(s, exclude_change=change_id))]
            total += 1
            hits += bool(sops & set(top))
    assert total > 3
    print(f"\nsuggestions: accepted-impact SOP in the top 3 for {hits} of {total} held-back changes "
          f"({100 * hits / total:.0f}%)")


def test_accept_and_dismiss_from_the_change_page(engine: Engine, seeded: None, db_url: str) -> None:
    with session_scope(engine) as s:
        change = s.exec(select(Change).where(col(Change.source_id) == "x-privacy-policy")
                        .order_by(col(Change.id).desc())).first()
        assert change is not None
        for imp in s.exec(select(Impact).where(Impact.change_id == change.id)).all():
            s.delete(imp)  # now a change that touched no SOP
        change_id = change.id
    with Session(engine) as s:
        c = s.get(Change, change_id)
        assert c is not None
        offered = suggest(s, c)
    assert offered and len(offered) <= 3
    settings = Settings(database_url=db_url, secret_key="test-secret-key-0123456789")
    with TestClient(create_app(settings), follow_redirects=False) as client:
        csrf = login(client, "editor")
        page = client.get(f"/changes/{change_id}").text
        assert "SOPs this change may concern" in page and offered[0].sop_id in page
        first, second = offered[0].sop_id, offered[-1].sop_id
        if len(offered) > 1:
            r = client.post(f"/changes/{change_id}/suggestions/{second}/dismiss", data={"csrf_token": csrf})
            assert r.status_code == 303
        r = client.post(f"/changes/{change_id}/suggestions/{first}/accept", data={"csrf_token": csrf})
        assert r.status_code == 303
        assert client.post(f"/changes/{change_id}/suggestions/{first}/accept").status_code in (400, 403)
    with Session(engine) as s:
        imp = s.exec(select(Impact).where(Impact.change_id == change_id, Impact.sop_id == first)).one()
        assert imp.reasons == [{"suggested": f"suggested, accepted by {USERS['editor']}"}]
        created = s.exec(select(AuditEvent).where(AuditEvent.action == "impact.created",
                                                  AuditEvent.entity_id == str(imp.id))
                         .order_by(col(AuditEvent.seq).desc())).first()
        assert created is not None and created.actor == USERS["editor"]
        if len(offered) > 1:
            dismissed = s.exec(select(AuditEvent).where(AuditEvent.action == "suggestion.dismissed")).one()
            assert dismissed.after == {"sop_id": second} and dismissed.actor == USERS["editor"]
            s.delete(imp)
            s.commit()
            c = s.get(Change, change_id)
            assert c is not None and second not in [x.sop_id for x in suggest(s, c)]



def test_the_digest_suggests_sops_for_changes_that_touched_none(engine: Engine, seeded: None, db_url: str) -> None:
    from tracker.notify.digest import build_digests
    from tracker.notify.render import render_digest

    with session_scope(engine) as s:
        change = s.exec(select(Change).where(col(Change.source_id) == "x-privacy-policy")
                        .order_by(col(Change.id).desc())).first()
        assert change is not None
        for imp in s.exec(select(Impact).where(Impact.change_id == change.id)).all():
            s.delete(imp)
        change_id = change.id
    settings = Settings(database_url=db_url, digest_everything_to=["all@example.com"])
    with Session(engine) as s:
        contents = build_digests(session=s, settings=settings, since=datetime_min(s), to=["all@example.com"])
    items = [c for c in contents[0].changes if c.change_id == change_id]
    assert items and items[0].suggested and items[0].suggested[0].startswith("SOP-")
    rendered = render_digest(contents[0], base_url="http://127.0.0.1:8000", timezone="UTC")
    assert "May concern: " + items[0].suggested[0] in rendered.text


def datetime_min(s: Session) -> datetime:
    first = s.exec(select(Change).order_by(col(Change.detected_at))).first()
    assert first is not None
    return first.detected_at
