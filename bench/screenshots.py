#!/usr/bin/env python3
"""Screenshots of the web UI for docs/web.md, taken from the running app.

Seeds a demo database from the test fixtures (the real Reddit and X policy versions, SOPs watching
them, impacts from the real mapper), starts `tracker serve` on a free port of 127.0.0.1, and has
Debian's headless Chromium (Playwright, executable_path) capture the dashboard, a change page,
the SLA page (/metrics), a source's page (its history with a failure and its recovery), the
add-source form with its rule preview of a page of the local policy site, and the watch builder
(a section picked from the tree, the past changes it would have matched).

Run:  .venv/bin/python bench/screenshots.py [--out docs] [--pages dashboard,change,metrics,source-page,…]
      (pages: dashboard, change, metrics, source-page, add-source, watch-builder; all by default)
Needs: chromium (apt-get install chromium) and the test extra (pip install '.[test]').
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlmodel import col, select  # noqa: E402

from spiders import KINDS  # noqa: E402
from tests.conftest import serve_policy_site, tracker_env  # noqa: E402
from tests.support.policy_site import page as policy_page  # noqa: E402
from tests.support.web_seed import PASSWORD, USERS, _document, add_users, seed  # noqa: E402
from tracker.check.record import record_check  # noqa: E402
from tracker.check.state import Fetch  # noqa: E402
from tracker.impacts.workflow import mark_impact  # noqa: E402
from tracker.store.db import make_engine, session_scope, upgrade, utcnow  # noqa: E402
from tracker.store.models import Impact, Source  # noqa: E402

REDDIT = "reddit-community-guidelines"
PAGES = ("dashboard", "change", "metrics", "source-page", "add-source", "watch-builder")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def demo_database(folder: Path) -> tuple[str, int]:
    """A seeded SQLite database with some work in progress; returns its URL and the change to show."""
    url = f"sqlite:///{folder / 'demo.db'}"
    upgrade(url)
    engine = make_engine(url)
    with session_scope(engine) as s:
        out = seed(s, versions=5)
        add_users(s)
    with session_scope(engine) as s:
        impacts = list(s.exec(select(Impact).order_by(col(Impact.id))).all())
        # Some work in flight, and one privacy impact past its due date.
        for imp in impacts:
            if imp.sop_id == "SOP-CS-014":
                imp.due_date = utcnow().date() - timedelta(days=2)
                s.add(imp)
                break
        mark_impact(session=s, impact_id=impacts[0].id or 0, by=USERS["editor"], status="needs_update",
                    assignee="ana@example.com")
        mark_impact(session=s, impact_id=impacts[1].id or 0, by=USERS["editor"], status="needs_update")
        mark_impact(session=s, impact_id=impacts[1].id or 0, by=USERS["editor"], status="in_progress")
        # A few decisions, so the SLA page has times to decision to chart.
        for imp in impacts[2:6]:
            mark_impact(session=s, impact_id=imp.id or 0, by=USERS["editor"], status="dismissed",
                        note="no change to the SOP needed")
    with session_scope(engine) as s:
        # A failing streak that ended, for the source page's history.
        src = s.get(Source, REDDIT)
        assert src is not None
        now = utcnow()
        for minutes, fetch in ((50, Fetch(source_id=REDDIT, url=src.url, status=503, body=b"Service Unavailable")),
                               (45, Fetch(source_id=REDDIT, url=src.url, error="Connection refused")),
                               (40, Fetch(source_id=REDDIT, url=src.url, status=200,
                                          headers={"Content-Type": "text/html; charset=utf-8"},
                                          body=policy_page(_document(REDDIT), 4).encode()))):
            fetch.fetched_at = now - timedelta(minutes=minutes)
            record_check(kinds=KINDS, session=s, source=src, fetch=fetch)
    engine.dispose()
    # Fixture v2 -> v3 of the Reddit guidelines: three modified blocks under "Enforcement".
    return url, out.changes["reddit-community-guidelines"][2]


def serve(url: str) -> tuple[subprocess.Popen[str], str]:
    """`tracker serve` on a free port; returns the process and its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "tracker", "serve", "--port", "0", "--log-level", "warning"],
                            env=tracker_env(url), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "tracker web UI on " in line:
            return proc, line.split(" on ", 1)[1].split("/ ", 1)[0]
    raise SystemExit(f"tracker serve exited ({proc.wait()}) before it listened")


