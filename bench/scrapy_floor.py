#!/usr/bin/env python3
"""The floor under any Scrapy-based check: the tracker's own Scrapy configuration fetching the pages and
throwing them away (no extraction, no database), as one process start to end like `tracker crawl`.

bench/crawl.py runs it beside the tracker and urlwatch, so the figures show how much of a crawl is the
crawling framework itself and how much the tracker's work on top of it.

Run:  .venv/bin/python bench/scrapy_floor.py URLS.txt VALIDATORS.json [--conditional]
URLS.txt holds one URL per line. Without --conditional every page is fetched and its ETag /
Last-Modified written to VALIDATORS.json; with it, every request carries them (the unchanged
re-check; a page whose site sent neither is fetched plain, as a tracker would).
With --extract each 200 is also read by the tracker's own extractor (tracker.check.extract.extract with
`select: article.policy`, as bench/crawl.py declares the sources) and the blocks are thrown away: the
floor under any check that reads pages into blocks in the crawl's process, with nothing stored.
It starts up as `tracker crawl` does (tracker.process.frozen_startup).
Prints one line: "fetched N pages: S 200, M 304, F failed".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("urls", type=Path)
    ap.add_argument("validators", type=Path)
    ap.add_argument("--conditional", action="store_true")
    ap.add_argument("--extract", action="store_true", help="read each page into blocks (and drop them)")
    args = ap.parse_args()

    from tracker.process import frozen_startup

    # The start-up `tracker crawl` has (tracker.cli.app.startup), so that this stays the floor under it.
    with frozen_startup():
        import scrapy
        from scrapy.crawler import CrawlerProcess

        from spiders.runner import scrapy_settings
        from tracker.check.blocks import Rules
        from tracker.check.extract import extract
        from tracker.config import get_settings

    urls = args.urls.read_text().split()
    validators: dict[str, dict[str, str]] = json.loads(args.validators.read_text()) if args.conditional else {}
    counts = {"200": 0, "304": 0, "failed": 0}
    rules = Rules(select=("article.policy",))

    class FloorSpider(scrapy.Spider):
        name = "floor"

        async def start(self) -> Any:
            for url in urls:
                headers = {}
                if v := validators.get(url):
                    if v.get("etag"):
                        headers["If-None-Match"] = v["etag"]
                    if v.get("last_modified"):
                        headers["If-Modified-Since"] = v["last_modified"]
                yield scrapy.Request(url, headers=headers, meta={"handle_httpstatus_list": [304]},
                                     callback=self.parse, errback=self.failed, dont_filter=True)

        def parse(self, response: Any) -> None:
            if response.status == 304:
                counts["304"] += 1
                return
            counts["200"] += 1
            if args.extract:
                extract(response.body, rules, content_type=response.headers.get("Content-Type", b"").decode())
            etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
            validators[response.url] = {"etag": etag.decode() if etag else "",
                                        "last_modified": modified.decode() if modified else ""}

        def failed(self, failure: Any) -> None:
            counts["failed"] += 1

    settings = scrapy_settings(get_settings(), {}, None)
    settings.pop("ITEM_PIPELINES")  # nothing is stored
    process = CrawlerProcess(settings | {"LOG_INSTALL_ROOT_HANDLER": False})
    process.crawl(FloorSpider)
    process.start()
    if not args.conditional:
        args.validators.write_text(json.dumps(validators))
    print(f"fetched {len(urls)} pages: {counts['200']} 200, {counts['304']} 304, {counts['failed']} failed")
    return 0 if counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
