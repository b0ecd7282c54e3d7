#!/usr/bin/env python3
"""Look at the digest's HTML part in a real browser: headless Chromium screenshots the golden digest.

The golden digest (tests/golden/digest_pga.html) is the digest rendered for real corpus changes
(tests/fixtures/pga) by tests/integration/test_digest_golden.py. Its CSS is already inlined, as a mail client
gets it. Debian's chromium is needed (`apt-get install -y chromium`).

    .venv/bin/python bench/digest_screenshot.py [--html FILE] [--out docs/digest.png]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--hide-scrollbars", "--no-first-run", "--no-default-browser-check"]


def find_chromium() -> str:
    """The Chromium binary (Debian's package name first)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no chromium found: install it with `apt-get install -y chromium`")


def screenshot(html: Path, out: Path, *, width: int = 900, height: int = 1400, timeout: float = 90) -> Path:
    """Render an HTML file in headless Chromium and save a PNG screenshot of it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="digest-chromium-") as profile:
        cmd = [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out.resolve()}",
               f"--window-size={width},{height}", html.resolve().as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        raise SystemExit(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return out


def dump_dom(html: Path, *, timeout: float = 90) -> str:
    """The DOM Chromium built from an HTML file, after any script would have run."""
    with tempfile.TemporaryDirectory(prefix="digest-chromium-") as profile:
        cmd = [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", html.resolve().as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=ROOT / "tests" / "golden" / "digest_pga.html")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "digest.png")
    parser.add_argument("--width", type=int, default=900)
    parser.add_argument("--height", type=int, default=1400)
    args = parser.parse_args(argv)
    out = screenshot(args.html, args.out, width=args.width, height=args.height)
    print(f"screenshot of {args.html.relative_to(ROOT) if args.html.is_relative_to(ROOT) else args.html} "
          f"-> {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
