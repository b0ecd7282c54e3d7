"""The application packages type-check under mypy --strict (pyproject.toml [tool.mypy]), as shipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def test_tracker_and_spiders_pass_mypy_strict() -> None:
    pytest.importorskip("mypy", reason="mypy comes with the test extras: pip install '.[test]'")
    out = subprocess.run([sys.executable, "-m", "mypy", "tracker", "spiders"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
