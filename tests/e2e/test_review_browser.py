"""Review, search and the SLA page in a real headless Chromium against `tracker serve` (issue 18).

From the dashboard one click reaches an impact page that shows the matched excerpt and acts on it;
the change page's table of contents jumps to a matched section; /search finds a phrase a corpus
change inserted and one only in a source's current text; the /metrics charts render.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tests.e2e.test_browser_e2e import CHROMIUM, CHROMIUM_ARGS, Server, _need_chromium
from tests.integration.test_search import current_only_phrase, inserted_phrase
from tests.support.web_seed import PASSWORD, USERS, add_users, seed
from tracker.store.db import session_scope
from tracker.store.models import Impact
from tracker.web.review import matched_sections, section_anchor

pytestmark = pytest.mark.slow


@pytest.fixture
def server(db_url: str, engine: Engine) -> Iterator[Server]:
    _need_chromium()
    with session_scope(engine) as s:
        seed(s, versions=4)
        add_users(s)
    srv = Server(db_url)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def page(server: Server) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            p = browser.new_page(viewport={"width": 1280, "height": 800})
            p.set_default_timeout(20_000)
            p.goto(server.base + "/login")
            p.get_by_label("Email").fill(USERS["editor"])
            p.get_by_label("Password").fill(PASSWORD)
            p.get_by_role("button", name="Log in").click()
            p.wait_for_selector("h1:has-text('Open impacts')")
            yield p
        finally:
            browser.close()


def _sectioned_open_impact(engine: Engine) -> Impact:
    with Session(engine) as s:
        for imp in s.exec(select(Impact).where(Impact.status == "open").order_by(col(Impact.id))).all():
            if matched_sections(imp):
                return imp
    raise AssertionError("no open impact matched by section")


def test_one_click_from_the_dashboard_to_the_excerpt_and_act(server: Server, page: Any, engine: Engine) -> None:
    from playwright.sync_api import expect

    imp = _sectioned_open_impact(engine)
    page.locator(f'a[href="/impacts/{imp.id}"]').first.click()
    expect(page).to_have_url(f"{server.base}/impacts/{imp.id}")
    excerpt = page.locator("section[aria-labelledby=what-changed]")
    expect(excerpt.get_by_role("heading")).to_contain_text("What changed in the matched section")
    expect(excerpt.locator("ins, del").first).to_be_visible()
    expect(excerpt.locator(".tag-matched").first).to_be_visible()
    page.get_by_role("button", name="Needs update").first.click()
    expect(page.locator(".impact-status")).to_contain_text("needs update")
    with Session(engine) as s:
        assert s.get(Impact, imp.id).status == "needs_update"  # type: ignore[union-attr]


def test_change_page_toc_jumps_to_a_matched_section(server: Server, page: Any, engine: Engine) -> None:
    from playwright.sync_api import expect

    imp = _sectioned_open_impact(engine)
    anchor = section_anchor(matched_sections(imp)[0])
    page.goto(f"{server.base}/changes/{imp.change_id}")
    toc = page.locator("nav.toc")
    expect(toc.locator(".toc-matched").first).to_be_visible()
    toc.locator(f'a[href="#{anchor}"]').click()
    expect(page).to_have_url(f"{server.base}/changes/{imp.change_id}#{anchor}")
    expect(page.locator(f"#{anchor}")).to_be_in_viewport()
    expect(page.locator(f"#{anchor}")).to_have_class("diff-section diff-matched")


def test_search_finds_an_inserted_phrase_and_current_text(server: Server, page: Any, engine: Engine) -> None:
    from playwright.sync_api import expect

    with Session(engine) as s:
        change, phrase = inserted_phrase(s)
        source_id, words = current_only_phrase(s)
    page.get_by_role("link", name="Search").click()
    page.get_by_label("Search for").fill(f'"{phrase}"')
    page.get_by_role("button", name="Search").click()
    expect(page.locator(f'.search-hit a[href="/changes/{change.id}"]')).to_be_visible()
    expect(page.locator(".search-hit mark").first).to_be_visible()
    page.get_by_label("Search for").fill(words)
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".search-hit").filter(has_text=f"{source_id} (current text)")).to_be_visible()


def test_metrics_charts_render(server: Server, page: Any) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.get_by_role("link", name="SLA").click()
    expect(page.get_by_role("heading", name="Time from change to decision")).to_be_visible()
    charts = page.locator("svg.chart")
    expect(charts).to_have_count(4)
    for i in range(4):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 40
    bars = page.locator("svg.chart rect.series-0")
    assert bars.count() > 2
    assert not errors, errors  # nothing refused by the CSP
