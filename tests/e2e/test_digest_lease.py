"""At most one sending digest run at a time: the `lease` row, driven through the real `tracker digest`
command and the real service job, with real mail to a real SMTP server (aiosmtpd); on SQLite and
PostgreSQL.

The races are made real, not timed: the SMTP server holds a chosen message in DATA until the test
lets it go, so the first run is provably mid-send while the second one starts.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from alembic import command
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tests.conftest import run_tracker, tracker_env
from tests.e2e.test_digest_send import ALICE, BOB, BOSS, CAROL, DAVE, build_world, env
from tests.unit.test_digest_helpers import SmtpSink, running_smtp, smtp_sink_fixture  # noqa: F401  (smtp_sink)
from tracker.config import Settings
from tracker.notify.digest import DigestBusy, lease_ttl, run_digest
from tracker.service.jobs import Service
from tracker.store.db import alembic_config, make_engine, session_scope, upgrade, utcnow
from tracker.store.models import Digest, JobRun, Lease
from tracker.store.models.lease import DIGEST_LEASE

EVERYONE = sorted([ALICE, BOB, CAROL, DAVE, BOSS])
GATE_TIMEOUT = 60.0  # only a safety net so that a broken run cannot hang the suite


@dataclass
class GatedSink(SmtpSink):
    """An SMTP sink that holds message number `hold` (1-based) in DATA until `release` is set.

    `arrived` is set when that message's DATA has come in, so the test knows the sending run is
    mid-send (its lease taken, its contents built, the message on the wire) before it goes on.
    """

    hold: int = 1
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    _seen: int = 0

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        self._seen += 1
        if self._seen == self.hold:
            self.arrived.set()
            # Wait without blocking the event loop: other connections must still be served.
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, GATE_TIMEOUT)
        return await super().handle_DATA(server, session, envelope)

    def recipients(self) -> list[str]:
        return sorted(r for m in self.received for r in m.rcpt_tos)


@pytest.fixture
def gated_sink() -> Iterator[GatedSink]:
    sink = GatedSink()
    with running_smtp(sink):
        try:
            yield sink
        finally:
            sink.release.set()  # never leave a run stuck when an assertion failed


def settings_for(db_url: str, sink: SmtpSink) -> Settings:
    """The same settings `env()` gives the CLI, for runs inside this process."""
    return Settings(database_url=db_url, smtp_host="127.0.0.1", smtp_port=sink.port, smtp_timeout=10,
                    mail_from="tracker@example.com", base_url="https://tracker.example.test/app",
                    digest_everything_to=[BOSS], timezone="Europe/Berlin")


def start_tracker(db_url: str, *args: str, **extra: str) -> subprocess.Popen[str]:
    """Start the real `tracker` command without waiting for it."""
    return subprocess.Popen([sys.executable, "-m", "tracker", *args], env=tracker_env(db_url, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def leases(engine: Engine) -> list[Lease]:
    with Session(engine) as s:
        return list(s.exec(select(Lease)).all())


def plant_lease(engine: Engine, *, host: str, pid: int, age: timedelta, left: timedelta) -> None:
    """A lease row as another run (alive, or crashed) would have left it."""
    now = utcnow()
    with session_scope(engine) as s:
        s.add(Lease(name=DIGEST_LEASE, holder="f" * 32, host=host, pid=pid, acquired_at=now - age,
                    expires_at=now + left))


def test_two_cli_runs_racing_send_each_digest_once(db_url: str, engine: Engine, gated_sink: GatedSink,
                                                   tmp_path: Path) -> None:
    build_world(engine)
    first = start_tracker(db_url, "digest", "--send", **env(gated_sink))
    try:
        assert gated_sink.arrived.wait(GATE_TIMEOUT), "the first run never reached the SMTP server"
        # The first run is mid-send (its first message held in DATA): a second send must do nothing.
        second = run_tracker(db_url, "digest", "--send", **env(gated_sink))
        # A preview is never blocked, even now.
        preview = run_tracker(db_url, "digest", "--preview", str(tmp_path / "p"), **env(gated_sink))
    finally:
        gated_sink.release.set()
        out, err = first.communicate(timeout=120)
    assert gated_sink.recipients() == EVERYONE, second.stdout  # each recipient exactly once
    assert first.returncode == 0, out + err
    assert "5 sent, 0 failed" in out
    assert second.returncode == 4, second.stdout + second.stderr
    assert "another digest run is sending" in second.stderr
    assert f"pid {first.pid}" in second.stderr and "since " in second.stderr
    assert "nothing was sent" in second.stderr
    assert preview.returncode == 0, preview.stderr
    assert len(list((tmp_path / "p").glob("*.eml"))) == 5
    assert leases(engine) == []  # released
    with Session(engine) as s:
        assert sorted(d.recipient for d in s.exec(select(Digest)).all()) == EVERYONE

    # Once it is done, the next send runs and finds nothing new.
    again = run_tracker(db_url, "digest", "--send", **env(gated_sink))
    assert again.returncode == 0 and "0 sent, 0 failed, 5 empty skipped" in again.stdout
    assert gated_sink.recipients() == EVERYONE


def test_two_runs_racing_in_threads_send_each_digest_once(db_url: str, engine: Engine,
                                                          gated_sink: GatedSink) -> None:
    build_world(engine)
    settings = settings_for(db_url, gated_sink)
    outcome: dict[str, object] = {}

    def first() -> None:
        eng = make_engine(db_url)
        try:
            outcome["first"] = run_digest(engine=eng, settings=settings, send=True)
        except BaseException as exc:
            outcome["first"] = exc
        finally:
            eng.dispose()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert gated_sink.arrived.wait(GATE_TIMEOUT)
        with pytest.raises(DigestBusy) as busy:
            run_digest(engine=engine, settings=settings, send=True)
        assert "another digest run is sending" in str(busy.value) and "nothing was sent" in str(busy.value)
    finally:
        gated_sink.release.set()
        thread.join(GATE_TIMEOUT)
    run = outcome["first"]
    assert not isinstance(run, BaseException), run
    assert sorted(run.sent) == EVERYONE  # type: ignore[attr-defined]
    assert gated_sink.recipients() == EVERYONE
    assert leases(engine) == []


def test_the_lease_is_renewed_while_sending_and_a_lost_lease_stops_the_run(db_url: str, engine: Engine) -> None:
    build_world(engine)
    sink = GatedSink(hold=2)
    with running_smtp(sink):
        settings = settings_for(db_url, sink)
        outcome: dict[str, object] = {}

        def first() -> None:
            eng = make_engine(db_url)
            try:
                outcome["first"] = run_digest(engine=eng, settings=settings, send=True)
            finally:
                eng.dispose()

        thread = threading.Thread(target=first)
        thread.start()
        try:
            assert sink.arrived.wait(GATE_TIMEOUT)
            (held,) = leases(engine)
            # Renewed before the second message: the expiry moved on from the first one's.
            assert held.expires_at - held.acquired_at > lease_ttl(settings)
            # Someone takes it over (as if this run had stalled past its expiry).
            with engine.begin() as conn:
                conn.execute(sa.update(Lease.__table__).values(holder="e" * 32, host="other-host", pid=4242))  # type: ignore[attr-defined]
        finally:
            sink.release.set()
            thread.join(GATE_TIMEOUT)
    run = outcome["first"]
    # The message already on the wire went out; nothing after it did.
    assert len(run.sent) == 2 and run.lease_lost  # type: ignore[attr-defined]
    assert "taken over" in run.summary()  # type: ignore[attr-defined]
    assert len(sink.received) == 2
    # The run did not delete the taker's lease on its way out.
    assert [(lease.host, lease.pid) for lease in leases(engine)] == [("other-host", 4242)]


def test_a_crashed_holders_expired_lease_is_taken_over(db_url: str, engine: Engine, smtp_sink: SmtpSink) -> None:
    build_world(engine)
    plant_lease(engine, host="crashed-box", pid=31337, age=timedelta(hours=2), left=-timedelta(hours=1))
    out = run_tracker(db_url, "digest", "--send", **env(smtp_sink))
    assert out.returncode == 0, out.stderr
    assert "5 sent, 0 failed" in out.stdout
    assert sorted(r for m in smtp_sink.received for r in m.rcpt_tos) == EVERYONE
    assert leases(engine) == []


def test_a_live_lease_blocks_sending_and_names_its_holder(db_url: str, engine: Engine, smtp_sink: SmtpSink,
                                                          tmp_path: Path) -> None:
    build_world(engine)
    plant_lease(engine, host="pm-laptop", pid=777, age=timedelta(minutes=1), left=timedelta(minutes=9))
    out = run_tracker(db_url, "digest", "--send", **env(smtp_sink))
    assert out.returncode == 4, out.stdout + out.stderr
    assert "another digest run is sending (pm-laptop, pid 777, since " in out.stderr
    assert "nothing was sent: try again when it is done" in out.stderr
    assert smtp_sink.received == []
    with Session(engine) as s:
        assert s.exec(select(Digest)).all() == []
    assert [(lease.host, lease.pid) for lease in leases(engine)] == [("pm-laptop", 777)]  # left alone
    # Preview-only runs need no lease.
    preview = run_tracker(db_url, "digest", "--preview", str(tmp_path), "--to", ALICE, **env(smtp_sink))
    assert preview.returncode == 0, preview.stderr
    assert (tmp_path / f"{ALICE}.html").is_file()


def test_the_lease_is_released_after_a_run_that_raised(db_url: str, engine: Engine, smtp_sink: SmtpSink,
                                                       tmp_path: Path) -> None:
    build_world(engine)
    # --preview under a file: writing the first recipient's preview raises inside the sending run.
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    crashed = run_tracker(db_url, "digest", "--send", "--preview", str(blocker / "previews"), **env(smtp_sink))
    assert crashed.returncode == 2 and "previews: Not a directory" in crashed.stderr, crashed.stdout + crashed.stderr
    assert "Traceback" not in crashed.stderr
    assert smtp_sink.received == []
    assert leases(engine) == []
    # A usage error found after the lease was taken releases it too.
    unknown = run_tracker(db_url, "digest", "--send", "--to", "nobody@example.com", **env(smtp_sink))
    assert unknown.returncode == 2 and "nobody@example.com" in unknown.stderr
    assert leases(engine) == []
    ok = run_tracker(db_url, "digest", "--send", **env(smtp_sink))
    assert ok.returncode == 0 and "5 sent" in ok.stdout, ok.stdout + ok.stderr


def test_the_service_records_a_digest_skipped_while_another_run_sends(db_url: str, engine: Engine,
                                                                       smtp_sink: SmtpSink) -> None:
    build_world(engine)
    plant_lease(engine, host="pm-laptop", pid=777, age=timedelta(minutes=1), left=timedelta(minutes=9))
    svc = Service(settings=settings_for(db_url, smtp_sink), engine=engine)
    svc.on_digest_due()
    with Session(engine) as s:
        (job,) = s.exec(select(JobRun).where(JobRun.kind == "digest")).all()
    assert job.result == "skipped" and job.finished_at is not None
    assert "another digest run is sending (pm-laptop, pid 777" in job.detail["reason"]
    assert smtp_sink.received == []

    # Once the other run is done, the next due digest sends.
    with engine.begin() as conn:
        conn.execute(sa.delete(Lease.__table__))  # type: ignore[attr-defined]
    svc.on_digest_due()
    with Session(engine) as s:
        results = [j.result for j in s.exec(select(JobRun).where(JobRun.kind == "digest").order_by(JobRun.id)).all()]
    assert results == ["skipped", "ok"]
    assert sorted(r for m in smtp_sink.received for r in m.rcpt_tos) == EVERYONE


def test_the_lease_migration_upgrades_and_downgrades(database_url: str) -> None:
    upgrade(database_url)
    eng = make_engine(database_url)
    try:
        assert "lease" in sa.inspect(eng).get_table_names()
        command.downgrade(alembic_config(database_url), "0006")
        assert "lease" not in sa.inspect(eng).get_table_names()
        assert "digest" in sa.inspect(eng).get_table_names()
        upgrade(database_url)
        assert "lease" in sa.inspect(eng).get_table_names()
        assert [c["name"] for c in sa.inspect(eng).get_columns("lease")] == [
            "name", "holder", "host", "pid", "acquired_at", "expires_at"]
    finally:
        eng.dispose()
