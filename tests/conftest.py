"""Shared fixtures: a fresh database per test (SQLite, and PostgreSQL when configured), the
local policy site, and a way to run the real `tracker` command."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote
from urllib.request import urlopen

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from tracker.store.db import make_engine, upgrade

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PG_ENV = "TRACKER_TEST_DATABASE_URL"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        if IN_CI:
            pytest.fail(f"CI=true but {PG_ENV} is not set: the PostgreSQL tests must run in CI")
        pytest.skip(f"set {PG_ENV} to run the database tests against PostgreSQL too")
    try:
        eng = make_engine(url)
        with eng.connect() as conn:
            conn.execute(sa.text("select 1"))
        eng.dispose()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_ENV} is unreachable in CI: {exc}")
        pytest.skip(f"PostgreSQL at {PG_ENV} is unreachable: {exc}")
    return url



def _pg_schema_url(base: str) -> Iterator[str]:
    """A throwaway schema on the PostgreSQL server, as a URL whose search_path points at it."""
    schema = "t_" + uuid.uuid4().hex[:12]
    eng = make_engine(base)
    with eng.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with eng.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        eng.dispose()


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2 with cheap parameters (tests.support.web_login.CHEAP) wherever this process hashes a
    password, so that seeding users and logging in take milliseconds. Servers started in this process
    use it too; a `tracker` subprocess hashes as in production."""
    import tracker.accounts
    from tests.support.web_login import CHEAP

    monkeypatch.setattr(tracker.accounts, "_hasher", lambda: CHEAP)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: SQLite in tmp_path, and a fresh PostgreSQL schema when configured."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tracker.db'}"
        return
    yield from _pg_schema_url(_postgres_url())


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database, for tests that do not depend on the backend."""
    return f"sqlite:///{tmp_path / 'tracker.db'}"


@pytest.fixture
def db_url(database_url: str) -> str:
    """A migrated database on each backend."""
    upgrade(database_url)
    return database_url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as s:
        yield s


class PolicySite:
    """The local policy site (tests/support/policy_site.py) serving tests/fixtures/pga."""

    def __init__(self, base: str):
        self.base = base

    def url(self, slug: str) -> str:
        return f"{self.base}/docs/{slug}"

    def control(self, verb: str, **params: Any) -> Any:
        import json

        query = "&".join(f"{k}={v}" for k, v in params.items())
        with urlopen(f"{self.base}/_control/{verb}?{query}", timeout=10) as r:
            return json.loads(r.read())

    def set(self, slug: str, v: int) -> None:
        self.control("set", doc=slug, v=v)

    def next(self, slug: str) -> None:
        self.control("next", doc=slug)

    def mode(self, slug: str, mode: str) -> None:
        self.control("mode", doc=slug, mode=mode)


@contextmanager
def serve_policy_site(corpus: Path = FIXTURES / "pga", *, validators: bool = True) -> Iterator[PolicySite]:
    """Serve a corpus folder (one folder per document) as a policy site on a free port."""
    from tests.support import policy_site as ps

    handler = type("Handler", (ps.Handler,), {"site": ps.Site(corpus, validators=validators)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield PolicySite(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def policy_site() -> Iterator[PolicySite]:
    """A fresh policy site on a free port of 127.0.0.1 (every document at version 0)."""
    with serve_policy_site(validators=True) as site:
        yield site


@pytest.fixture
def policy_site_novalidators() -> Iterator[PolicySite]:
    """The policy site without ETag / Last-Modified: every check re-extracts the page."""
    with serve_policy_site(validators=False) as site:
        yield site


def tracker_env(db_url: str, **extra: str) -> dict[str, str]:
    """Environment for a `tracker` subprocess: this database, fast retries, no politeness delay."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env.update({
        "TRACKER_DATABASE_URL": db_url,
        "TRACKER_DOWNLOAD_DELAY": "0",
        "TRACKER_RETRY_BACKOFF_BASE": "0.05",
        "TRACKER_RETRY_TIMES": "1",
        "TRACKER_DOWNLOAD_TIMEOUT": "3",
        "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    })
    env.update(extra)
    return env


def run_tracker(db_url: str, *args: str, cwd: Path | None = None, timeout: float = 120,
                **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real `tracker` command in a subprocess and capture its output."""
    return subprocess.run([sys.executable, "-m", "tracker", *args], env=tracker_env(db_url, **env),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def tracker() -> Any:
    """run_tracker, for tests: tracker(db_url, "crawl", ...)."""
    return run_tracker


def write_sources(path: Path, site: PolicySite, slugs: list[str], **fields: Any) -> Path:
    """A sources file watching the given policy-site documents."""
    import yaml

    sources = [{"id": slug, "name": slug.replace("-", " ").title(), "url": site.url(slug),
                "select": ["article.policy"], "remove": [".cookie-banner", "nav"],
                "schedule": "6h", "tags": ["test"], **fields} for slug in slugs]
    path.write_text(yaml.safe_dump({"sources": sources}, sort_keys=False))
    return path
