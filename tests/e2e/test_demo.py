"""`tracker demo` end to end, offline: its own database and site, and a guide that leads everywhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_tracker
from tracker.paths import demo_data_dir

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end_and_says_what_to_look_at(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    # The user's own settings must not leak into the demo (it makes its own database).
    env.update({"TRACKER_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")})
    out = subprocess.run([sys.executable, "-m", "tracker", "demo", "--dir", str(tmp_path / "demo")],
                         env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    db_url = f"sqlite:///{tmp_path / 'demo' / 'tracker.db'}"
    assert f"export TRACKER_DATABASE_URL={db_url}" in text
    assert "first crawl: checked 2 source(s)" in text and "2 new" in text
    assert "second crawl: checked 2 source(s)" in text and "2 changed" in text

    # The change, and the command that shows it, which works on the demo database.
    shown = dict(re.findall(r"change #(\d+) in ([a-z-]+):", text))
    assert set(shown.values()) == {"reddit-community-guidelines", "x-privacy-policy"}
    reddit_change = next(k for k, v in shown.items() if v == "reddit-community-guidelines")
    assert f"tracker changes show {reddit_change}" in text
    diff = run_tracker(db_url, "changes", "show", reddit_change)
    assert diff.returncode == 0 and "Reddit Content Policy > Enforcement" in diff.stdout
    assert "{+permanent banning of your Reddit account.+}" in diff.stdout

    # The impacted SOPs, with their reasons; the SOP whose watch does not match gets nothing.
    assert re.search(r'impact #\d+: SOP-TS-014 .*sections Reddit Content Policy > Enforcement', text)
    assert re.search(r"impact #\d+: SOP-TS-020 .*keywords ban", text)
    assert re.search(r"impact #\d+: SOP-PRIV-003 .*How To Contact X", text)
    assert "SOP-PRIV-007" not in text
    impacts = run_tracker(db_url, "impacts", "list", "--json")
    assert impacts.returncode == 0 and impacts.stdout.count('"sop_id"') == 3

    # The digest preview files it names exist.
    previews = re.findall(r"^  (/\S+\.html)$", text, re.M)
    assert previews and all(Path(p).is_file() for p in previews)
    assert any("tsops@example.com" in p for p in previews)

    # The rest of the product.
    assert "tracker serve" in text and "tracker audit verify" in text and "tracker status" in text
    assert "ATTRIBUTION.md" in text
    assert run_tracker(db_url, "audit", "verify").returncode == 0
    status = run_tracker(db_url, "status")
    assert status.returncode == 0 and "reddit-community-guidelines" in status.stdout

    # A second run in the same folder refuses to overwrite the demo database.
    again = subprocess.run([sys.executable, "-m", "tracker", "demo", "--dir", str(tmp_path / "demo")],
                           env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_demo_sample_is_small_and_attributed() -> None:
    data = demo_data_dir()
    size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    assert size < 1_000_000
    attribution = (data / "ATTRIBUTION.md").read_text()
    assert "ODC-By 1.0" in attribution and "Platform Governance Archive" in attribution
    for doc in (data / "pga").iterdir():
        assert (doc / "index.json").is_file() and (doc / "0000.md").is_file() and (doc / "0001.md").is_file()
