"""What every source spider shares: conditional GET requests and turning failures into items."""

from __future__ import annotations

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
from tracker.db import utcnow
from tracker.ingest import Fetch

# Scrapy 2.13+ wraps Twisted's errors in its own; older versions raise Twisted's.
_TIMEOUTS = (TimeoutError, TCPTimedOutError, *(
    [scrapy.exceptions.DownloadTimeoutError] if hasattr(scrapy.exceptions, "DownloadTimeoutError") else []))
_NO_HOST = (DNSLookupError, *(
    [scrapy.exceptions.CannotResolveHostError] if hasattr(scrapy.exceptions, "CannotResolveHostError") else []))
_REFUSED = (ConnectionRefusedError, *(
    [scrapy.exceptions.DownloadConnectionRefusedError]
    if hasattr(scrapy.exceptions, "DownloadConnectionRefusedError") else []))


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
    offhost_redirects: str = "record"  # or "refuse" (see spiders.middlewares.OffHostRedirectMiddleware)


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
            headers = dict(src.headers)
            if src.etag:
                headers["If-None-Match"] = src.etag
            if src.last_modified:
                headers["If-Modified-Since"] = src.last_modified
            meta: dict[str, Any] = {"source_id": src.id, "source_url": src.url,
                                    "handle_httpstatus_list": [304]}
            if src.timeout:
                meta["download_timeout"] = src.timeout
            if src.slot:
                meta["download_slot"] = src.slot
            if not src.obey_robots:
                meta["dont_obey_robotstxt"] = True
            if src.offhost_redirects == "refuse":
                meta["refuse_offhost_redirects"] = True
            yield scrapy.Request(src.url, headers=headers, meta=meta, callback=self.parse_source,
                                 errback=self.source_failed, dont_filter=True)

    def parse_source(self, response: Response) -> Any:
        yield self.fetch_from(response)

    def fetch_from(self, response: Response, error: str | None = None) -> Fetch:
        meta = response.request.meta if response.request is not None else response.meta
        headers = {k.decode("latin-1"): b", ".join(v).decode("latin-1") for k, v in response.headers.items()}
        return Fetch(source_id=meta["source_id"], url=meta["source_url"], status=response.status,
                     headers=headers, body=response.body, final_url=response.url, error=error,
                     fetched_at=utcnow())

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
        elif "download max size" in str(value) or "maxsize" in str(value):
            error = (f"{url} is larger than TRACKER_MAX_PAGE_BYTES allows ({value}); raise the limit "
                     "if the page is legitimate")
        elif "robots.txt" in str(value):
            error = (f"{url} is disallowed by the site's robots.txt, which the tracker obeys; to fetch it "
                     "anyway set `options: {obey_robots: false}` on the source (or TRACKER_OBEY_ROBOTS=false)")
        else:
            error = f"{failure.type.__name__ if failure.type else 'error'} fetching {url}{after}: {failure.value}"
        yield Fetch(source_id=meta["source_id"], url=meta["source_url"], error=error, fetched_at=utcnow())
