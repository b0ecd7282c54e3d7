"""The web UI's sources page names each source's kind, `html (browser)` for a rendered page."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from spiders import KINDS
from tests.e2e.test_rendered_sources import GOOD, write
from tests.integration.test_web import login
from tests.support.web_seed import add_users
from tracker.config import Settings
from tracker.declare.sources import load_sources_file, sync_sources
from tracker.store.db import session_scope
from tracker.web import create_app


def test_the_sources_page_shows_rendered_sources_as_html_browser(db_url: str, engine: Engine,
                                                                 tmp_path: Path) -> None:
    with session_scope(engine) as session:
        sync_sources(session=session, specs=load_sources_file(write(tmp_path, GOOD), kinds=KINDS))
        add_users(session)
    settings = Settings(database_url=db_url, secret_key="test-secret-key-0123456789")
    with TestClient(create_app(settings), follow_redirects=False) as client:
        login(client, "viewer")
        page = client.get("/sources").text
    assert "help-centre · html (browser) ·" in page
    assert "plain · html ·" in page
