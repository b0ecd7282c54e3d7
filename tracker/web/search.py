"""/search and /api/search: full-text search over changes and the current text of every source."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import col, select

from tracker.store.models import Source
from tracker.store.search import KINDS, SearchFilters, search
from tracker.web.context import CurrentUser, Problem, ReadSession, render
from tracker.web.filters import DateRange, only_filters

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["api"])
FILTERS = ("q", "kind", "source", "since", "until")


def _filters(kind: str, source: str, since: str, until: str) -> tuple[SearchFilters, DateRange]:
    if kind and kind not in KINDS:
        raise Problem(400, f"kind={kind!r}: search changes or sources (kind=change or kind=source)")
    rng = DateRange.parse(since, until)
    return SearchFilters(kind=kind, source=source, since=rng.since, until=rng.until), rng


@router.get("/search")
def search_page(request: Request, user: CurrentUser, s: ReadSession, q: str = "", kind: str = "",
                source: str = "", since: str = "", until: str = "") -> Response:
    """Search changes (their inserted and deleted words, sections) and sources' current text."""
    only_filters(request, FILTERS)
    filters, rng = _filters(kind, source, since, until)
    hits = search(s, q, filters=filters) if q.strip() else []
    sources = list(s.exec(select(Source).order_by(col(Source.name))).all())
    return render(request, "search.html", user, q=q, kind=kind, source=source, rng=rng, hits=hits,
                  sources=sources, nav="search")


@api.get("/search")
def search_api(request: Request, user: CurrentUser, s: ReadSession, q: str, kind: str = "", source: str = "",
               since: str = "", until: str = "", limit: int = 50) -> list[dict[str, Any]]:
    """Search results, best first: kind, ref, source, time, title, url and a snippet with [matches]."""
    only_filters(request, (*FILTERS, "limit"))
    filters, _ = _filters(kind, source, since, until)
    return [h.to_json() for h in search(s, q, filters=filters, limit=max(1, min(limit, 200)))]
