"""The spider for `kind: html` sources: one page per source, fetched with conditional GET."""

from __future__ import annotations

from spiders.base import SourceSpider


class HtmlSpider(SourceSpider):
    """Fetches HTML policy pages; extraction happens in the pipeline (tracker.check.extract)."""

    name = "html"
