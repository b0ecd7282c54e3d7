"""The README documents every CLI command, every setting and every source kind (as datasette's docs tests do)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from tests.conftest import ROOT

README = ROOT / "README.md"


def readme() -> str:
    return README.read_text(encoding="utf-8")


def command_paths() -> list[str]:
    """Every runnable command, as typed: 'tracker sources sync', 'tracker crawl', ..."""
    from tracker.cli import app

    paths: list[str] = []

    def walk(cmd: Any, prefix: str) -> None:
        # A group has .commands (Typer vendors its own click, so no isinstance against click's).
        if hasattr(cmd, "commands"):
            for name, sub in sorted(cmd.commands.items()):
                if not sub.hidden:
                    walk(sub, f"{prefix} {name}")
        else:
            paths.append(prefix)

    walk(typer.main.get_command(app), "tracker")
    return paths


def test_the_command_tree_is_walked() -> None:
    paths = command_paths()
    # The issue-2 contract, at least: a walk that found nothing would prove nothing.
    for expected in ("tracker db upgrade", "tracker sources sync", "tracker sources list", "tracker crawl",
                     "tracker changes list", "tracker changes show"):
        assert expected in paths


def test_every_cli_command_is_in_the_readme() -> None:
    text = readme()
    # `tracker crawl` must not count as documenting a `tracker crawl-all`: whole words only.
    missing = [p for p in command_paths() if not re.search(re.escape(p) + r"(?![\w-])", text)]
    assert not missing, f"README.md does not mention these commands: {', '.join(missing)}"


def test_every_setting_is_in_the_readme() -> None:
    from tracker.config import Settings

    text = readme()
    names = [f"TRACKER_{name.upper()}" for name in Settings.model_fields]
    assert "TRACKER_DATABASE_URL" in names
    missing = [n for n in names if not re.search(re.escape(n) + r"(?!\w)", text)]
    assert not missing, f"README.md does not document these settings: {', '.join(missing)}"


def test_every_source_kind_is_in_the_readme() -> None:
    from tracker.sources import SOURCE_KINDS

    text = readme()
    assert SOURCE_KINDS
    missing = [k for k in SOURCE_KINDS
               if not re.search(rf"`{re.escape(k)}`|\bkind: {re.escape(k)}\b", text)]
    assert not missing, f"README.md does not describe these source kinds: {', '.join(missing)}"


def test_the_readme_test_command_is_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = ".venv/bin/pip install -q '.[test]' && .venv/bin/python -m pytest -q"
    assert command in readme()
    assert command in ci


def test_readme_is_a_real_file() -> None:
    assert isinstance(README, Path) and README.is_file()
