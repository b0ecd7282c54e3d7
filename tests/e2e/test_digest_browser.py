"""The digest's HTML part in a real browser (headless Chromium): hostile page text stays text, and it renders."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from bs4 import BeautifulSoup
from sqlalchemy.engine import Engine

from tests.e2e.test_digest_send import ALICE, build_world
from tracker.config import Settings
from tracker.notify.digest import build_digests
from tracker.notify.render import render_digest
from tracker.store.db import session_scope

ROOT = Path(__file__).resolve().parent.parent.parent


def _screenshot_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("digest_screenshot", ROOT / "bench" / "digest_screenshot.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def chromium() -> ModuleType:
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI=true but chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return _screenshot_module()


def test_hostile_digest_in_headless_chromium(sqlite_url: str, tmp_path: Path, chromium: ModuleType) -> None:
    from tracker.store.db import make_engine, upgrade

    upgrade(sqlite_url)
    engine: Engine = make_engine(sqlite_url)
    try:
        build_world(engine)
        settings = Settings(_env_file=None, base_url="https://tracker.example.test", timezone="UTC")  # type: ignore[call-arg]
        with session_scope(engine) as s:
            (content,) = build_digests(session=s, settings=settings, to=[ALICE])
    finally:
        engine.dispose()
    html = tmp_path / "alice.html"
    html.write_text(render_digest(content, base_url=settings.base_url, timezone="UTC").html, encoding="utf-8")

    # The DOM Chromium built: the page's <script> is text, no element of it ran or exists.
    dom = BeautifulSoup(chromium.dump_dom(html), "html.parser")
    assert dom.find_all(["script", "img"]) == []
    assert "<script>alert('pwned')</script>" in dom.get_text()
    assert [a["href"] for a in dom.find_all("a") if "/impacts/" in a["href"]]

    png = chromium.screenshot(html, tmp_path / "digest.png", width=900, height=1400)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 900 and int.from_bytes(data[20:24], "big") == 1400
    assert len(data) > 20_000  # a rendered page, not a blank one


def test_golden_digest_renders_in_chromium(tmp_path: Path, chromium: ModuleType) -> None:
    png = chromium.screenshot(ROOT / "tests" / "golden" / "digest_pga.html", tmp_path / "golden.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
