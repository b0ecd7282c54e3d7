"""Retries with exponential backoff, honouring Retry-After, without blocking other requests; the
off-host redirect guard."""

from __future__ import annotations

import asyncio
import random
from email.utils import parsedate_to_datetime
from typing import Any

from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response

from tracker.check.redirects import url_host
from tracker.store.db import utcnow


def _retry_after(value: bytes | None) -> float | None:
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        return max(0.0, (parsedate_to_datetime(text) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's retry middleware, waiting base * 2**n (with jitter, or Retry-After) before each retry."""

    def __init__(self, settings: Any):
        super().__init__(settings)
        self.base = settings.getfloat("TRACKER_RETRY_BACKOFF_BASE", 1.0)
        self.cap = settings.getfloat("TRACKER_RETRY_BACKOFF_MAX", 60.0)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BackoffRetryMiddleware:
        o = cls(crawler.settings)
        o.crawler = crawler
        return o

    def _delay(self, request: Request, hint: float | None) -> float:
        n = request.meta.get("retry_times", 0)
        backoff = self.base * (2**n) * (0.75 + random.random() / 2)
        return float(min(self.cap, hint if hint is not None else backoff))

    def process_response(self, request: Request, response: Response, spider: Spider | None = None) -> Any:
        result = super().process_response(request, response)
        if isinstance(result, Request):
            result.meta["tracker_retry_delay"] = self._delay(request, _retry_after(response.headers.get("Retry-After")))
        return result

    def process_exception(self, request: Request, exception: Exception, spider: Spider | None = None) -> Any:
        result = super().process_exception(request, exception)
        if isinstance(result, Request):
            result.meta["tracker_retry_delay"] = self._delay(request, None)
        return result

    async def process_request(self, request: Request, spider: Spider | None = None) -> None:
        delay = request.meta.pop("tracker_retry_delay", None)
        if delay:
            await asyncio.sleep(delay)
        return None


class OffHostRedirect(IgnoreRequest):
    """A redirect left the source's host and the source refuses to follow such redirects."""

    def __init__(self, host: str):
        super().__init__(f"redirect to another host: {host}")
        self.host = host


class OffHostRedirectMiddleware:
    """Stops a redirect chain at the first hop to another host, for sources with offhost_redirects: refuse.

    Scrapy's RedirectMiddleware sends each hop back through the downloader as a new request that
    carries redirect_urls: that request is refused here before it is sent, so the other host is
    never asked (nor its page recorded as the policy).
    """

    def process_request(self, request: Request, spider: Spider | None = None) -> None:
        meta = request.meta
        if meta.get("refuse_offhost_redirects") and meta.get("redirect_urls"):
            host = url_host(request.url)
            if host != url_host(meta["source_url"]):
                raise OffHostRedirect(host)
        return None
