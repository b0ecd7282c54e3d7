"""The search index between crawls: a crawl queues each new current text (tracker.store.search.queue_version)
instead of tokenising it while it checks, and the service takes the queue in after each crawl batch."""

from __future__ import annotations

import logging
import time

from sqlalchemy.engine import Engine
from sqlmodel import Session

from tracker.service.logs import event
from tracker.store.search import index_pending


def index_for_search(engine: Engine) -> int:
    """Index what the crawls queued, a batch per transaction; a failure is logged and left for the next
    crawl (or the next search, which takes the queue in before it reads). Returns how many were indexed."""
    started = time.monotonic()
    try:
        with Session(engine) as s:
            done = index_pending(s, commit=True)
    except Exception as exc:
        event("search.index_failed", logging.ERROR, error=repr(exc))
        return 0
    if done:
        event("search.indexed", texts=done, seconds=round(time.monotonic() - started, 2))
    return done
