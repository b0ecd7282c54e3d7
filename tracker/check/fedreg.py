"""The Federal Register API v1 search (GET {base}/api/v1/documents.json): the query a source
declares as `conditions[...]` parameters, and its documents as stream entries.

Documents never change in place (a correction is a new document, linked by `correction_of`), so a
document's number is its identity. Only the fields the tracker shows are asked for.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from tracker.check.blocks import ExtractionError, normalise_text
from tracker.check.entry import StreamEntry

FIELDS = ("document_number", "title", "type", "abstract", "agencies", "publication_date", "effective_on",
          "comments_close_on", "dates", "cfr_references", "html_url", "pdf_url", "correction_of", "action")
# Documents can be indexed a few days after their publication date: a re-check asks again from
# the newest recorded publication date less this overlap (known numbers are skipped).
OVERLAP_DAYS = 3
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class MalformedResults(ExtractionError):
    """An answer of the search API is not the JSON it documents."""


@dataclass(frozen=True)
class Page:
    """One page of search results."""

    count: int
    results: list[dict[str, Any]]
    next_page_url: str | None


def search_params(query: dict[str, Any], *, since: date | None, per_page: int) -> list[tuple[str, str]]:
    """The documents.json parameters for a source's query, newest first, from `since` when given."""
    pairs: list[tuple[str, str]] = []
    if query.get("term"):
        pairs.append(("conditions[term]", str(query["term"])))
    for agency in query.get("agencies") or []:
        pairs.append(("conditions[agencies][]", str(agency)))
    for kind in query.get("type") or []:
        pairs.append(("conditions[type][]", str(kind)))
    cfr = query.get("cfr") or {}
    for key in ("title", "part"):
        if cfr.get(key) is not None:
            pairs.append((f"conditions[cfr][{key}]", str(cfr[key])))
    if since is not None:
        pairs.append(("conditions[publication_date][gte]", since.isoformat()))
    pairs += [("fields[]", f) for f in FIELDS]
    pairs += [("per_page", str(per_page)), ("order", "newest")]
    return pairs


def search_url(base: str, query: dict[str, Any], *, since: date | None, per_page: int) -> str:
    """The first page's URL."""
    return f"{base.rstrip('/')}/api/v1/documents.json?{urlencode(search_params(query, since=since, per_page=per_page))}"


def ask_since(newest_recorded: date | None, declared: date | None) -> date | None:
    """Where a check starts: the newest recorded publication date less the overlap, else `since:`."""
    if newest_recorded is not None:
        return newest_recorded - timedelta(days=OVERLAP_DAYS)
    return declared


def parse_page(body: bytes) -> Page:
    """One page of documents.json; MalformedResults when it is not one."""
    try:
        data = json.loads(body)
        results = data.get("results", [])
        count = int(data.get("count") or 0)
        nxt = data.get("next_page_url")
    except (ValueError, AttributeError, TypeError) as exc:
        raise MalformedResults(f"malformed Federal Register JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise MalformedResults("malformed Federal Register JSON: `results` is not a list of documents")
    if nxt is not None and not isinstance(nxt, str):
        raise MalformedResults("malformed Federal Register JSON: `next_page_url` is not a URL")
    return Page(count, results, nxt)


def _clean(value: Any) -> str:
    return normalise_text(_CONTROL.sub("", str(value or "")))


def _day(value: Any) -> str | None:
    return value if isinstance(value, str) and _DATE.match(value) else None


def to_entry(doc: dict[str, Any]) -> StreamEntry:
    """A Federal Register document as an entry (MalformedResults when it has no number)."""
    number = _clean(doc.get("document_number"))
    if not number:
        raise MalformedResults("malformed Federal Register JSON: a document has no document_number")
    agencies = [a for a in doc.get("agencies") or [] if isinstance(a, dict)]
    refs = [r for r in doc.get("cfr_references") or [] if isinstance(r, dict)]
    kind = _clean(doc.get("type")) or "Document"
    fields: dict[str, Any] = {
        "document_number": number, "type": kind,
        "agencies": [_clean(a.get("name") or a.get("raw_name")) for a in agencies],
        "agency_slugs": [_clean(a.get("slug")) for a in agencies if a.get("slug")],
        "effective_on": _day(doc.get("effective_on")), "comments_close_on": _day(doc.get("comments_close_on")),
        "dates": _clean(doc.get("dates"))[:2000] or None,
        "cfr_references": [f"{r.get('title')} CFR {r.get('part')}" for r in refs],
        "correction_of": _clean(doc.get("correction_of")) or None,
        "pdf_url": _clean(doc.get("pdf_url")) or None,
    }
    return StreamEntry(id=number, title=_clean(doc.get("title"))[:1000] or number,
                       url=_clean(doc.get("html_url")) or None, published=_day(doc.get("publication_date")),
                       summary=_clean(doc.get("abstract"))[:20_000], path=("Federal Register", kind),
                       fields=fields)


def parse_documents(body: bytes) -> list[StreamEntry]:
    """The entries of what the spider collected across pages: {"results": [...]}."""
    return [to_entry(doc) for doc in parse_page(body).results]
