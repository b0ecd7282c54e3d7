"""Immediate alerts from the running service, source failure/recovery alerts, and the secret grep."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PolicySite, run_tracker, write_sources
from tests.e2e.test_run_service import REDDIT, start_run, stop_run, wait_for
from tests.notify_support import Receiver, receiver

pytestmark = pytest.mark.slow
SECRET = "Zq9SECRETwebhookToken4711"

SOPS = f"""
teams:
  - id: trust-safety
    name: Trust & Safety
    members: [ts@example.com]
    notify: ["${{TRACKER_TS_HOOK}}"]
sops:
  - id: SOP-TS-1
    title: Enforcement
    owner: ts@example.com
    team: trust-safety
    alert: immediate
    watches:
      - source: {REDDIT}
        sections: ["*Enforcement"]
"""


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def _titles(hook: Receiver) -> list[str]:
    return [str(b.get("title")) for b in hook.bodies()]


def test_tracker_run_sends_an_immediate_alert_after_the_crawl_that_opens_an_impact(
        db_url: str, tmp_path: Path, policy_site: PolicySite, hook: Receiver) -> None:
    sources = write_sources(tmp_path / "sources.yaml", policy_site, [REDDIT], schedule="2s")
    sops = tmp_path / "sops.yaml"
    sops.write_text(SOPS)
    env = {"TRACKER_TS_HOOK": f"json://127.0.0.1:{hook.port}/alerts/{SECRET}?rto=2",
           "TRACKER_NOTIFY_BACKOFF": "0.05", "TRACKER_BASE_URL": "https://tracker.example.com"}
    proc = start_run(db_url, tmp_path, TRACKER_SOURCES_FILE=str(sources), TRACKER_SOPS_FILE=str(sops), **env)
    try:
        wait_for("a first check", lambda: run_tracker(db_url, "status", "--json").stdout.count('"last_result": "new"'))
        assert hook.requests == []  # a first version opens no impact: nothing to tell
        policy_site.set(REDDIT, 3)
        # Within a minute of the crawl that records the change, the alert is at the receiver.
        wait_for("the immediate alert", lambda: any(t.startswith("Review SOP-TS-1") for t in _titles(hook)),
                 timeout=60)
        policy_site.mode(REDDIT, "500")
        wait_for("the failure alert", lambda: any(t.startswith("Source failing") for t in _titles(hook)), timeout=60)
        policy_site.mode(REDDIT, "ok")
        wait_for("the recovery alert", lambda: any(t.startswith("Source recovered") for t in _titles(hook)),
                 timeout=60)
    finally:
        events = stop_run(proc)
    titles = _titles(hook)
    assert len([t for t in titles if t.startswith("Review SOP-TS-1")]) == 1, titles
    assert len([t for t in titles if t.startswith("Source failing")]) == 1, titles
    alert = next(b for b in hook.bodies() if str(b["title"]).startswith("Review"))
    assert "https://tracker.example.com/impacts/" in alert["message"]

    # A manual crawl afterwards sends nothing again.
    before = len(hook.requests)
    crawl = run_tracker(db_url, "crawl", **env)
    assert crawl.returncode in (0, 3), crawl.stderr
    assert len(hook.requests) == before

    # The secret appears nowhere: service log, status, the delivery log, the audit trail, an export.
    log = run_tracker(db_url, "notify", "log", "--json", **env)
    assert log.returncode == 0, log.stderr
    rows = json.loads(log.stdout)
    assert {r["status"] for r in rows} == {"sent"} and {"alert", "failure", "recovery"} <= {r["kind"] for r in rows}
    outputs = [json.dumps(events), log.stdout, crawl.stdout + crawl.stderr]
    for args in (["status"], ["status", "--json"], ["notify", "log"], ["audit", "log", "--json"],
                 ["sops", "list"], ["export", "--format", "jsonl", "--output", str(tmp_path / "exp")]):
        out = run_tracker(db_url, *args, **env)
        outputs.append(out.stdout + out.stderr)
    for f in (tmp_path / "exp").rglob("*"):
        if f.is_file():
            outputs.append(f.read_text(errors="replace"))
    outputs += [p.read_text() for p in tmp_path.glob("run-*.log")]
    test = run_tracker(db_url, "notify", "test", "json://127.0.0.1:9/x/" + SECRET + "?cto=1&rto=1",
                       TRACKER_NOTIFY_RETRIES="0", **env)
    assert test.returncode == 3
    outputs.append(test.stdout + test.stderr)
    for text in outputs:
        assert SECRET not in text


def test_two_sender_processes_at_once_deliver_each_alert_once(db_url: str, hook: Receiver) -> None:
    import subprocess
    import sys

    from sqlmodel import Session

    from tests.conftest import tracker_env
    from tests.notify_support import seed_with_channels
    from tracker.store.db import make_engine

    eng = make_engine(db_url)
    try:
        with Session(eng) as s:
            seed_with_channels(s, ["${TRACKER_TS_HOOK}"])
    finally:
        eng.dispose()
    env = tracker_env(db_url, TRACKER_TS_HOOK=f"json://127.0.0.1:{hook.port}/alerts/{SECRET}")
    procs = [subprocess.Popen([sys.executable, "-m", "tracker", "notify", "send"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    titles = _titles(hook)
    assert titles and len(titles) == len({hook_key(b) for b in hook.bodies()})
    assert all(SECRET not in o + e for o, e in outs)


def hook_key(body: dict[str, object]) -> str:
    """The impact link an alert carries (one per impact)."""
    message = str(body["message"])
    return message[message.index("/impacts/"):].split(")")[0]