def capture_manage(page: Any, base: str, policy_url: str, out: Path, wanted: set[str]) -> dict[str, float]:
    """The source page, the add-source form with its preview, the watch builder; seconds each took."""
    took: dict[str, float] = {}
    if "source-page" in wanted:
        t = time.perf_counter()
        page.goto(f"{base}/sources/{REDDIT}")
        page.wait_for_selector("ol.timeline li.timeline-recovery")
        page.screenshot(path=str(out / "source-page.png"), full_page=True)
        took["source-page"] = time.perf_counter() - t
    if "add-source" in wanted:
        t = time.perf_counter()
        page.goto(f"{base}/sources/new")
        form = page.locator("#source-form")
        form.locator("[name=id]").fill("reddit-rules")
        form.locator("[name=name]").fill("Reddit rules")
        form.locator("[name=url]").fill(policy_url)
        form.locator("[name=select]").fill("main")
        form.locator("[name=schedule]").fill("6h")
        page.get_by_role("button", name="Preview").click()
        page.wait_for_selector("#preview-result:not([hidden])")
        page.screenshot(path=str(out / "add-source.png"), full_page=True)
        took["add-source"] = time.perf_counter() - t
    if "watch-builder" in wanted:
        t = time.perf_counter()
        page.goto(f"{base}/sops/new?source={REDDIT}")
        page.locator("[name=id]").fill("SOP-TS-020")
        page.locator("[name=title]").fill("Strikes and suspensions")
        page.locator("[name=owner]").fill(USERS["editor"])
        page.locator("[name=team]").select_option("trust-safety")
        page.locator("#watch-1 .watch-tree").get_by_label("Enforcement").check()
        page.wait_for_timeout(1500)  # the builder tries the draft 0.4 s after the last change
        page.wait_for_selector("#watch-1 .watch-matches li.matched")
        page.screenshot(path=str(out / "watch-builder.png"), full_page=True)
        took["watch-builder"] = time.perf_counter() - t
    return took


def main() -> None:
    """Seed, serve, capture; prints where the screenshots went and how long each step took."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for dashboard.png and change.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--pages", default=",".join(PAGES), help="which screenshots to take")
    args = parser.parse_args()
    wanted = set(args.pages.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, serve_policy_site() as site:
        t0 = time.perf_counter()
        url, change_id = demo_database(Path(tmp))
        t1 = time.perf_counter()
        proc, base = serve(url)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
                page.goto(base + "/login")
                page.get_by_label("Email").fill(USERS["editor"])
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Log in").click()
                page.wait_for_selector("h1:has-text('Open impacts')")
                t2 = time.perf_counter()
                if "dashboard" in wanted:
                    page.screenshot(path=str(out / "dashboard.png"), full_page=True)
                t3 = time.perf_counter()
                if "change" in wanted:
                    page.goto(f"{base}/changes/{change_id}")
                    page.wait_for_selector("h2:has-text('What changed')")
                    page.screenshot(path=str(out / "change.png"), full_page=True)
                t4 = time.perf_counter()
                if "metrics" in wanted:
                    page.goto(f"{base}/metrics")
                    page.wait_for_selector("svg.chart")
                    page.screenshot(path=str(out / "metrics.png"), full_page=True)
                t5 = time.perf_counter()
                took = capture_manage(page, base, site.url(REDDIT), out, wanted)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    print(f"seeded demo database in {t1 - t0:.2f} s; server up and logged in after {t2 - t1:.2f} s")
    took |= {"dashboard": t3 - t2, "change": t4 - t3, "metrics": t5 - t4}
    for name in PAGES:
        if name in wanted:
            shot = out / f"{name}.png"
            print(f"{name}: {shot} ({shot.stat().st_size // 1024} KiB, {took[name]:.2f} s)")


if __name__ == "__main__":
    main()
