"""Team channels and alert settings in the SOP file, the 0015 migration, and `tracker notify` errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlmodel import Session, select

from tests.conftest import run_tracker
from tracker.declare.sops import load_sops_file, sync_sops
from tracker.declare.yamlfile import RegistryError
from tracker.store.db import alembic_config, make_engine, upgrade
from tracker.store.models import AuditEvent, Sop, Team

INLINE = "hooksSECRETinline0042"


def write(tmp_path: Path, notify: str, alert: str = "immediate") -> Path:
    path = tmp_path / "sops.yaml"
    path.write_text(f"""
teams:
  - id: ts
    name: Trust & Safety
    notify: {notify}
sops:
  - id: SOP-1
    title: One
    owner: a@example.com
    team: ts
    alert: {alert}
    watches:
      - source: src
        alert: immediate
""")
    return path


def test_notify_urls_and_alerts_are_synced_and_inline_secrets_are_masked_in_the_audit(
        tmp_path: Path, session: Session) -> None:
    path = write(tmp_path, f'["${{TRACKER_TS_SLACK}}", "json://127.0.0.1:1/{INLINE}"]')
    report = sync_sops(session=session, sop_file=load_sops_file(path))
    session.commit()
    assert report.teams_added == ["ts"]
    team = session.get(Team, "ts")
    sop = session.get(Sop, "SOP-1")
    assert team is not None and team.notify[0] == "${TRACKER_TS_SLACK}"
    assert sop is not None and sop.alert == "immediate" and sop.watches[0]["alert"] == "immediate"
    trail = " ".join(str(e.after) for e in session.exec(select(AuditEvent)).all())
    assert "${TRACKER_TS_SLACK}" in trail and INLINE not in trail


@pytest.mark.parametrize(("notify", "alert", "problem"), [
    ('["${HOME}"]', "immediate", "only TRACKER_… variables"),
    ('["not a url"]', "immediate", "is not a URL"),
    ('["json://x/\\u0007"]', "immediate", "control characters"),
    ("[]", "sometimes", "alert"),
])
def test_bad_channels_and_alerts_are_reported_by_line(tmp_path: Path, notify: str, alert: str, problem: str) -> None:
    with pytest.raises(RegistryError) as err:
        load_sops_file(write(tmp_path, notify, alert))
    assert problem in str(err.value) and "line " in str(err.value)


def test_the_0015_migration_upgrades_and_downgrades_keeping_teams(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "0008")
    eng = make_engine(database_url)
    try:
        with eng.begin() as conn:
            conn.execute(sa.text("insert into team (id, name, members, enabled) values ('ts', 'TS', '[]', true)"))
        upgrade(database_url)
        names = sa.inspect(eng).get_table_names()
        assert {"notify_delivery", "feed_token"} <= set(names)
        with Session(eng) as s:
            team = s.get(Team, "ts")
            assert team is not None and team.notify == []
        command.downgrade(alembic_config(database_url), "0008")
        names = sa.inspect(eng).get_table_names()
        assert "notify_delivery" not in names and "feed_token" not in names
        assert "notify" not in [c["name"] for c in sa.inspect(eng).get_columns("team")]
        upgrade(database_url)
    finally:
        eng.dispose()


def test_notify_test_names_unknown_targets_and_log_starts_empty(db_url: str) -> None:
    bad = run_tracker(db_url, "notify", "test", "nobody")
    assert bad.returncode == 2 and "neither a team id nor a channel URL" in bad.stderr
    assert run_tracker(db_url, "notify", "log").stdout == ""
    missing = run_tracker(db_url, "notify", "test", "${TRACKER_NOT_SET}")
    assert missing.returncode == 3 and "TRACKER_NOT_SET is not set" in missing.stdout
