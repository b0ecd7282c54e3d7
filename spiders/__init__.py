"""Scrapy spiders, one per source kind. They fetch; the pipeline records (tracker.ingest)."""

from __future__ import annotations

from spiders.html import HtmlSpider

SPIDERS = {"html": HtmlSpider}

__all__ = ["SPIDERS", "HtmlSpider"]
