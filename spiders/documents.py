"""Spiders for documents that are not HTML pages: `kind: pdf` (optionally found on an index page) and `kind: json`.

They fetch like the html spider; the pipeline extracts with the kind's extractor (tracker.check.kinds).
A pdf source with `link_select` names an HTML page that links to the current PDF (a file renamed on
every edition is still followed): the page is fetched in full, the first link the selector finds
is followed, and the PDF request, not the page's, carries the stored validators (ETag and
Last-Modified were the PDF's).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urljoin, urlparse

import scrapy
from scrapy.http import Response

from spiders.base import SourceSpider
from tracker.check.state import Fetch
from tracker.store.db import utcnow

_VALIDATORS = ("If-None-Match", "If-Modified-Since")


def link_target(page_url: str, href: str) -> str | None:
    """The absolute URL a link on an index page leads to, or None unless it is http(s).

    The index page is hostile input: a link to file:, data: or ftp: would make the crawler read what
    it must not (Scrapy has handlers for those schemes).
    """
    target = urljoin(page_url, href.strip())
    parts = urlparse(target)
    return target if parts.scheme in ("http", "https") and parts.netloc else None


class JsonSpider(SourceSpider):
    """Fetches JSON documents and API answers."""

    name = "json"


class PdfSpider(SourceSpider):
    """Fetches PDFs, directly or through the link an index page holds."""

    name = "pdf"

    async def start(self) -> AsyncIterator[scrapy.Request]:
        link_select = {src.id: src.link_select for src in self.sources if src.link_select}
        async for request in super().start():
            selector = link_select.get(request.meta["source_id"])
            if selector is None:
                yield request
                continue
            kept = {h: request.headers.pop(h) for h in _VALIDATORS if h in request.headers}
            yield request.replace(callback=self.follow_link,
                                  meta={**request.meta, "link_select": selector, "validators": kept,
                                        "handle_httpstatus_list": []})

    def follow_link(self, response: Response) -> Any:
        """Find the current PDF's link on the index page and fetch it (with the PDF's validators)."""
        meta = response.meta
        href = self._link(response, meta["link_select"])
        if href is None:
            yield Fetch(source_id=meta["source_id"], url=meta["source_url"], status=response.status,
                        final_url=response.url, fetched_at=utcnow(),
                        error=f"link_select {meta['link_select']!r} found no link on {response.url}: "
                              "the index page changed; update the source's link_select")
            return
        target = link_target(response.url, href)
        if target is None:
            yield Fetch(source_id=meta["source_id"], url=meta["source_url"], status=response.status,
                        final_url=response.url, fetched_at=utcnow(),
                        error=f"link_select {meta['link_select']!r} on {response.url} leads to {href[:200]!r}, "
                              "not an http(s) URL: the tracker follows only web links")
            return
        headers = {k: v for k, v in meta.get("validators", {}).items() if v}
        keep: dict[str, Any] = {k: meta[k] for k in ("source_id", "source_url", "download_timeout", "download_slot",
                                     "dont_obey_robotstxt") if k in meta}
        yield scrapy.Request(target, headers=headers,
                             meta={**keep, "handle_httpstatus_list": [304]},
                             callback=self.parse_source, errback=self.source_failed, dont_filter=True)

    @staticmethod
    def _link(response: Response, selector: str) -> str | None:
        """The href of the first element the selector matches that has one."""
        import lxml.html

        from tracker.check.extract import _selector

        try:
            root = lxml.html.document_fromstring(response.body or b"<html></html>")
        except Exception:  # not HTML at all: no link
            return None
        for el in _selector(selector)(root):
            href = el.get("href") or next((a.get("href") for a in el.iter("a") if a.get("href")), None)
            if href and href.strip():
                return str(href.strip())
        return None
