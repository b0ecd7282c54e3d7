"""One spider for a whole crawl: the sources of every kind, each fetched by its kind's spider.

Why: Scrapy's limits are a crawler's. Each crawler has its own downloader, hence its own per-host
slots (CONCURRENT_REQUESTS_PER_DOMAIN, a source's `concurrency` and `download_delay`) and its own
CONCURRENT_REQUESTS. A crawl that ran one crawler per kind therefore let each kind reach a host's
limit on its own: HTML pages and JSON documents of one host had twice the host's requests in flight,
and a crawl of k kinds k times TRACKER_CONCURRENCY. One crawler for every kind keeps the limits whole.

The kinds' spiders stay what they were (their own start requests, callbacks and errbacks): this one
only starts them all, in one engine, and is the spider the pipeline reports through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Self

import scrapy
from scrapy.crawler import Crawler

from spiders import KINDS
from spiders.base import SourceRequest, SourceSpider, StopFlag
from tracker.check.state import CheckOutcome


class AllKindsSpider(scrapy.Spider):
    """Every source of the crawl, grouped by kind; each group's requests come from the kind's spider."""

    name = "tracker"

    def __init__(self, by_kind: dict[str, list[SourceRequest]] | None = None,
                 report: Callable[[CheckOutcome], None] | None = None, stop: StopFlag | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.by_kind = by_kind or {}
        self.report = report or (lambda outcome: None)
        self.stop = stop or StopFlag()
        self.kinds: list[SourceSpider] = []

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        # Set up like any spider of the crawler (crawler, settings, closed on spider_closed).
        spider.kinds = [KINDS[kind].spider.from_crawler(crawler, sources=sources, stop=spider.stop)
                        for kind, sources in spider.by_kind.items()]
        return spider

    async def start(self) -> AsyncIterator[Any]:
        for kind in self.kinds:
            async for request in kind.start():
                yield request
