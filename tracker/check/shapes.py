"""What differs between source kinds, in one place: shape (document or stream), the options a kind
takes (`query:`, `since:`), and how a fetched body becomes blocks (documents) or entries (streams).

A *document* (html, ecfr) has versions, compared block by block. A *stream* (feed,
federal_register) publishes entries; each new or updated entry is a change of its own
(tracker.check.streams). Validation (tracker.declare.sources), recording (tracker.check.record) and the spiders read
this module; nothing else branches on a kind's name.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tracker.check.entry import StreamEntry
from tracker.check.fedreg import parse_documents
from tracker.check.feed import parse_feed

ECFR_BASE = "https://www.ecfr.gov"
FEDERAL_REGISTER_BASE = "https://www.federalregister.gov"


class NoQuery(BaseModel):
    """Kinds that take no `query:`."""

    model_config = ConfigDict(extra="forbid")


class CfrQuery(BaseModel):
    """`query:` of an ecfr source: one part of one CFR title (or one section of it)."""

    model_config = ConfigDict(extra="forbid")

    title: int = Field(ge=1, le=50)
    part: str = Field(pattern=r"^[0-9A-Za-z]{1,10}$")
    section: str | None = Field(default=None, pattern=r"^[0-9A-Za-z.\-]{1,20}$")


class CfrRef(BaseModel):
    """conditions[cfr][title|part] of a Federal Register query."""

    model_config = ConfigDict(extra="forbid")

    title: int = Field(ge=1, le=50)
    part: str | None = None


class FederalRegisterQuery(BaseModel):
    """`query:` of a federal_register source: conditions of the documents.json search."""

    model_config = ConfigDict(extra="forbid")

    term: str | None = None
    agencies: list[str] = Field(default_factory=list)  # agency slugs: federal-trade-commission
    type: list[str] = Field(default_factory=list)  # RULE | PRORULE | NOTICE | PRESDOCU
    cfr: CfrRef | None = None
    per_page: int = Field(default=100, ge=1, le=1000)
    max_pages: int = Field(default=10, ge=1, le=100)


QUERIES: dict[str, type[BaseModel]] = {"html": NoQuery, "feed": NoQuery, "ecfr": CfrQuery,
                                       "federal_register": FederalRegisterQuery}
STREAMS: dict[str, Callable[[bytes], list[StreamEntry]]] = {"feed": parse_feed,
                                                            "federal_register": parse_documents}
DEFAULT_URLS = {"ecfr": ECFR_BASE, "federal_register": FEDERAL_REGISTER_BASE}


def is_stream(kind: str) -> bool:
    """True for kinds whose checks record entries rather than versions of one text."""
    return kind in STREAMS


def validate_query(kind: str, query: dict[str, Any]) -> dict[str, Any]:
    """A kind's `query:` checked against its schema (pydantic's ValidationError when wrong)."""
    model = QUERIES.get(kind, NoQuery)
    return model.model_validate(query).model_dump(exclude_none=True, exclude_defaults=True) if query or \
        model is not NoQuery else {}


def stream_entries(kind: str, body: bytes) -> list[StreamEntry]:
    """The entries of a stream kind's body (ExtractionError when it is malformed)."""
    return STREAMS[kind](body)


def since_of(options: dict[str, Any]) -> date | None:
    """The `since:` backfill date a source declares, if any."""
    raw = options.get("since")
    return date.fromisoformat(raw) if isinstance(raw, str) else None
