"""Running a crawl: load the due sources, configure Scrapy politely, collect the outcomes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from scrapy.settings import default_settings as scrapy_defaults
from sqlmodel import Session, col, select

from spiders import KINDS, downloader, render
from spiders.base import SourceRequest, StopFlag
from spiders.crawl import AllKindsSpider
from tracker.check.record import lock_sources, record_check
from tracker.check.state import FAILED, RESULTS, ChangeHook, CheckOutcome, Fetch
from tracker.check.streams import stream_cursors
from tracker.config import Settings
from tracker.store.db import make_engine, session_scope
from tracker.store.models import CheckState, Source, Version


class UnknownSources(Exception):
    """Source ids that are not in the database, or disabled."""


@dataclass
class CrawlSummary:
    """Every outcome of a crawl and the count of each result; whether a signal stopped it early."""

    outcomes: list[CheckOutcome] = field(default_factory=list)
    interrupted: bool = False
    # Sources an interrupted crawl never checked: nothing was recorded for them.
    unchecked: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(RESULTS, 0)
        for o in self.outcomes:
            counts[o.result] += 1
        return counts

    @property
    def failed(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if o.result == "failed"]


def select_sources(session: Session, source_ids: Sequence[str] | None) -> list[Source]:
    """The sources to check: the named ones, or every enabled one."""
    if not source_ids:
        return list(session.exec(select(Source).where(Source.enabled == True).order_by(Source.id)).all())  # noqa: E712
    rows = {s.id: s for s in session.exec(select(Source).where(Source.id.in_(source_ids))).all()}  # type: ignore[attr-defined]
    missing = [i for i in source_ids if i not in rows]
    disabled = [i for i in source_ids if i in rows and not rows[i].enabled]
    problems = []
    if missing:
        problems.append(f"unknown source id(s): {', '.join(missing)} (see `tracker sources list`)")
    if disabled:
        problems.append(f"disabled source(s): {', '.join(disabled)} (removed from the sources file or "
                        "`enabled: false` there; sync the file to enable them again)")
    if problems:
        raise UnknownSources("; ".join(problems))
    return [rows[i] for i in dict.fromkeys(source_ids)]


def build_requests(session: Session, sources: list[Source], *, obey_robots: bool = True,
                   browser_wait_timeout: float = 15.0,
                   ) -> tuple[dict[str, list[SourceRequest]], dict[str, dict[str, float]]]:
    """Spider inputs grouped by kind, and per-host slot settings from per-source options."""
    by_kind: dict[str, list[SourceRequest]] = {}
    slots: dict[str, dict[str, float]] = {}
    # Check states and which sources have a baseline, a few queries for all sources rather than
    # two per source (and without loading every baseline's blocks just to see that it exists).
    states: dict[str, CheckState] = {}
    with_baseline: set[str] = set()
    ids = [src.id for src in sources]
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        states.update((st.source_id, st) for st in session.exec(
            select(CheckState).where(col(CheckState.source_id).in_(chunk))))
        with_baseline.update(session.exec(
            select(Version.source_id).where(col(Version.source_id).in_(chunk)).distinct()))
    cursors = stream_cursors(session=session, sources=sources, states=states, with_baseline=with_baseline,
                             kinds=KINDS)
    for src in sources:
        state = states.get(src.id)
        has_baseline = src.id in with_baseline
        opts = src.options or {}
        # The host as Scrapy keys its download slots (urlparse_cached(request).hostname): requests
        # Scrapy makes itself, robots.txt's, then share the sources' slot, its delay and its limit.
        host = urlparse(src.url).hostname or ""
        if "download_delay" in opts or "concurrency" in opts:
            slot = slots.setdefault(host, {})
            # Two sources on one host with different overrides: the more polite value wins.
            if "download_delay" in opts:
                slot["delay"] = max(slot.get("delay", 0.0), float(opts["download_delay"]))
            if "concurrency" in opts:
                slot["concurrency"] = min(slot.get("concurrency", 1e9), float(opts["concurrency"]))
        headers = dict(opts.get("headers", {}))
        by_kind.setdefault(src.kind, []).append(SourceRequest(
            id=src.id, url=src.url,
            etag=state.etag if state and has_baseline else None,
            last_modified=state.last_modified if state and has_baseline else None,
            headers=headers, timeout=opts.get("timeout"), slot=host,
            obey_robots=bool(opts.get("obey_robots", obey_robots)),
            link_select=opts.get("link_select"), urls=list(opts.get("urls", [])),
            options={k: opts[k] for k in ("query", "since") if k in opts}, cursor=cursors.get(src.id),
            offhost_redirects=str(opts.get("offhost_redirects", "record")),
            render=opts.get("render"), wait_for=opts.get("wait_for"), render_timeout=browser_wait_timeout,
        ))
    return by_kind, slots


# Scrapy components the tracker never uses: replaced (RetryMiddleware, by BackoffRetryMiddleware),
# off by the settings below (cookies, HTTP cache, meta refresh, telnet, remote control), idle
# without their settings (feed export, spider state, auto-throttle, memory debugger, offsite
# without allowed_domains, HTTP auth without http_user, close-spider limits, memory limits), only
# concerned with requests made from responses (referer, URL length, depth: sources are fetched
# once each, from the start list), or only feeding statistics nobody reads (the stats below are a
# no-op collector). Leaving them out spares each crawl their imports (aiohttp, tldextract,
# twisted.conch) and every request their calls: ~0.25 ms per request.
_UNUSED = frozenset({
    "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware",
    "scrapy.downloadermiddlewares.httpauth.HttpAuthMiddleware",
    "scrapy.downloadermiddlewares.stats.DownloaderStats",
    "scrapy.spidermiddlewares.referer.RefererMiddleware",
    "scrapy.spidermiddlewares.urllength.UrlLengthMiddleware",
    "scrapy.spidermiddlewares.depth.DepthMiddleware",
    "scrapy.spidermiddlewares.metacopy.MetaCopyDetectionMiddleware",
    "scrapy.extensions.corestats.CoreStats",
    "scrapy.extensions.logstats.LogStats",
    "scrapy.extensions.memusage.MemoryUsage",
    "scrapy.extensions.closespider.CloseSpider",
    "scrapy.downloadermiddlewares.retry.RetryMiddleware",
    "scrapy.downloadermiddlewares.cookies.CookiesMiddleware",
    "scrapy.downloadermiddlewares.httpcache.HttpCacheMiddleware",
    "scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware",
    "scrapy.extensions.remote_control.RemoteControl",
    "scrapy.extensions.telnet.TelnetConsole",
    "scrapy.extensions.memdebug.MemoryDebugger",
    "scrapy.extensions.feedexport.FeedExporter",
    "scrapy.extensions.spiderstate.SpiderState",
    "scrapy.extensions.throttle.AutoThrottle",
})


def scrapy_settings(settings: Settings, slots: dict[str, dict[str, float]],
                    on_change: ChangeHook | None, *, obey_robots: bool | None = None) -> dict[str, object]:
    """Scrapy settings from the tracker's: polite by default, everything overridable."""
    return {
        "BOT_NAME": "policy-tracker",
        "USER_AGENT": settings.user_agent,
        # On when any source obeys robots.txt; the others say so per request (dont_obey_robotstxt).
        "ROBOTSTXT_OBEY": settings.obey_robots if obey_robots is None else obey_robots,
        # Scrapy's downloader, made to keep each host's concurrency (see spiders/downloader.py).
        "DOWNLOADER": downloader.PATH,
        "CONCURRENT_REQUESTS": settings.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": settings.concurrency_per_domain,
        "DOWNLOAD_DELAY": settings.download_delay,
        "RANDOMIZE_DOWNLOAD_DELAY": True,
        "DOWNLOAD_SLOTS": {h: {k: (int(v) if k == "concurrency" else v) for k, v in s.items()}
                           for h, s in slots.items()},
        "DOWNLOAD_TIMEOUT": settings.download_timeout,
        "DOWNLOAD_MAXSIZE": settings.max_page_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        "RETRY_ENABLED": True,
        "RETRY_TIMES": settings.retry_times,
        "RETRY_HTTP_CODES": [429, 500, 502, 503, 504, 522, 524, 408],
        "RETRY_GIVE_UP_LOG_LEVEL": "DEBUG",
        "TRACKER_RETRY_BACKOFF_BASE": settings.retry_backoff_base,
        "TRACKER_RETRY_BACKOFF_MAX": settings.retry_backoff_max,
        # Scrapy's own lists without the parts the tracker never uses (see _UNUSED): left out of
        # the base lists rather than set to None, which would still import them on every crawl.
        "DOWNLOADER_MIDDLEWARES_BASE": {k: v for k, v in scrapy_defaults.DOWNLOADER_MIDDLEWARES_BASE.items()
                                        if k not in _UNUSED},
        "EXTENSIONS_BASE": {k: v for k, v in scrapy_defaults.EXTENSIONS_BASE.items() if k not in _UNUSED},
        "SPIDER_MIDDLEWARES_BASE": {k: v for k, v in scrapy_defaults.SPIDER_MIDDLEWARES_BASE.items()
                                    if k not in _UNUSED},
        "STATS_CLASS": "scrapy.statscollectors.DummyStatsCollector",
        # Scrapy reads and parses a generator callback's source on every response to warn about a
        # `return value` in it (its cache is keyed by the bound method, a new object each time):
        # ~0.4 ms per page. The spiders' callbacks return nothing (tests/unit/test_spider_callbacks.py).
        "WARN_ON_GENERATOR_RETURN_VALUE": False,
        "DOWNLOADER_MIDDLEWARES": {"spiders.middlewares.BackoffRetryMiddleware": 550,
                                   "spiders.middlewares.OffHostRedirectMiddleware": 560},
        "ITEM_PIPELINES": {"spiders.pipelines.RecordPipeline": 300},
        # A response yields exactly one item; Scrapy would start this many tasks per response.
        "CONCURRENT_ITEMS": 1,
        "TRACKER_DATABASE_URL": settings.database_url,
        "TRACKER_ON_CHANGE": on_change,
        "TRACKER_RECORD_BATCH": settings.record_batch,
        "TRACKER_RECORD_INTERVAL": settings.record_interval,
        "TRACKER_MAX_BLOCKS": settings.max_blocks,
        "TRACKER_MAX_TEXT_BYTES": settings.max_text_bytes,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        # Scrapy 2.19 starts an HTTP server that runs Python code sent to it (remote control);
        # the tracker never uses it.
        "REMOTE_CONTROL_ENABLED": False,
        "LOG_LEVEL": settings.crawl_log_level,
        "HTTPCACHE_ENABLED": False,
        "REDIRECT_ENABLED": True,
        "METAREFRESH_ENABLED": False,
    }


