"""End to end in a real headless Chromium (Debian's package, driven by Playwright) against `tracker serve`:
log in, open a change from the dashboard, mark its SOP needs-update, see the status and the audit event."""

from __future__ import annotations

import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tests.conftest import IN_CI, tracker_env
from tests.support.web_seed import PASSWORD, USERS, add_users, seed
from tracker.store.db import session_scope
from tracker.store.models import AuditEvent, Impact

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

pytestmark = pytest.mark.slow


def _need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if IN_CI:
            pytest.fail("CI=true but Debian's chromium is not installed (.ci/run installs it with apt-get)")
        pytest.skip("chromium is not installed (apt-get install chromium)")


class Server:
    """`tracker serve` in a subprocess on a free port of 127.0.0.1."""

    def __init__(self, db_url: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tracker", "serve", "--host", "127.0.0.1", "--port", "0",
                                      "--log-level", "warning"], env=tracker_env(db_url),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.base = self._wait_for_address()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            self.lines.put(line)

    def _wait_for_address(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    time.sleep(0.5)  # let the reader collect the rest of the error
                    break
                continue
            if "tracker web UI on " in line:
                return line.split(" on ", 1)[1].split("/ ", 1)[0]
        self.stop()
        raise AssertionError("tracker serve did not start:\n" + "".join(self.log))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)


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


def test_log_in_open_a_change_mark_its_sop_and_see_the_audit_event(server: Server, engine: Engine) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.goto(server.base + "/")
            expect(page).to_have_url(server.base + "/login?next=%2F")
            page.get_by_label("Email").fill(USERS["editor"])
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("heading", name="Open impacts")).to_be_visible()

            # Open the first change listed on the dashboard (in the group of the most urgent SOP).
            link = page.locator("a.change-link").first
            change_path = link.get_attribute("href")
            assert change_path and change_path.startswith("/changes/")
            link.click()
            expect(page).to_have_url(server.base + change_path)
            expect(page.get_by_role("heading", name="What changed, section by section")).to_be_visible()
            expect(page.locator("ins").first).to_be_visible()

            row = page.locator("tr[id^=impact-]").first
            impact_id = int((row.get_attribute("id") or "").removeprefix("impact-"))
            expect(row.locator(".impact-status")).to_have_text("open")
            row.get_by_role("button", name="Needs update").click()

            expect(page.get_by_role("status")).to_contain_text(f"impact #{impact_id} marked needs update")
            expect(page.locator(f"#impact-{impact_id} .impact-status")).to_have_text("needs update")
            expect(page).to_have_url(server.base + change_path)

            page.get_by_role("link", name="Audit log").click()
            expect(page.get_by_text("Chain verified")).to_be_visible()
            first = page.locator("table.audit tbody tr").first
            expect(first).to_contain_text("impact.status")
            expect(first).to_contain_text(USERS["editor"])
            expect(first).to_contain_text(f"impact #{impact_id}")
            expect(first).to_contain_text("status: needs_update")
        finally:
            browser.close()

    with Session(engine) as s:
        assert s.get(Impact, impact_id).status == "needs_update"  # type: ignore[union-attr]
        last = s.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
        assert last is not None and (last.action, last.actor) == ("impact.status", USERS["editor"])
