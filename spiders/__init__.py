"""Scrapy spiders, one per source kind. They fetch; the pipeline records (tracker.check.record)."""

from __future__ import annotations

from spiders.documents import JsonSpider, PdfSpider
from spiders.ecfr import EcfrSpider
from spiders.federal_register import FederalRegisterSpider
from spiders.feed import FeedSpider
from spiders.html import HtmlSpider

SPIDERS = {"html": HtmlSpider, "pdf": PdfSpider, "json": JsonSpider, "ecfr": EcfrSpider, "feed": FeedSpider,
           "federal_register": FederalRegisterSpider}

__all__ = ["SPIDERS", "EcfrSpider", "FederalRegisterSpider", "FeedSpider", "HtmlSpider", "JsonSpider", "PdfSpider"]
