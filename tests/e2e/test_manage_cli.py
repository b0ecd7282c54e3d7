"""The CLI of managing what is watched: `sources export` -> `sources sync` is no change, `manage --by`,
a UI-managed row beside a file sync, and `sources check` with and without a running service."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from spiders import KINDS
from tests.conftest import PolicySite, run_tracker, write_sources
from tests.e2e.test_run_service import start_run, stop_run, wait_for
from tracker.declare.manage import create_source
from tracker.service.checknow import service_running
from tracker.store.db import session_scope
from tracker.store.models import AuditEvent, CheckRequest, Source

REDDIT = "reddit-community-guidelines"
TIKTOK = "tiktok-privacy-policy"


def test_export_sync_round_trip_and_manage(db_url: str, engine: Engine, tmp_path: Path,
                                           policy_site: PolicySite) -> None:
    sources = write_sources(tmp_path / "sources.yaml", policy_site, [REDDIT, TIKTOK])
    assert run_tracker(db_url, "sources", "sync", str(sources)).returncode == 0
    with session_scope(engine) as s:
        create_source(session=s, actor="ed@example.com", kinds=KINDS,
                      data={"id": "from-ui", "name": "From the UI", "url": policy_site.url(REDDIT)})
    out = run_tracker(db_url, "sources", "export", "--output", str(tmp_path / "export.yaml"))
    assert out.returncode == 0, out.stderr
    synced = run_tracker(db_url, "sources", "sync", str(tmp_path / "export.yaml"))
    assert synced.returncode == 0, synced.stderr
    assert "synced" in synced.stdout and "0 added, 0 updated, 0 disabled, 2 unchanged" in synced.stdout
    assert ("1 managed in the UI, left alone: from-ui (hand back with `tracker sources manage ID --by file`)"
            in synced.stdout)
    # The original file does not list from-ui: it is not disabled.
    assert run_tracker(db_url, "sources", "sync", str(sources)).returncode == 0
    with Session(engine) as s:
        assert s.get(Source, "from-ui").enabled  # type: ignore[union-attr]
    # Hand it back to the file: the next sync disables it, as the file does not list it.
    handed = run_tracker(db_url, "sources", "manage", "from-ui", "--by", "file", "--actor", "ed@example.com")
    assert handed.returncode == 0 and "is now managed in files" in handed.stdout
    assert "- from-ui (disabled" in run_tracker(db_url, "sources", "sync", str(sources)).stdout
    stdout_export = run_tracker(db_url, "sources", "export", "--managed", "file")
    assert stdout_export.returncode == 0 and "enabled: false" in stdout_export.stdout
    with Session(engine) as s:
        actions = [e.action for e in s.exec(select(AuditEvent).where(AuditEvent.entity_id == "from-ui")).all()]
    assert actions == ["source.added", "source.managed_by", "source.disabled"]
    bad = run_tracker(db_url, "sources", "manage", "nope", "--by", "ui")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: unknown source id 'nope' (see `tracker sources list`)"
    assert run_tracker(db_url, "sources", "export", "--managed", "some").returncode == 2


def test_sops_export_round_trip_with_a_ui_team(db_url: str, tmp_path: Path, policy_site: PolicySite) -> None:
    assert run_tracker(db_url, "sources", "sync",
                       str(write_sources(tmp_path / "s.yaml", policy_site, [REDDIT]))).returncode == 0
    sops = tmp_path / "sops.yaml"
    sops.write_text("teams:\n  - id: ts\n    name: Trust\n    notify: ['mailto:${TRACKER_TS_MAIL}']\n"
                    f"sops:\n  - id: SOP-1\n    title: One\n    owner: a@example.com\n    team: ts\n"
                    f"    watches:\n      - source: {REDDIT}\n        keywords: [ban]\n")
    assert run_tracker(db_url, "sops", "sync", str(sops)).returncode == 0
    assert run_tracker(db_url, "sops", "manage", "ts", "--team", "--by", "ui").returncode == 0
    exported = run_tracker(db_url, "sops", "export", "--managed", "file")
    (tmp_path / "file-only.yaml").write_text(exported.stdout)
    # The export of the file rows names team ts, which is managed in the UI now: still valid.
    synced = run_tracker(db_url, "sops", "sync", str(tmp_path / "file-only.yaml"))
    assert synced.returncode == 0, synced.stderr
    assert "SOPs: 0 added, 0 updated, 0 disabled, 1 unchanged; teams: 0 added, 0 updated, 0 disabled" in synced.stdout


@pytest.mark.slow
def test_sources_check_here_and_through_the_service(db_url: str, engine: Engine, tmp_path: Path,
                                                    policy_site: PolicySite) -> None:
    sources = write_sources(tmp_path / "sources.yaml", policy_site, [REDDIT], schedule="1d")
    assert run_tracker(db_url, "sources", "sync", str(sources)).returncode == 0
    here = run_tracker(db_url, "sources", "check", REDDIT, "--by", "ed@example.com")
    assert here.returncode == 0, here.stderr
    assert "checking reddit-community-guidelines here" in here.stderr and here.stdout == f"{REDDIT}: new\n"
    proc = start_run(db_url, tmp_path, TRACKER_SOURCES_FILE=str(sources))
    try:
        def alive() -> bool:
            with Session(engine) as s:
                return service_running(session=s)

        wait_for("the service's heartbeat", alive)
        policy_site.next(REDDIT)
        through = run_tracker(db_url, "sources", "check", REDDIT, "--wait", "90")
        assert through.returncode == 0, through.stderr
        assert "in the running service" in through.stderr and through.stdout == f"{REDDIT}: changed\n"
    finally:
        stop_run(proc)
    with Session(engine) as s:
        states = [(r.state, r.outcome) for r in s.exec(select(CheckRequest).order_by(CheckRequest.id)).all()]
    assert states == [("done", "new"), ("done", "changed")]
    policy_site.mode(REDDIT, "404")
    failed = run_tracker(db_url, "sources", "check", REDDIT)
    assert failed.returncode == 3 and failed.stdout.startswith(f"{REDDIT}: failed: ")
    assert run_tracker(db_url, "sources", "check", "nope").returncode == 2
