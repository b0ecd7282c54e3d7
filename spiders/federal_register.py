"""The spider for `kind: federal_register` sources: a documents.json search, page by page.

It asks only for what may be new: from the newest publication date already recorded less a few
days' overlap (tracker.check.fedreg.ask_since), never from the wall clock; the pipeline skips
known document numbers. Pages are followed through `next_page_url` up to the query's max_pages,
and a next page already seen (a paging loop) or an empty page where results were promised is
an error that keeps the baseline. A first check without `since:` reads one page only: the
baseline of a query matching thousands of past documents is its newest page, not all of them.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import scrapy
from scrapy.http import Response

from spiders.base import SourceRequest, SourceSpider
from tracker.check.fedreg import MalformedResults, ask_since, parse_page, search_url
from tracker.check.shapes import since_of


class FederalRegisterSpider(SourceSpider):
    """Collects every page of a search into one fetch the pipeline records."""

    name = "federal_register"

    def first_url(self, src: SourceRequest) -> str:
        query = src.options.get("query") or {}
        newest = date.fromisoformat(src.cursor) if src.cursor else None
        return search_url(src.url, query, since=ask_since(newest, since_of(src.options)),
                          per_page=int(query.get("per_page", 100)))

    def parse_source(self, response: Response) -> Any:
        if response.status == 304:
            yield self.fetch_from(response)
            return
        meta = response.meta
        src: SourceRequest = meta["source"]
        collected: list[dict[str, Any]] = meta.get("collected", [])
        seen: list[str] = meta.get("seen", [response.request.url if response.request else response.url])
        try:
            page = parse_page(response.body)
        except MalformedResults as exc:
            yield self.failed(response, f"{exc} from {response.url}")
            return
        if not page.results and page.count > len(collected):
            yield self.failed(response, f"empty result page from {response.url} although the search counts "
                                        f"{page.count} document(s); the baseline is kept and the search retried "
                                        "next time")
            return
        collected = collected + page.results
        query = src.options.get("query") or {}
        first_check = src.cursor is None and since_of(src.options) is None
        nxt = page.next_page_url
        if nxt and page.results and not first_check and len(seen) < int(query.get("max_pages", 10)):
            if nxt in seen:
                yield self.failed(response, f"paging loop: next_page_url of {response.url} points back to "
                                            f"{nxt}; the baseline is kept")
                return
            follow = {k: v for k, v in meta.items() if k in ("source_id", "source_url", "source",
                                                               "download_timeout", "download_slot",
                                                               "dont_obey_robotstxt", "first")}
            follow.setdefault("first", response)
            yield scrapy.Request(nxt, meta={**follow, "collected": collected, "seen": [*seen, nxt]},
                                 callback=self.parse_source, errback=self.source_failed, dont_filter=True)
            return
        first: Response = meta.get("first", response)
        yield self.fetch_from(first, body=json.dumps({"count": page.count, "results": collected}).encode())