def run_crawl(*, settings: Settings, source_ids: Sequence[str] | None = None,
              progress: Callable[[CheckOutcome, int, int], None] | None = None,
              on_change: ChangeHook | None = None) -> CrawlSummary:
    """Check the sources once, in this process (Scrapy's reactor runs once per process)."""
    from scrapy.crawler import CrawlerProcess

    engine = make_engine(settings.database_url)
    with Session(engine) as session:
        sources = select_sources(session, source_ids)
        by_kind, slots = build_requests(session, sources, obey_robots=settings.obey_robots,
                                        browser_wait_timeout=settings.browser_wait_timeout)
    engine.dispose()
    any_obeys = any(r.obey_robots for reqs in by_kind.values() for r in reqs)
    summary = CrawlSummary()
    if not sources:
        return summary
    total = len(sources)

    def report(outcome: CheckOutcome) -> None:
        summary.outcomes.append(outcome)
        if progress is not None:
            progress(outcome, len(summary.outcomes), total)

    logging.getLogger("scrapy").setLevel(settings.crawl_log_level)
    stop = StopFlag()

    class StoppableProcess(CrawlerProcess):
        """Scrapy's process, noting that SIGINT/SIGTERM asked it to stop (Scrapy then stops gracefully)."""

        def _signal_shutdown(self, signum: int, frame: Any) -> None:
            stop.requested = True
            super()._signal_shutdown(signum, frame)

    by_kind, cannot_render = split_unrenderable(by_kind, settings)
    rendered = any(r.render for reqs in by_kind.values() for r in reqs)
    process = StoppableProcess(scrapy_settings(settings, slots, on_change, obey_robots=any_obeys)
                               | (render.crawl_settings(settings) if rendered else {})
                               | {"LOG_INSTALL_ROOT_HANDLER": False})
    no_spider = {r.id: f"no spider fetches sources of kind {kind!r} in this version of the tracker "
                       f"(known: {', '.join(sorted(KINDS))})"
                 for kind, reqs in by_kind.items() if kind not in KINDS for r in reqs}
    for outcome in record_failures(database_url=settings.database_url, errors=no_spider | cannot_render):
        report(outcome)
    known = {kind: requests for kind, requests in by_kind.items() if kind in KINDS}
    if known:
        # One crawler for every kind, so that the per-host and overall limits are the crawl's, not each
        # kind's (see spiders/crawl.py); the pipeline reports each outcome through the spider.
        process.crawl(AllKindsSpider, by_kind=known, report=report, stop=stop)
    if process.crawlers:
        process.start()
    seen = {o.source_id for o in summary.outcomes}
    lost = [src.id for src in sources if src.id not in seen]
    if stop.requested:
        # A requested stop is not a source failure: what was not checked keeps its state.
        summary.interrupted, summary.unchecked = True, lost
        return summary
    # A request lost without an item still counts as a failure, recorded like any other.
    for outcome in record_lost(database_url=settings.database_url, source_ids=lost):
        report(outcome)
    return summary


