"""Scrapy spiders, one per source kind, and `KINDS`: the one list of source kinds.

Each kind pairs the spider that fetches it with what the services need to check it (an
`Extraction`: shape, extractor or entry parser, `query:` schema, rule check, description). Validation
(`tracker sources sync`), recording (the item pipeline), `tracker sources kinds` and the docs read
KINDS; the services are handed it by their callers, so they never import this top layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from spiders.base import SourceSpider
from spiders.documents import JsonSpider, PdfSpider
from spiders.ecfr import EcfrSpider
from spiders.federal_register import FederalRegisterSpider
from spiders.feed import FeedSpider
from spiders.html import HtmlSpider
from tracker.check.fedreg import parse_documents
from tracker.check.feed import parse_feed
from tracker.check.kinds import (
    Extraction,
    Shape,
    css_rules,
    extract_cfr_part,
    extract_html,
    extract_json_doc,
    extract_pdf_text,
    jmespath_rules,
    whole_text_rules,
)
from tracker.check.shapes import CfrQuery, FederalRegisterQuery


@dataclass(frozen=True, kw_only=True)
class Kind(Extraction):
    """A source kind: its spider and how the tracker checks what the spider fetched."""

    spider: type[SourceSpider]


DOCUMENT, STREAM = Shape.DOCUMENT, Shape.STREAM

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind(name="html", spider=HtmlSpider, shape=DOCUMENT, extract=extract_html, extract_unless=extract_html,
         check_rules=css_rules,
         description="an HTML page, cut into blocks by its headings (select/remove: CSS selectors)"),
    Kind(name="pdf", spider=PdfSpider, shape=DOCUMENT, extract=extract_pdf_text, check_rules=whole_text_rules,
         link_select=True, description="a PDF's text layer, directly or through the link an index page holds"),
    Kind(name="json", spider=JsonSpider, shape=DOCUMENT, extract=extract_json_doc, check_rules=jmespath_rules,
         description="a JSON document or API answer (select: JMESPath expressions)"),
    Kind(name="ecfr", spider=EcfrSpider, shape=DOCUMENT, extract=extract_cfr_part, query=CfrQuery,
         description="one part of the Code of Federal Regulations through the eCFR versioner API"),
    Kind(name="feed", spider=FeedSpider, shape=STREAM, entries=parse_feed,
         description="an RSS or Atom feed: each new or updated entry is a change"),
    Kind(name="federal_register", spider=FederalRegisterSpider, shape=STREAM, entries=parse_documents,
         query=FederalRegisterQuery, cursor_from_entries=True,
         description="a Federal Register documents search: each new publication is a change"),
)}

__all__ = ["KINDS", "EcfrSpider", "FederalRegisterSpider", "FeedSpider", "HtmlSpider", "JsonSpider", "Kind",
           "PdfSpider"]
