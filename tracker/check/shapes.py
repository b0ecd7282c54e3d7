"""The options kinds take beyond select and remove: the schemas of `query:` and the `since:` date.

A *document* (html, ecfr) has versions, compared block by block. A *stream* (feed,
federal_register) publishes entries; each new or updated entry is a change of its own
(tracker.check.streams). Which kind takes which schema is said once, in spiders.KINDS
(tracker.check.kinds.Extraction.query); validation (tracker.declare.sources) reads it there.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


def validate_query(model: type[BaseModel], query: dict[str, Any]) -> dict[str, Any]:
    """A `query:` checked against its kind's schema (pydantic's ValidationError when wrong)."""
    return model.model_validate(query).model_dump(exclude_none=True, exclude_defaults=True) if query or \
        model is not NoQuery else {}


def since_of(options: dict[str, Any]) -> date | None:
    """The `since:` backfill date a source declares, if any."""
    raw = options.get("since")
    return date.fromisoformat(raw) if isinstance(raw, str) else None
