"""Scrapy spiders, one per source kind. They fetch; the pipeline records (tracker.ingest)."""

from __future__ import annotations

from spiders.documents import JsonSpider, PdfSpider
from spiders.html import HtmlSpider

SPIDERS = {"html": HtmlSpider, "pdf": PdfSpider, "json": JsonSpider}

__all__ = ["SPIDERS", "HtmlSpider", "JsonSpider", "PdfSpider"]
