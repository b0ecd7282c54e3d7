"""The item pipeline: each Fetch is recorded in its own transaction by tracker.ingest."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from scrapy.crawler import Crawler
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tracker.db import make_engine, session_scope
from tracker.ingest import FAILED, ChangeHook, CheckOutcome, Fetch, record_check
from tracker.models import Source, Version

log = logging.getLogger(__name__)


class RecordPipeline:
    """Records every fetch; a crash on one source is recorded as its error and the crawl goes on."""

    def __init__(self, engine: Engine, crawler: Crawler, on_change: ChangeHook | None):
        self.engine = engine
        self.crawler = crawler
        self.on_change = on_change
        self.with_baseline: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RecordPipeline:
        engine = make_engine(crawler.settings["TRACKER_DATABASE_URL"])
        return cls(engine, crawler, crawler.settings.get("TRACKER_ON_CHANGE"))

    def open_spider(self, spider: Any = None) -> None:
        # Sources that have a version, read once: versions are never deleted, so this spares the
        # per-304 lookup (a source missing here is still looked up, in case it gained one since).
        with Session(self.engine) as session:
            self.with_baseline = set(session.exec(select(Version.source_id).distinct()))

    def close_spider(self, spider: Any = None) -> None:
        self.engine.dispose()

    def process_item(self, item: Any, spider: Any = None) -> Any:
        if not isinstance(item, Fetch):
            return item
        spider = self.crawler.spider
        report: Callable[[CheckOutcome], None] = getattr(spider, "report", lambda o: None)
        try:
            with session_scope(self.engine) as session:
                source = session.get(Source, item.source_id)
                if source is None:
                    raise LookupError(f"source {item.source_id} vanished from the database during the crawl")
                outcome = record_check(session=session, source=source, fetch=item, on_change=self.on_change,
                                       has_baseline=item.source_id in self.with_baseline)
        except Exception as exc:  # never lose the rest of the crawl to one bad page
            log.exception("recording %s failed", item.source_id)
            outcome = CheckOutcome(item.source_id, FAILED, error=f"internal error while recording: {exc!r}")
            try:
                self._record_internal_error(item, outcome.error or "")
            except Exception:
                log.exception("could not record the error for %s", item.source_id)
        report(outcome)
        return outcome

    def _record_internal_error(self, item: Fetch, error: str) -> None:
        with session_scope(self.engine) as session:
            source = session.get(Source, item.source_id)
            if source is not None:
                record_check(session=session, source=source,
                             fetch=Fetch(source_id=item.source_id, url=item.url, error=error,
                                         fetched_at=item.fetched_at))
