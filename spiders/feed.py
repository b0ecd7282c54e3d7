"""The spider for `kind: feed` sources: the feed fetched with conditional GET; entries are read by
the pipeline (tracker.check.feed, tracker.check.streams)."""

from __future__ import annotations

from spiders.base import SourceSpider


class FeedSpider(SourceSpider):
    """Fetches RSS and Atom feeds."""

    name = "feed"