def split_unrenderable(by_kind: dict[str, list[SourceRequest]], settings: Settings,
                       ) -> tuple[dict[str, list[SourceRequest]], dict[str, str]]:
    """The requests this installation can fetch, and an error for each rendered one it cannot (no
    scrapy-playwright, no Chromium): those fail, the others are crawled as usual."""
    if not any(r.render for reqs in by_kind.values() for r in reqs):
        return by_kind, {}
    why = render.unavailable(settings)
    if why is None:
        return by_kind, {}
    errors = {r.id: why for reqs in by_kind.values() for r in reqs if r.render}
    kept = {kind: [r for r in reqs if not r.render] for kind, reqs in by_kind.items()}
    return {kind: reqs for kind, reqs in kept.items() if reqs}, errors


def record_lost(*, database_url: str, source_ids: Sequence[str]) -> list[CheckOutcome]:
    """Record a failure for each source the crawl ended without an item for."""
    error = "the crawl ended without a response for this source (see the crawl log; it is retried next time)"
    return record_failures(database_url=database_url, errors=dict.fromkeys(source_ids, error))


def record_failures(*, database_url: str, errors: Mapping[str, str]) -> list[CheckOutcome]:
    """Record each source's error as a failed check, each in its own transaction."""
    if not errors:
        return []
    outcomes: list[CheckOutcome] = []
    engine = make_engine(database_url)
    try:
        for sid, error in errors.items():
            try:
                with session_scope(engine) as session:
                    source = lock_sources(session=session, source_ids=[sid]).get(sid)
                    if source is None:
                        raise LookupError(f"source {sid} vanished from the database during the crawl")
                    outcomes.append(record_check(session=session, source=source,
                                                 fetch=Fetch(source_id=sid, url=source.url, error=error)))
            except Exception as exc:  # still report it: the summary must count every source
                logging.getLogger(__name__).exception("could not record the lost source %s", sid)
                outcomes.append(CheckOutcome(sid, FAILED, error=f"{error}; recording it failed: {exc!r}"))
    finally:
        engine.dispose()
    return outcomes
