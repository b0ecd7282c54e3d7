"""Rendered pages (`render: browser`): what a request needs to go through scrapy-playwright, and the
crawl settings that load it only when some source is rendered.

Only requests whose meta says `playwright: True` reach Chromium; the download handler passes every
other request to Scrapy's own, so plain and rendered sources share one crawl. scrapy-playwright
needs Twisted's asyncio reactor, which the crawl then installs.

The `wait_for` selector is awaited by a page method that notes a timeout instead of raising it, so
that an HTTP error status still reads as one (Scrapy's HttpError) and a selector that never
appeared is recorded as its own error by the spider (the page content is not extracted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracker.check.render import INSTALL_HINT
from tracker.config import Settings

ASYNCIO_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
# Chromium's flags for a headless crawler in a container: no sandbox (no user namespaces there), no GPU,
# nothing fetched in the background (updates, sync, safe-browsing lists).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def unavailable(settings: Settings) -> str | None:
    """Why rendered sources cannot be fetched in this installation, or None when they can."""
    try:
        import scrapy_playwright  # noqa: F401
    except ImportError:
        return f"render: browser needs the browser extra, which is not installed: {INSTALL_HINT}"
    if not Path(settings.browser_path).exists():
        return (f"render: browser needs Chromium at {settings.browser_path} (TRACKER_BROWSER_PATH), which does not "
                "exist: apt-get install chromium, or point TRACKER_BROWSER_PATH at it")
    return None


def crawl_settings(settings: Settings) -> dict[str, object]:
    """Scrapy settings for a crawl with rendered sources: the handler, the reactor, system Chromium."""
    return {
        "TWISTED_REACTOR": ASYNCIO_REACTOR,
        "DOWNLOAD_HANDLERS": {"http": HANDLER, "https": HANDLER},
        "PLAYWRIGHT_BROWSER_TYPE": "chromium",
        # Debian's Chromium, never a browser Playwright downloads.
        "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": settings.browser_path, "headless": True,
                                      "args": CHROMIUM_ARGS},
        # One context, a few pages: each open page is a renderer process (tens of MB).
        "PLAYWRIGHT_MAX_CONTEXTS": 1,
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": settings.browser_concurrency,
        "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": settings.download_timeout * 1000,
        "PLAYWRIGHT_ABORT_REQUEST": "spiders.render.abort_request",
    }


# What a page's text never needs: not loaded, which spares memory, bandwidth and the sites' trackers.
_SKIPPED = frozenset({"image", "media", "font"})


def abort_request(request: Any) -> bool:
    """Whether the browser skips one of the page's requests (images, media and fonts)."""
    return str(request.resource_type) in _SKIPPED


def request_meta(wait_for: str | None, timeout: float) -> dict[str, Any]:
    """The meta that sends one request through Chromium (and waits for its selector)."""
    meta: dict[str, Any] = {"playwright": True, "render_wait_for": wait_for}
    if wait_for:
        from scrapy_playwright.page import PageMethod

        meta["playwright_page_methods"] = [PageMethod(wait_for_selector, wait_for, timeout * 1000)]
    return meta


async def wait_for_selector(page: Any, selector: str, timeout_ms: float) -> bool:
    """Wait for the selector to be attached; False (not an exception) when it never was."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    try:
        await page.wait_for_selector(selector, state="attached", timeout=timeout_ms)
    except PlaywrightTimeout:
        return False
    return True


def wait_missed(meta: dict[str, Any]) -> bool:
    """Whether the request's `wait_for` selector never appeared."""
    methods = meta.get("playwright_page_methods") or []
    return any(getattr(m, "result", True) is False for m in methods)
