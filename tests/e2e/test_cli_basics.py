"""The command-line contract: exit codes, messages, and the JSON of `changes list` / `changes show`."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import Engine
from typer.testing import CliRunner, Result

from spiders import KINDS
from tests.conftest import FIXTURES, run_tracker
from tests.support.policy_site import Document, page
from tracker.check.record import record_check
from tracker.check.state import Fetch
from tracker.cli import app
from tracker.declare.sources import SourceSpec, sync_sources
from tracker.store.db import session_scope, upgrade
from tracker.store.models import Source

REDDIT, X = "reddit-community-guidelines", "x-privacy-policy"
T0 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
CHANGE_FIELDS = {"id", "source_id", "detected_at", "sections", "added", "removed", "modified"}


def cli(db_url: str, *args: str, **env: str) -> Result:
    """Run a `tracker` command in this process (fast); the exit code is the real one."""
    return CliRunner().invoke(app, list(args), env={"TRACKER_DATABASE_URL": db_url, **env})


def add_sources(engine: Engine, *ids: str, base: str = "http://127.0.0.1:9/docs") -> None:
    with session_scope(engine) as s:
        sync_sources(session=s, specs=[SourceSpec(id=i, name=i, url=f"{base}/{i}", select=["article.policy"],
                                                  remove=[".cookie-banner", "nav"]) for i in ids])


def check(engine: Engine, slug: str, v: int, at: datetime) -> None:
    """Record a fetch of version v of a fixture document, as the crawler would."""
    body = page(Document(FIXTURES / "pga" / slug), v).encode()
    with session_scope(engine) as s:
        source = s.get(Source, slug)
        assert source is not None
        record_check(kinds=KINDS, session=s, source=source, fetch=Fetch(
            source_id=slug, url=source.url, status=200, body=body, fetched_at=at,
            headers={"Content-Type": "text/html; charset=utf-8"}))


@pytest.fixture
def history(engine: Engine) -> Engine:
    """Reddit v2 -> v3 on day 1, X v2 -> v3 on day 3, X v3 -> v4 on day 5."""
    add_sources(engine, REDDIT, X)
    check(engine, REDDIT, 2, T0)
    check(engine, X, 2, T0)
    check(engine, REDDIT, 3, T0 + timedelta(days=1))
    check(engine, X, 3, T0 + timedelta(days=3))
    check(engine, X, 4, T0 + timedelta(days=5))
    return engine


# -- changes list / show ---------------------------------------------------------------------


def test_changes_list_json(db_url: str, history: Engine) -> None:
    out = cli(db_url, "changes", "list", "--json")
    assert out.exit_code == 0, out.output
    found = json.loads(out.stdout)
    assert len(found) == 3
    assert all(CHANGE_FIELDS <= set(c) for c in found)
    assert [c["source_id"] for c in found] == [X, X, REDDIT]  # newest first
    newest, _, reddit = found
    assert datetime.fromisoformat(newest["detected_at"]) == T0 + timedelta(days=5)
    assert (newest["added"], newest["removed"], newest["modified"]) == (21, 0, 0)
    assert newest["sections"] == ["X Privacy Policy > 1. Information We Collect"]
    assert reddit["sections"] == ["Reddit Content Policy > Enforcement"]
    assert (reddit["added"], reddit["removed"], reddit["modified"]) == (0, 0, 3)
    assert isinstance(reddit["id"], int)


def test_changes_list_filters(db_url: str, history: Engine) -> None:
    def ids(*args: str) -> list[str]:
        out = cli(db_url, "changes", "list", "--json", *args)
        assert out.exit_code == 0, out.output
        return [c["source_id"] for c in json.loads(out.stdout)]

    assert ids("--source", REDDIT) == [REDDIT]
    assert ids("--source", X) == [X, X]
    # Reddit changed on 2 November 06:00 UTC, X on the 4th and the 6th.
    assert ids("--since", "2026-11-03") == [X, X]  # a date is midnight UTC
    assert ids("--since", "2026-11-02") == [X, X, REDDIT]
    assert ids("--since", "2026-11-04T06:00:00Z") == [X, X]  # inclusive
    assert ids("--since", "2026-11-04T06:00:01Z") == [X]
    assert ids("--since", "2026-11-04T08:00:01+02:00") == [X]  # other zones are converted
    assert ids("--since", "2026-11-04T06:00:00") == [X, X]  # no zone: UTC
    assert ids("--since", "2026-11-02T06:00:01Z", "--source", REDDIT) == []
    assert ids("--since", "2027-01-01") == []
    text = cli(db_url, "changes", "list")
    assert text.exit_code == 0 and text.stdout.count("\n") == 3
    assert "+0 -0 ~3  Reddit Content Policy > Enforcement" in text.stdout
    assert "no changes since 2027-01-01" in cli(db_url, "changes", "list", "--since", "2027-01-01").stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "last tuesday"], "--since 'last tuesday' is not an ISO 8601 date or time"),
    (["--source", "nope"], "unknown source id 'nope'"),
])
def test_changes_list_usage_errors(db_url: str, history: Engine, args: list[str], message: str) -> None:
    out = cli(db_url, "changes", "list", *args)
    assert out.exit_code == 2
    assert message in out.stderr


def test_changes_show_text_and_json(db_url: str, history: Engine) -> None:
    reddit = json.loads(cli(db_url, "changes", "list", "--json", "--source", REDDIT).stdout)[0]
    text = cli(db_url, "changes", "show", str(reddit["id"]))
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith(f"change #{reddit['id']} in {REDDIT}\n")
    assert "0 added, 0 removed, 3 modified" in text.stdout
    assert "## Reddit Content Policy > Enforcement" in text.stdout
    assert "[-removal/suspension:-] {+removal/ban:+}" in text.stdout
    assert cli(db_url, "changes", "show", str(reddit["id"]), "--format", "text").stdout == text.stdout

    out = cli(db_url, "changes", "show", str(reddit["id"]), "--format", "json")
    assert out.exit_code == 0, out.output
    shown: dict[str, Any] = json.loads(out.stdout)
    assert CHANGE_FIELDS <= set(shown)
    assert {k: shown[k] for k in CHANGE_FIELDS} == {k: reddit[k] for k in CHANGE_FIELDS}
    assert shown["url"] == f"http://127.0.0.1:9/docs/{REDDIT}"
    blocks = shown["diff"]["changes"]
    assert [b["op"] for b in blocks] == ["modified"] * 3
    assert all(b["section"] == "Reddit Content Policy > Enforcement" and b["words"] for b in blocks)
    assert ["delete", "removal/suspension:"] in blocks[1]["words"]


@pytest.mark.parametrize(("args", "message"), [
    (["999"], "no change #999"),
    (["1", "--format", "html"], "--format must be text or json"),
])
def test_changes_show_usage_errors(db_url: str, history: Engine, args: list[str], message: str) -> None:
    out = cli(db_url, "changes", "show", *args)
    assert out.exit_code == 2
    assert message in out.stderr


# -- crawl exit codes (real subprocesses) ----------------------------------------------------


def test_crawl_unknown_and_disabled_sources_exit_2(db_url: str, engine: Engine) -> None:
    add_sources(engine, "known", "old")
    with session_scope(engine) as s:  # "old" left the sources file
        sync_sources(session=s, specs=[SourceSpec(id="known", name="known", url="http://127.0.0.1:9/docs/known",
                                                  select=["article.policy"], remove=[".cookie-banner", "nav"])])
    out = run_tracker(db_url, "crawl", "UNKNOWN")
    assert out.returncode == 2
    assert "error: unknown source id(s): UNKNOWN (see `tracker sources list`)" in out.stderr
    assert out.stdout == ""
    out = run_tracker(db_url, "crawl", "known", "old", "nope")
    assert out.returncode == 2
    assert "unknown source id(s): nope" in out.stderr and "disabled source(s): old" in out.stderr
    out = run_tracker(db_url, "crawl", "--no-such-option")
    assert out.returncode == 2


def test_crawl_exit_codes_0_and_3(db_url: str, engine: Engine, tmp_path: Path) -> None:
    out = run_tracker(db_url, "crawl")
    assert out.returncode == 0 and "no enabled sources to check" in out.stdout
    with socket.socket() as sock:  # a port with nothing listening: connection refused, fast
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = {"id": "refused", "name": "Refused", "url": f"http://127.0.0.1:{port}/terms", "select": ["main"]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"sources": [spec]}))
    assert run_tracker(db_url, "sources", "sync", str(tmp_path / "s.yaml")).returncode == 0
    out = run_tracker(db_url, "crawl", "--quiet")
    assert out.returncode == 3, out.stderr
    assert "1 failed" in out.stdout
    assert f"failed refused: connection refused by http://127.0.0.1:{port}/terms" in out.stderr
    assert "[1/1]" not in out.stderr  # --quiet
    listed = json.loads(cli(db_url, "sources", "list", "--json").stdout)
    assert listed[0]["last_error"].startswith("connection refused") and listed[0]["consecutive_failures"] == 1


def test_invalid_settings_exit_2(db_url: str) -> None:
    out = run_tracker(db_url, "sources", "list", TRACKER_CONCURRENCY="lots")
    assert out.returncode == 2
    assert "invalid settings: TRACKER_CONCURRENCY='lots': Input should be a valid integer" in out.stderr


# -- the database must be migrated ------------------------------------------------------------

UNMIGRATED_COMMANDS = [["sources", "list"], ["sources", "list", "--json"], ["changes", "list"],
                       ["changes", "show", "1"], ["crawl"], ["crawl", "some-id"]]


@pytest.mark.parametrize("args", UNMIGRATED_COMMANDS, ids=" ".join)
def test_commands_on_an_unmigrated_database_say_run_db_upgrade(database_url: str, args: list[str]) -> None:
    out = cli(database_url, *args)
    assert out.exit_code == 2, out.output
    assert "is not initialised: run `tracker db upgrade`" in out.stderr


def test_sync_on_an_unmigrated_database_says_run_db_upgrade(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("sources:\n  - {id: a, name: A, url: 'https://example.com/'}\n")
    out = run_tracker(database_url, "sources", "sync", str(tmp_path / "s.yaml"))
    assert out.returncode == 2
    assert "run `tracker db upgrade`" in out.stderr


def test_an_old_schema_needs_migrating_then_db_upgrade_fixes_it(database_url: str) -> None:
    upgrade(database_url, "0001")
    out = cli(database_url, "changes", "list")
    assert out.exit_code == 2
    assert "needs migrating: run `tracker db upgrade`" in out.stderr
    up = run_tracker(database_url, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert "is at the newest schema" in up.stdout
    assert cli(database_url, "changes", "list", "--json").stdout.strip() == "[]"
    assert run_tracker(database_url, "db", "upgrade").returncode == 0  # idempotent


def test_an_unreachable_database_exits_2() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://nobody:secret@127.0.0.1:{port}/x"
    out = cli(url, "sources", "list")
    assert out.exit_code == 2
    assert "cannot open the database" in out.stderr and "secret" not in out.stderr
    out = cli(url, "db", "upgrade")
    assert out.exit_code == 2
    assert "could not migrate postgresql+psycopg://nobody:***@" in out.stderr and "secret" not in out.stderr
