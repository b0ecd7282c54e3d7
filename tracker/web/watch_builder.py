"""The watch builder's reads: a source's real section tree, and what a draft watch would have matched.

GET /api/sources/ID/sections lists the newest version's heading paths with block counts (what
SOP `sections:` globs match). POST /api/watches/preview takes a draft watch, validates it as an
SOP file's watch is validated (the same messages as `tracker sops sync`), and lists which of the
source's last N changes it would have matched, with the matched sections, by the real matcher
(tracker.impacts.draft). It writes nothing, but it is a POST with a body: editors only, with the
CSRF token, like every other POST.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from tracker.check.overview import latest_section_tree
from tracker.declare.sops import WatchSpec
from tracker.impacts.draft import DEFAULT_CHANGES, MAX_CHANGES, draft_matches
from tracker.store.models import Source
from tracker.web.context import CurrentUser, EditorUser, ReadSession
from tracker.web.errors import invalid

router = APIRouter(prefix="/api", tags=["api"])


class WatchDraft(BaseModel):
    """A watch as an SOP declares it, not saved yet, and how many recent changes to try it on."""

    source: str = Field(description="the id of the watched source")
    sections: list[str] = Field(default_factory=list, description="heading path globs ('Privacy > Data*')")
    keywords: list[str] = Field(default_factory=list, description="whole words or phrases; 'appeal*' is a prefix")
    agencies: list[str] = Field(default_factory=list, description="Federal Register agency slugs or names")
    types: list[str] = Field(default_factory=list, description="Federal Register document types")
    include_cosmetic: bool = Field(False, description="cosmetic changes match too")
    limit: int = Field(DEFAULT_CHANGES, ge=1, le=MAX_CHANGES, description="how many of the newest changes to try")


def problems_of(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> list[str]:
    """A validation error as the one-line problems a sync prints (`field: what is wrong`)."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key (known keys: {', '.join(model.model_fields)})"
        out.append(f"{prefix}{loc}: {msg}" if loc else f"{prefix}{msg}")
    return out


@router.get("/sources/{source_id}/sections")
def source_sections(source_id: str, user: CurrentUser, s: ReadSession) -> dict[str, Any]:
    """The newest version's heading paths with how many blocks stand under each (what `sections:` globs match)."""
    if s.get(Source, source_id) is None:
        raise HTTPException(404, f"no source {source_id!r}")
    tree = latest_section_tree(session=s, source_id=source_id)
    return {"source": source_id, "version_id": tree[0] if tree else None,
            "sections": [{"section": sec, "blocks": n} for sec, n in (tree[1] if tree else [])]}


@router.post("/watches/preview", response_model=None)
def watch_preview(body: WatchDraft, user: EditorUser, s: ReadSession) -> dict[str, Any] | Response:
    """Which of the source's last `limit` changes the draft watch would have matched, newest first (nothing saved)."""
    try:
        watch = WatchSpec.model_validate(body.model_dump(exclude={"limit"})).to_json()
    except ValidationError as exc:
        return invalid(problems_of(exc, WatchSpec))
    if s.get(Source, body.source) is None:
        raise HTTPException(404, f"no source {body.source!r}: see GET /api/sources")
    found = draft_matches(session=s, watch=watch, limit=body.limit)
    return {"watch": watch, "tried": len(found), "matched": sum(1 for m in found if m.matched),
            "changes": [m.to_json() for m in found]}
