"""The whole path a PM takes in the browser, in Debian's Chromium against `tracker serve`, on a real policy site:
log in as an editor, add a source with the rule preview, save, check now, see the first version on the
source page, add an SOP with a watch picked from the section tree, move the page to its next real
version, check now, see the impact on the dashboard, mark it. No YAML, no shell."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tests.conftest import PolicySite
from tests.e2e.test_browser_e2e import CHROMIUM, CHROMIUM_ARGS, Server, _need_chromium
from tests.support.web_seed import PASSWORD, USERS, add_users
from tracker.store.db import session_scope
from tracker.store.models import AuditEvent, CheckRequest, Impact, Sop, Source, Team

pytestmark = pytest.mark.slow

SLUG = "reddit-community-guidelines"
SECTION = "What constitutes spam? Am I a spammer?"  # in version 0, changed by version 1; '?' is a glob character


@pytest.fixture
def server(db_url: str, engine: Engine) -> Iterator[Server]:
    _need_chromium()
    with session_scope(engine) as s:
        add_users(s)
        s.add(Team(id="trust-safety", name="Trust & Safety", members=[USERS["editor"]]))
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
            p = browser.new_page(viewport={"width": 1400, "height": 1000})
            p.set_default_timeout(30_000)
            errors: list[str] = []
            # (The browser's own request for /favicon.ico is no page's: the app serves none.)
            p.on("console", lambda m: errors.append(f"{m.text} {m.location}")
                 if m.type == "error" and not str(m.location.get("url", "")).endswith("/favicon.ico") else None)
            p.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            p.errors = errors
            yield p
        finally:
            browser.close()


def _check_now(page: Any, outcome: str) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name="Check now").click()
    # The script follows the request (queued -> running -> done) and reloads the page with the outcome.
    expect(page.locator("#check-status .check-outcome")).to_have_text(outcome, timeout=120_000)
    expect(page.locator("#check-status .check-state")).to_have_text("done")


def test_a_pm_manages_a_source_and_an_sop_in_the_browser(server: Server, page: Any, engine: Engine,
                                                         policy_site: PolicySite) -> None:
    from playwright.sync_api import expect

    base = server.base
    page.goto(base + "/login")
    page.get_by_label("Email").fill(USERS["editor"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Open impacts")).to_be_visible()

    # Add a source, previewing its rules first: the whole <main> holds a "Trending now" box that changes on
    # every request; the preview finds it and suggests the rule that drops it.
    page.get_by_role("link", name="Sources", exact=True).click()
    page.get_by_role("link", name="Add a source").click()
    form = page.locator("#source-form")
    form.locator("[name=id]").fill("pm-reddit")
    form.locator("[name=name]").fill("Reddit rules (PM)")
    form.locator("[name=url]").fill(policy_site.url(SLUG))
    form.locator("[name=select]").fill("main")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    expect(preview.locator("#preview-status")).to_contain_text("blocks in")
    expect(preview.locator("#preview-sections")).to_contain_text(SECTION)
    expect(preview.locator("#preview-volatile")).to_contain_text("Trending now")
    expect(preview.locator("#preview-suggested")).to_contain_text("remove: aside.related")
    preview.get_by_role("button", name="Add to remove").click()
    expect(form.locator("[name=remove]")).to_have_value("aside.related")
    page.get_by_role("button", name="Preview").click()
    expect(preview.locator("#preview-volatile")).to_contain_text("None: the fetches gave the same text")
    page.get_by_role("button", name="Add the source").click()
    expect(page).to_have_url(base + "/sources/pm-reddit")
    expect(page.locator(".flash")).to_contain_text("source pm-reddit added")
    expect(page.locator("#history")).to_be_visible()
    expect(page.locator("ol.timeline li")).to_have_count(1)
    expect(page.locator("ol.timeline")).to_contain_text(f"added by {USERS['editor']}")

    # Check now: the first version, on the source page.
    _check_now(page, "new")
    timeline = page.locator("ol.timeline")
    expect(timeline.locator("li").filter(has_text="first version")).to_be_visible()
    expect(page.locator("#sections + p + table")).to_contain_text(SECTION)

    # An SOP with a watch picked from the source's real section tree; the builder tries it on past changes.
    page.get_by_role("link", name="SOPs").click()
    page.get_by_role("link", name="Add an SOP").click()
    sop = page.locator("#sop-form")
    sop.locator("[name=id]").fill("SOP-PM-1")
    sop.locator("[name=title]").fill("Spam reports")
    sop.locator("[name=owner]").fill(USERS["editor"])
    sop.locator("[name=team]").select_option("trust-safety")
    watch = page.locator("#watch-1")
    watch.locator("[name=watch-1-source]").select_option("pm-reddit")
    tree = watch.locator(".watch-tree")
    expect(tree).to_contain_text("Pick sections of the latest version")
    tree.get_by_label(SECTION).check()
    expect(watch.locator("[name=watch-1-sections]")).to_have_value("What constitutes spam[?] Am I a spammer[?]")
    expect(watch.locator(".watch-summary")).to_contain_text("matched 0 of the last 0 changes of pm-reddit")
    page.get_by_role("button", name="Add the SOP").click()
    expect(page).to_have_url(base + "/sops/SOP-PM-1")
    expect(page.locator(".flash")).to_contain_text("SOP SOP-PM-1 added")

    # The policy moves to its next real version; check now again.
    policy_site.next(SLUG)
    page.get_by_role("link", name="pm-reddit").first.click()
    expect(page).to_have_url(base + "/sources/pm-reddit")
    _check_now(page, "changed")
    change_link = timeline.locator("li").filter(has_text="change #").first.locator("a")
    expect(change_link).to_be_visible()

    # The impact on the dashboard, and marking it.
    page.get_by_role("link", name="Dashboard").click()
    group = page.locator("section.sop-group").filter(has_text="Spam reports")
    expect(group).to_be_visible()
    expect(group.locator(".matched-sections")).to_contain_text(SECTION)
    group.get_by_role("button", name="Needs update").first.click()
    expect(page.locator(".flash")).to_contain_text("marked needs update")
    assert not page.errors, page.errors  # nothing refused by the CSP, no script error

    with Session(engine) as s:
        src = s.get(Source, "pm-reddit")
        assert src is not None and src.managed_by == "ui" and src.remove == ["aside.related"]
        sop_row = s.get(Sop, "SOP-PM-1")
        assert sop_row is not None and sop_row.watches[0]["sections"] == ["What constitutes spam[?] Am I a spammer[?]"]
        impact = s.exec(select(Impact).where(Impact.sop_id == "SOP-PM-1")).one()
        assert impact.status == "needs_update" and impact.reasons[0]["sections"] == [SECTION]
        checks = s.exec(select(CheckRequest).order_by(col(CheckRequest.id))).all()
        assert [(c.state, c.outcome, c.requested_by) for c in checks] == [("done", "new", USERS["editor"]),
                                                                          ("done", "changed", USERS["editor"])]
        actions = [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.actor == USERS["editor"])
                                            .order_by(col(AuditEvent.seq))).all()]
        # Each thing the PM did, in order: the two presses of Check now among them.
        assert actions == ["source.added", "source.check_requested", "sop.added", "source.check_requested",
                           "impact.status"]
