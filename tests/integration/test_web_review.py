"""Impact review on one screen: the impact's excerpt, the dashboard's matched sections, the change's TOC."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tests.integration.test_web import login
from tests.support.web_seed import Seeded, seed_with_users
from tracker.config import Settings
from tracker.store.models import Impact
from tracker.web import create_app
from tracker.web.review import matched_sections, section_anchor


@pytest.fixture
def seeded(engine: Engine) -> Seeded:
    return seed_with_users(engine, versions=4)


@pytest.fixture
def client(db_url: str, seeded: Seeded) -> Iterator[TestClient]:
    settings = Settings(database_url=db_url, secret_key="test-secret-key-0123456789")
    with TestClient(create_app(settings), follow_redirects=False) as c:
        yield c


def _sectioned_impact(engine: Engine) -> Impact:
    with Session(engine) as s:
        for imp in s.exec(select(Impact)).all():
            if matched_sections(imp):
                return imp
    raise AssertionError("the seed maps no impact by section")


def test_impact_page_shows_the_matched_excerpt_reasons_and_actions(client: TestClient, engine: Engine) -> None:
    login(client, "editor")
    imp = _sectioned_impact(engine)
    page = client.get(f"/impacts/{imp.id}").text
    assert "What changed in the matched section" in page
    section = matched_sections(imp)[0]
    anchor = section_anchor(section)
    assert f'href="/changes/{imp.change_id}#{anchor}"' in page
    assert "<ins>" in page or "<del>" in page
    assert 'class="tag tag-matched">matched' in page
    assert f'action="/impacts/{imp.id}/status"' in page


def test_dashboard_rows_show_the_matched_sections(client: TestClient, engine: Engine) -> None:
    login(client, "viewer")
    imp = _sectioned_impact(engine)
    page = client.get("/").text
    found = re.findall(r'matched <span class="matched-sections">([^<]*)</span>', page)
    assert found, "no dashboard row names its matched sections"
    assert any(matched_sections(imp)[0].replace(">", "&gt;") in f for f in found)


def test_change_page_toc_marks_and_anchors_the_matched_sections(client: TestClient, engine: Engine) -> None:
    login(client, "viewer")
    imp = _sectioned_impact(engine)
    page = client.get(f"/changes/{imp.change_id}").text
    anchor = section_anchor(matched_sections(imp)[0])
    assert 'aria-labelledby="toc-head"' in page
    assert f'href="#{anchor}"' in page
    assert page.count(f'id="{anchor}"') == 1  # a section that comes back later keeps one anchor
    assert f'<a href="/impacts/{imp.id}">impact #{imp.id}</a>' in page
    assert "diff-matched" in page
