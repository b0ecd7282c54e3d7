#!/usr/bin/env python3
"""Time tracker.check.extract.extract() per page against the frozen reference extractor, and prove they agree.

Pages are built in-process the way policy_site.py serves /bulk/<i> (document i % D at version
(i // D) % V, wrapped in the site's navigation, scripts and noise), from ../shared/corpus/pga when it
exists, else from tests/fixtures/pga. First every version of every document is extracted by both
extractors (the reference is tests/support/reference_extract.py, the extractor as it was before it was
made faster) and their blocks and hashes compared; then --pages pages are timed, the two extractors
alternating page by page so that machine load falls on both alike, each page the best of --repeat runs.

Run:  .venv/bin/python bench/extract.py [--pages 1000] [--repeat 3] [--corpus DIR]
Exit: 0 when every page extracts identically, 1 otherwise (no time target: the figures are the result).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import CORPUS, ROOT, machine  # noqa: E402
from tests.support import reference_extract as reference  # noqa: E402
from tests.support.policy_site import Document, page  # noqa: E402
from tracker.check import extract as current  # noqa: E402
from tracker.check.blocks import ExtractionError, Rules  # noqa: E402

SELECT = ("article.policy",)


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """The fastest of repeat calls, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


# The rules compared: the crawl's, the same with the page's noise removed, and the whole body.
CHECKED_RULES = ((SELECT, ()), (SELECT, (".cookie-banner", "nav", "aside")), ((), ()))


def outcome(mod, body: bytes, select: tuple[str, ...], remove: tuple[str, ...]) -> tuple:  # noqa: ANN001
    """What one extractor makes of a page: blocks, hash and encoding, or the error it raises."""
    # (The current extractor's types live in tracker.check.blocks; the frozen copy keeps its own.)
    rules_type, error_type = ((reference.Rules, reference.ExtractionError) if mod is reference
                              else (Rules, ExtractionError))
    try:
        ex = mod.extract(body, rules_type(select=select, remove=remove))
    except (error_type, ValueError) as exc:
        return ("error", type(exc).__name__, str(exc))
    return ([(b.kind, b.text, b.path) for b in ex.blocks], ex.hash, ex.encoding)


def same(body: bytes) -> bool:
    """Whether both extractors give the same blocks and hash for a page (or fail alike), under every rule set."""
    return all(outcome(reference, body, *rules) == outcome(current, body, *rules) for rules in CHECKED_RULES)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--corpus", type=Path, default=CORPUS if CORPUS.exists() else ROOT / "tests" / "fixtures" / "pga")
    ap.add_argument("--pages", type=int, default=1000, help="how many /bulk-like pages to time")
    ap.add_argument("--repeat", type=int, default=3, help="time each page this many times, keep the best")
    args = ap.parse_args()

    docs = [Document(d) for d in sorted(args.corpus.iterdir()) if (d / "index.json").exists()]
    print(f"extract benchmark on {machine()}")
    print(f"corpus: {args.corpus} ({len(docs)} documents, {sum(len(d.versions) for d in docs)} versions)")

    checked, differing = 0, []
    for doc in docs:
        for v in range(len(doc.versions)):
            checked += 1
            if not same(page(doc, v).encode()):
                differing.append(f"{doc.slug} v{v}")
    print(f"equivalence: {checked} versions compared under {len(CHECKED_RULES)} rule sets, {len(differing)} differ"
          + (": " + ", ".join(differing[:10]) if differing else ""))

    bodies = []
    for i in range(args.pages):
        doc = docs[i % len(docs)]
        bodies.append(page(doc, (i // len(docs)) % len(doc.versions)).encode())
    ref_rules, new_rules = reference.Rules(select=SELECT), Rules(select=SELECT)
    ref_ms, new_ms, blocks = [], [], []
    for body in bodies:
        ref_ms.append(best_of(args.repeat, lambda body=body: reference.extract(body, ref_rules)))
        new_ms.append(best_of(args.repeat, lambda body=body: current.extract(body, new_rules)))
        blocks.append(len(current.extract(body, new_rules).blocks))
    sizes = [len(b) for b in bodies]
    print(f"{len(bodies)} /bulk-like pages: {statistics.mean(sizes) / 1024:.0f} KB on average "
          f"({min(sizes) / 1024:.0f}-{max(sizes) / 1024:.0f} KB), {statistics.mean(blocks):.0f} blocks on average; "
          f"select {list(SELECT)}; best of {args.repeat} per page")
    for name, ms in (("reference (before)", ref_ms), ("tracker.check.extract (now)", new_ms)):
        print(f"  {name:22} median {statistics.median(ms):.2f} ms, p95 {pct(ms, 95):.2f} ms, "
              f"mean {statistics.mean(ms):.2f} ms per page")
    big = [i for i, s in enumerate(sizes) if s > 100 * 1024]
    if big:
        print(f"  pages over 100 KB ({len(big)}): reference median {statistics.median(ref_ms[i] for i in big):.2f} ms, "
              f"now median {statistics.median(new_ms[i] for i in big):.2f} ms")
    print(f"RESULT: {'identical' if not differing else 'DIFFERENT'} output; median speed-up "
          f"{statistics.median(ref_ms) / statistics.median(new_ms):.1f}x")
    return 0 if not differing else 1


if __name__ == "__main__":
    sys.exit(main())
