#!/usr/bin/env python3
"""Time the section-aware diff of every pair of consecutive versions of a real policy document.

Each version is rendered by policy_site (the page a crawl would get) and extracted first; only
tracker.check.diff.diff_blocks is timed (best of --repeat runs per pair). Extraction time per page
is printed too: the lxml path the tracker uses, beside a BeautifulSoup tree of the same page.

Run:  .venv/bin/python bench/diff.py [--doc youtube-community-guidelines] [--repeat 3]
Exit: 0 when the slowest diff is under the target (50 ms), 1 otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import CORPUS, machine, policy_site  # noqa: E402
from tracker.check.blocks import Block, Rules  # noqa: E402
from tracker.check.decode import decode  # noqa: E402
from tracker.check.diff import diff_blocks  # noqa: E402
from tracker.check.extract import extract  # noqa: E402

TARGET_MS = 50.0
RULES = Rules(select=("article.policy",))


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


def best_of(repeat: int, fn: Callable[..., object], *args: object) -> float:
    """The fastest of repeat calls, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t)
    return best * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--doc", default="youtube-community-guidelines")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--repeat", type=int, default=3, help="time each diff this many times, keep the best")
    args = ap.parse_args()
    from bs4 import BeautifulSoup

    print(f"diff benchmark on {machine()}")
    pages: list[tuple[bytes, str | None]] = []
    with policy_site(corpus=args.corpus) as site:
        n = site.control("state")[args.doc]["versions"]
        for v in range(n):
            pages.append(site.get(f"/docs/{args.doc}?v={v}"))

    versions: list[list[Block]] = []
    lxml_ms, bs4_ms = [], []
    for body, ctype in pages:
        versions.append(extract(body, RULES, content_type=ctype).blocks)
        lxml_ms.append(best_of(args.repeat, partial(extract, body, RULES, content_type=ctype)))
        markup, _ = decode(body, ctype)
        bs4_ms.append(best_of(1, BeautifulSoup, markup, "html.parser"))

    diff_ms: list[float] = []
    changed_pairs = 0
    for old, new in zip(versions, versions[1:], strict=False):
        if diff_blocks(old, new):
            changed_pairs += 1
        diff_ms.append(best_of(args.repeat, diff_blocks, old, new))

    sizes = [len(b) for b, _ in pages]
    blocks = [len(v) for v in versions]
    print(f"document: {args.doc}, {n} versions, rendered pages {min(sizes) / 1024:.0f}-{max(sizes) / 1024:.0f} KB "
          f"(newest {sizes[-1] / 1024:.0f} KB), {min(blocks)}-{max(blocks)} blocks")
    print(f"diff_blocks over {len(diff_ms)} consecutive pairs ({changed_pairs} with differences), best of "
          f"{args.repeat}: median {statistics.median(diff_ms):.1f} ms, p95 {pct(diff_ms, 95):.1f} ms, "
          f"max {max(diff_ms):.1f} ms (pair v{diff_ms.index(max(diff_ms))}->v{diff_ms.index(max(diff_ms)) + 1})")
    print(f"extraction per page, lxml path (tracker.check.extract: decode, parse, select, blocks): median "
          f"{statistics.median(lxml_ms):.1f} ms, max {max(lxml_ms):.1f} ms")
    print(f"for comparison, a BeautifulSoup html.parser tree of the same page: median "
          f"{statistics.median(bs4_ms):.1f} ms, max {max(bs4_ms):.1f} ms")
    ok = max(diff_ms) < TARGET_MS
    print(f"RESULT: slowest diff {max(diff_ms):.1f} ms, target < {TARGET_MS:g} ms: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
