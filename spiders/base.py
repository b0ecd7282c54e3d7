"""What every source spider shares: conditional GET requests and turning failures into items."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import scrapy
import scrapy.exceptions
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import (
    ConnectionRefusedError,
    DNSLookupError,
    TCPTimedOutError,
    TimeoutError,
)
from twisted.python.failure import Failure

from spiders.middlewares import OffHostRedirect
from spiders.render import request_meta, wait_missed
from tracker.check.parts import PARTS_TYPE, Part, encode_parts
from tracker.check.state import Fetch
from tracker.store.db import utcnow

# Scrapy 2.13+ wraps Twisted's errors in its own; older versions raise Twisted's.
_TIMEOUTS = (TimeoutError, TCPTimedOutError, *(
    [scrapy.exceptions.DownloadTimeoutError] if hasattr(scrapy.exceptions, "DownloadTimeoutError") else []))
_NO_HOST = (DNSLookupError, *(
    [scrapy.exceptions.CannotResolveHostError] if hasattr(scrapy.exceptions, "CannotResolveHostError") else []))
# Scrapy cancels a download only when the response passes DOWNLOAD_MAXSIZE (TRACKER_MAX_PAGE_BYTES): up
# front from its Content-Length, or once more bytes than that arrived (a chunked response; the error
# then has no message at all).
_TOO_LARGE = tuple([scrapy.exceptions.DownloadCancelledError] if hasattr(scrapy.exceptions, "DownloadCancelledError")
                   else [])
_ANNOUNCED = re.compile(r"Expected to receive (\d+) bytes")
_REFUSED = (ConnectionRefusedError, *(
    [scrapy.exceptions.DownloadConnectionRefusedError]
    if hasattr(scrapy.exceptions, "DownloadConnectionRefusedError") else []))


# Request meta Scrapy keeps for one request (retries, redirects): not carried over to the next page.
_PER_REQUEST = frozenset({"retry_times", "redirect_times", "redirect_urls", "redirect_ttl", "download_latency",
                          "depth", "download_slot_request"})


@dataclass
class SourceRequest:
    """What a spider needs to know about a source to fetch it."""

    id: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    slot: str | None = None
    obey_robots: bool = True
    link_select: str | None = None  # kind pdf: the link to follow on the page at url
    urls: list[str] = field(default_factory=list)  # a document of several pages (url is the first)
    # The kind's own inputs: options (`query`, `since`) and what the last check left (tracker.check.shapes).
    options: dict[str, Any] = field(default_factory=dict)
    cursor: str | None = None
    offhost_redirects: str = "record"  # or "refuse" (see spiders.middlewares.OffHostRedirectMiddleware)
    render: str | None = None  # "browser": loaded in headless Chromium (spiders.render)
    wait_for: str | None = None  # the CSS selector a rendered page must show before it is extracted
    render_timeout: float = 15.0  # seconds to wait for it (TRACKER_BROWSER_WAIT_TIMEOUT)


@dataclass
class StopFlag:
    """Set (from a signal handler: a plain attribute, no lock) when the crawl was asked to stop."""

    requested: bool = False


class SourceSpider(scrapy.Spider):
    """Fetches each source once, with its validators, and yields a Fetch whatever happens (but a stop)."""

    name = "source"

    def __init__(self, sources: list[SourceRequest], stop: StopFlag | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.sources = sources
        self.stop = stop or StopFlag()

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for src in self.sources:
            yield self.first_request(src)

    def first_url(self, src: SourceRequest) -> str:
        """What a check of the source asks for first (a kind's spider may ask an API instead)."""
        return src.url

    def first_request(self, src: SourceRequest) -> scrapy.Request:
        """The source's first request, conditional when the source has validators."""
        headers = dict(src.headers)
        several = len(src.urls) > 1
        # A rendered page's validators are its shell's, not those of what its scripts load: fetched in full.
        conditional = not several and not src.render
        if src.etag and conditional:
            headers["If-None-Match"] = src.etag
        if src.last_modified and conditional:
            headers["If-Modified-Since"] = src.last_modified
        meta: dict[str, Any] = {"source_id": src.id, "source_url": src.url,
                                "handle_httpstatus_list": [304], "source": src}
        if several:
            # Several pages: fetched one after the other in full (validators would only be the
            # last page's), then recorded as one document.
            meta.update(parts=[], parts_todo=src.urls[1:], handle_httpstatus_list=[])
        if src.timeout:
            meta["download_timeout"] = src.timeout
        if src.slot:
            meta["download_slot"] = src.slot
        if not src.obey_robots:
            meta["dont_obey_robotstxt"] = True
        if src.offhost_redirects == "refuse":
            meta["refuse_offhost_redirects"] = True
        if src.render:
            meta.update(request_meta(src.wait_for, src.render_timeout))
        return scrapy.Request(self.first_url(src), headers=headers, meta=meta, callback=self.parse_source,
                              errback=self.source_failed, dont_filter=True)

    def parse_source(self, response: Response) -> Any:
        meta = response.meta
        if meta.get("playwright") and wait_missed(meta):
            yield self.failed(response, f"wait_for {meta['render_wait_for']!r} never appeared on {response.url} "
                                        "once rendered: the page changed (update the source's wait_for) or is "
                                        "slow (raise TRACKER_BROWSER_WAIT_TIMEOUT)")
            return
        if "parts" not in meta:
            yield self.fetch_from(response)
            return
        ctype = response.headers.get("Content-Type")
        parts = [*meta["parts"], Part(response.url, ctype.decode("latin-1") if ctype else None, response.body)]
        todo = meta["parts_todo"]
        if todo:
            yield scrapy.Request(todo[0], headers=response.request.headers if response.request else None,
                                 meta={**{k: v for k, v in meta.items() if k not in _PER_REQUEST},
                                       "parts": parts, "parts_todo": todo[1:]},
                                 callback=self.parse_source, errback=self.source_failed, dont_filter=True)
            return
        yield Fetch(source_id=meta["source_id"], url=meta["source_url"], status=200,
                    headers={"Content-Type": PARTS_TYPE}, body=encode_parts(parts), final_url=meta["source_url"],
                    fetched_at=utcnow())

    def fetch_from(self, response: Response, error: str | None = None, *, body: bytes | None = None,
                   facts: dict[str, str] | None = None) -> Fetch:
        meta = response.request.meta if response.request is not None else response.meta
        headers = {k.decode("latin-1"): b", ".join(v).decode("latin-1") for k, v in response.headers.items()}
        return Fetch(source_id=meta["source_id"], url=meta["source_url"], status=response.status,
                     headers=headers, body=response.body if body is None else body,
                     final_url=response.url if body is None else meta["source_url"], error=error,
                     fetched_at=utcnow(), facts=facts or {})

    def failed(self, response: Response, error: str) -> Fetch:
        """A check that got an answer it cannot use: recorded as the source's error."""
        meta = response.request.meta if response.request is not None else response.meta
        return Fetch(source_id=meta["source_id"], url=meta["source_url"], status=response.status,
                     error=error, fetched_at=utcnow())

    def source_failed(self, failure: Failure) -> Any:
        if self.stop.requested:
            # A request cut short or timed out while the crawl stops is the stop's doing, not the
            # source's: no Fetch, so the source keeps its state and is checked again next time.
            return
        request = failure.request  # type: ignore[attr-defined]
        meta = request.meta
        retries = meta.get("retry_times", 0)
        after = f" after {retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
        value = failure.value
        if isinstance(value, HttpError):
            response = value.response
            error = f"HTTP {response.status} from {response.url}{after}"
            yield self.fetch_from(response, error=error)
            return
        url = request.url
        if isinstance(value, OffHostRedirect):
            error = (f"{meta['source_url']} redirects to another host ({value.host}: {url}); refused because "
                     "the source sets options.offhost_redirects: refuse (fix the url, or set it to record)")
        elif isinstance(value, _TIMEOUTS):
            timeout = meta.get("download_timeout")
            took = f" after {timeout:g}s" if isinstance(timeout, int | float) else ""
            error = (f"timed out{took} fetching {url}{after} (raise TRACKER_DOWNLOAD_TIMEOUT or the "
                     "source's options.timeout if the site is just slow)")
        elif isinstance(value, _NO_HOST):
            error = f"host not found for {url}: check the source's url"
        elif isinstance(value, _REFUSED):
            error = f"connection refused by {url}{after}"
        elif isinstance(value, _TOO_LARGE) or "download max size" in str(value):
            error = self._too_large(url, str(value), meta)
        elif "robots.txt" in str(value):
            error = (f"{url} is disallowed by the site's robots.txt, which the tracker obeys; to fetch it "
                     "anyway set `options: {obey_robots: false}` on the source (or TRACKER_OBEY_ROBOTS=false)")
        else:
            error = f"{failure.type.__name__ if failure.type else 'error'} fetching {url}{after}: {failure.value}"
        yield Fetch(source_id=meta["source_id"], url=meta["source_url"], error=error, fetched_at=utcnow())

    def _too_large(self, url: str, message: str, meta: dict[str, Any]) -> str:
        """The error of a response larger than TRACKER_MAX_PAGE_BYTES: the limit and the size."""
        limit = meta.get("download_maxsize") or (self.crawler.settings.getint("DOWNLOAD_MAXSIZE")
                                                 if getattr(self, "crawler", None) else 0)
        announced = _ANNOUNCED.search(message)
        size = (f"it announced {announced.group(1)} bytes" if announced
                else f"more than {limit} bytes arrived" if limit else "it sent more")
        allowed = f" ({limit} bytes)" if limit else ""
        return (f"{url} is larger than TRACKER_MAX_PAGE_BYTES{allowed} allows: {size}; the download was "
                "stopped. Raise TRACKER_MAX_PAGE_BYTES if the page is legitimate")
