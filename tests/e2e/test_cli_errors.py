"""Errors a user can fix are one line naming the setting, file or database, and exit 2, through
the real `tracker` command: the CLI's one error mapping (tracker.cli.app.user_error)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.conftest import run_tracker, tracker_env
from tracker.audit import trail as audit
from tracker.store.db import session_scope, utcnow


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.mark.parametrize(("env", "expected"), [
    ({"TRACKER_DOWNLOAD_TIMEOUT": "abc"},
     "invalid settings: TRACKER_DOWNLOAD_TIMEOUT='abc': Input should be a valid number"),
    ({"TRACKER_DIGEST_EVERYTHING_TO": "a@b.c"},
     "invalid settings: TRACKER_DIGEST_EVERYTHING_TO='a@b.c': must be a JSON list, e.g. [\"ops@example.com\"]"),
    ({"TRACKER_TIMEZONE": "Mars/Olympus_Mons"},
     "invalid settings: TRACKER_TIMEZONE='Mars/Olympus_Mons': not a known time zone: give an IANA name"),
    ({"TRACKER_DATABASE_URL": "mysql://ops:s3cret@db.example/tracker"},
     "invalid settings: TRACKER_DATABASE_URL: the mysql scheme is not supported: use sqlite:///PATH or "
     "postgresql+psycopg://"),
])
def test_a_bad_setting_names_the_variable_and_what_it_must_be(sqlite_url: str, env: dict[str, str],
                                                              expected: str) -> None:
    line = one_line_error(run_tracker(sqlite_url, "sources", "list", **env))
    assert expected in line
    assert "s3cret" not in line


def test_a_good_timezone_and_list_are_accepted(db_url: str) -> None:
    r = run_tracker(db_url, "sources", "list", TRACKER_TIMEZONE="Europe/Paris",
                    TRACKER_DIGEST_EVERYTHING_TO='["ops@example.com"]')
    assert r.returncode == 0, r.stderr


def _read_only(sqlite_url: str) -> str:
    path = sqlite_url.removeprefix("sqlite:///")
    return f"sqlite:///file:{path}?mode=ro&uri=true"


def tracker_with_stdin(db_url: str, *args: str, stdin: str, **env: str) -> subprocess.CompletedProcess[str]:
    """run_tracker, with text on stdin (for --password-stdin)."""
    return subprocess.run([sys.executable, "-m", "tracker", *args], env=tracker_env(db_url, **env), input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [
    ("users", "add", "new@example.com", "--role", "viewer", "--password-stdin"),
    ("impacts", "note", "1", "looked at it", "--by", "ana@example.com"),
])
def test_a_read_only_database_is_one_line(engine: Engine, db_url: str, args: tuple[str, ...]) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("a read-only SQLite file; PostgreSQL read-only roles raise the same DBAPIError")
    from tests.e2e.test_export_hardening import hostile_history

    hostile_history(engine)
    r = tracker_with_stdin(db_url, *args, stdin="a long enough password\n", TRACKER_DATABASE_URL=_read_only(db_url))
    line = one_line_error(r)
    assert "refused the command: attempt to write a readonly database" in line
    assert "TRACKER_DATABASE_URL" in line


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 KB tmpfs: a disk that fills up (needs the right to mount, else the test is skipped)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_export_onto_a_full_disk_is_one_line(db_url: str, engine: Engine, small_disk: Path) -> None:
    at = utcnow() - timedelta(hours=1)
    with session_scope(engine) as s:
        for n in range(400):
            audit.append_event(session=s, actor="ana@example.com", action="source.note", entity_type="source",
                               entity_id=f"s{n}", after={"note": "x" * 100}, at=at)
    today = utcnow().date()
    r = run_tracker(db_url, "export", "--from", (today - timedelta(days=1)).isoformat(), "--to", today.isoformat(),
                    "--format", "csv", "--output", str(small_disk / "audit"))
    line = one_line_error(r)
    assert "No space left on device" in line
    assert list(small_disk.iterdir()) == []  # the partial export is cleaned up


def test_users_commands_take_the_actor_from_tracker_actor(engine: Engine, db_url: str) -> None:
    """`tracker users …` records --by, else TRACKER_ACTOR, else system, like the impacts commands."""
    from sqlmodel import Session, col, select

    from tracker.store.models import AuditEvent

    r = tracker_with_stdin(db_url, "users", "add", "new@example.com", "--role", "viewer", "--password-stdin",
                           stdin="a long enough password\n", TRACKER_ACTOR="ops@example.com")
    assert r.returncode == 0, r.stderr
    assert run_tracker(db_url, "users", "role", "new@example.com", "editor", "--by", "lead@example.com").returncode == 0
    assert run_tracker(db_url, "users", "disable", "new@example.com").returncode == 0
    with Session(engine) as s:
        got = [(e.action, e.actor) for e in s.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()]
    assert [actor for _, actor in got] == ["ops@example.com", "lead@example.com", "system"], got
