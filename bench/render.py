#!/usr/bin/env python3
"""Time a crawl of pages rendered by headless Chromium (`render: browser`) and its peak memory.

Serves --pages page shells on 127.0.0.1 whose script fetches a real policy version (tests/fixtures/pga,
as tests/support/rendered_site.py builds them) and crawls them with the real `tracker crawl`, once
rendered and once as plain html pages of the same text (the policy site's own markup), each on a
fresh SQLite database. Peak RSS is that of the whole process tree (psutil: the crawl and every
Chromium process it starts).

Run:  .venv/bin/python bench/render.py [--pages 20] [--concurrency 2] [--chromium /usr/bin/chromium]
Prints, for each crawl, the wall time, the time per page and the peak RSS (summed over the processes, so
libraries Chromium's processes share count once per process: an upper bound).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import Measured, machine, run_measured, run_tracker, tracker_cmd, tracker_env  # noqa: E402
from tests.support.page_server import PageServer, Route, real_page, serve_pages  # noqa: E402
from tests.support.rendered_site import FIXTURES, serve_rendered  # noqa: E402

DOCS = sorted(p.name for p in FIXTURES.iterdir() if (p / "index.json").exists())


def serve_all(pages: PageServer, count: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Serve `count` rendered pages and the same documents as plain pages; their sources entries."""
    rendered, plain = [], []
    for i in range(count):
        slug, version = DOCS[i % len(DOCS)], (i // len(DOCS)) % 5
        url = serve_rendered(pages, slug, version, path=f"p{i}")
        pages.routes[f"/plain/p{i}"] = Route(real_page(slug, version))
        rules = {"select": ["article.policy"], "remove": [".promo"]}
        rendered.append({"id": f"r{i}", "name": f"rendered {i}", "url": url, "render": "browser",
                         "wait_for": "article.policy", **rules})
        plain.append({"id": f"p{i}", "name": f"plain {i}", "url": pages.url(f"/plain/p{i}"), **rules})
    return rendered, plain


def crawl(entries: list[dict[str, object]], concurrency: int, chromium: str) -> Measured:
    """Sync the entries into a fresh database and measure one `tracker crawl` of them."""
    with tempfile.TemporaryDirectory() as tmp:
        env = tracker_env(f"sqlite:///{tmp}/bench.db", TRACKER_DOWNLOAD_DELAY="0",
                          TRACKER_BROWSER_CONCURRENCY=str(concurrency), TRACKER_BROWSER_PATH=chromium,
                          TRACKER_CONCURRENCY_PER_DOMAIN="8")
        (Path(tmp) / "sources.yaml").write_text(yaml.safe_dump({"sources": entries}))
        run_tracker(env, "db", "upgrade")
        run_tracker(env, "sources", "sync", f"{tmp}/sources.yaml")
        measured = run_measured(tracker_cmd("crawl"), env=env)
    if measured.rc != 0:
        raise SystemExit(f"the crawl exited {measured.rc}:\n{measured.stdout}\n{measured.stderr}")
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=2, help="TRACKER_BROWSER_CONCURRENCY")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    if not Path(args.chromium).exists():
        raise SystemExit(f"{args.chromium} not found: apt-get install chromium")
    print(machine())
    with serve_pages() as pages:
        rendered, plain = serve_all(pages, args.pages)
        results = {"rendered": crawl(rendered, args.concurrency, args.chromium),
                   "plain": crawl(plain, args.concurrency, args.chromium)}
    print(f"{args.pages} pages, {args.concurrency} rendered at once")
    for name, m in results.items():
        print(f"{name:9} wall {m.wall:6.2f} s   per page {1000 * m.wall / args.pages:7.1f} ms   "
              f"peak RSS {m.peak_mb:7.1f} MB (process tree)")
    extra = results["rendered"].wall - results["plain"].wall
    print(f"rendering adds {1000 * extra / args.pages:.1f} ms per page (browser start included) and "
          f"{results['rendered'].peak_mb - results['plain'].peak_mb:.1f} MB at peak")


if __name__ == "__main__":
    main()
