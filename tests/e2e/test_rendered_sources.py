"""`render` and `wait_for` in a sources file: checked by `tracker sources sync` with the line and id of
each mistake, stored on the source, and shown as `html (browser)` by the CLI and the web UI
(tests/integration/test_web_kinds.py)."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

from sqlalchemy.engine import Engine

from tests.conftest import run_tracker

GOOD = """\
sources:
  - id: help-centre
    name: Help centre rules
    url: https://help.example.com/rules
    select: ["article.policy"]
    render: browser
    wait_for: "article.policy h2"
  - id: plain
    name: Plain page
    url: https://example.com/terms
"""

BAD = """\
sources:
  - id: unknown-renderer        # line 2
    name: Unknown renderer
    url: https://example.com/a
    render: chrome
  - id: pdf-rendered            # line 6
    name: A rendered PDF
    url: https://example.com/b.pdf
    kind: pdf
    render: browser
  - id: wait-alone              # line 11
    name: wait_for without render
    url: https://example.com/c
    wait_for: main
  - id: bad-wait                # line 15
    name: Invalid wait_for
    url: https://example.com/d
    render: browser
    wait_for: "main["
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(dedent(text))
    return path


def test_sync_reports_each_render_mistake_with_its_line_and_source(db_url: str, tmp_path: Path) -> None:
    out = run_tracker(db_url, "sources", "sync", str(write(tmp_path, BAD)))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "4 problem(s)" in out.stderr, out.stderr
    for line, sid, fragment in [(2, "unknown-renderer", "render: unknown renderer 'chrome' (known: browser)"),
                                (6, "pdf-rendered", "render: applies to kind html only, not pdf"),
                                (11, "wait-alone", "wait_for: applies to rendered pages only"),
                                (15, "bad-wait", "wait_for: invalid CSS selector 'main['")]:
        hits = [ln for ln in out.stderr.splitlines() if f"line {line} (source {sid})" in ln]
        assert len(hits) == 1 and fragment in hits[0], (sid, out.stderr)
    assert json.loads(run_tracker(db_url, "sources", "list", "--json").stdout) == []


def test_render_options_are_stored_and_listed_with_the_kind(db_url: str, engine: Engine, tmp_path: Path) -> None:
    out = run_tracker(db_url, "sources", "sync", str(write(tmp_path, GOOD)))
    assert out.returncode == 0, out.stderr
    listed = {s["id"]: s for s in json.loads(run_tracker(db_url, "sources", "list", "--json").stdout)}
    assert listed["help-centre"]["options"] == {"render": "browser", "wait_for": "article.policy h2"}
    assert listed["plain"]["options"] == {}
    text = run_tracker(db_url, "sources", "list").stdout
    assert f"{'help-centre':40} html (browser) " in text
    assert f"{'plain':40} html           never checked" in text
