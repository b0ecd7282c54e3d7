"""The live rule preview of a draft source (POST /api/sources/preview): what its rules make of the page now.

The same preview as `tracker sources preview` (tracker.check.preview: blocks, section tree,
volatile blocks and a suggested rule), on the fields of a source not saved yet, validated as a
sources file is (the same messages as `tracker sources sync`). Bounded for a web server: a plain
GET of http(s) URLs only (redirects too), the crawl's timeout capped at PREVIEW_TIMEOUT and its
page size limit, two fetches a second apart by default, PREVIEW_SLOTS previews at once (a third
is told to wait), and a synchronous endpoint, so FastAPI runs it in a worker thread and the event
loop never waits for a page. Nothing is recorded.

Only html pages are previewed: a PDF, JSON document, feed or regulation API answer is checked for
valid rules, and the answer says that its first version comes from a check (Check now).
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from tracker.check.blocks import Rules
from tracker.check.preview import PreviewError, PreviewExtractionError, fetch_page, preview
from tracker.check.render import is_rendered
from tracker.declare.manage_sources import validate_source
from tracker.declare.managed import InvalidSpec
from tracker.declare.sources import SourceSpec
from tracker.web.context import EditorUser, ctx
from tracker.web.errors import invalid

router = APIRouter(prefix="/api", tags=["api"])

PREVIEW_TIMEOUT = 15.0
PREVIEW_SLOTS = 2
MAX_BLOCKS_SHOWN = 400
_slots = threading.BoundedSemaphore(PREVIEW_SLOTS)
_PLACEHOLDER = "draft"


class PreviewRequest(BaseModel):
    """A draft source (any field of a sources file entry; id and name may be left out) and how to fetch it."""

    model_config = ConfigDict(extra="allow")

    url: str = Field(description="the page, http(s)")
    kind: str = Field("html", description="the source kind (only html pages are fetched for a preview)")
    fetches: int = Field(2, ge=1, le=3, description="fetches, to find the blocks that change on every request")
    interval: float = Field(1.0, ge=0, le=5, description="seconds between fetches")


def _spec(data: dict[str, Any]) -> SourceSpec:
    from spiders import KINDS  # the registry of kinds (imports Scrapy: only when a preview is asked)

    data = dict(data)
    for key in ("id", "name"):
        if not data.get(key):
            data[key] = _PLACEHOLDER
    return validate_source(data, kinds=KINDS)


def _not_previewable(spec: SourceSpec) -> dict[str, Any]:
    return {"previewable": False, "kind": spec.kind,
            "message": f"a {spec.kind} source is not previewed here: its rules are valid; only html pages are "
                       "fetched for a preview. Save it and use Check now to see its first version "
                       "(the source page then shows its sections)."}


def _answer(spec: SourceSpec, result: Any, notes: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = result.to_json()
    total = len(data["blocks"])
    data["blocks"] = data["blocks"][:MAX_BLOCKS_SHOWN]
    if total > MAX_BLOCKS_SHOWN:
        notes.append(f"the first {MAX_BLOCKS_SHOWN} of {total} blocks are shown")
    return {"previewable": True, "kind": spec.kind, "blocks_total": total, "notes": notes, **data}


def run_preview(request: Request, data: dict[str, Any], *, fetches: int = 2, interval: float = 1.0) -> dict[str, Any]:
    """The preview of a draft source's entry (InvalidSpec when it does not validate; HTTPException 429 or 502)."""
    spec = _spec(data)
    if spec.kind != "html":
        return _not_previewable(spec)
    notes = []
    if spec.urls:
        notes.append(f"only the first of the {len(spec.urls)} pages is previewed")
    if is_rendered({"render": spec.render} if spec.render else {}):
        notes.append("the crawl loads this page in a browser; the preview fetches its plain HTML, which may "
                     "lack what the page's scripts add")
    conf = ctx(request).settings
    rules = Rules(select=tuple(spec.select), remove=tuple(spec.remove), ignore=tuple(spec.ignore))
    if not _slots.acquire(blocking=False):
        raise HTTPException(429, f"{PREVIEW_SLOTS} previews are running already: try again in a few seconds")
    try:
        result = preview(spec.url, rules, fetches=fetches, interval=interval,
                         fetch=lambda u: fetch_page(u, timeout=min(conf.download_timeout, PREVIEW_TIMEOUT),
                                                    user_agent=conf.user_agent, max_bytes=conf.max_page_bytes))
    except PreviewExtractionError as exc:
        raise InvalidSpec("the preview", [str(exc)]) from None
    except PreviewError as exc:
        raise HTTPException(502, f"the preview could not read the page: {exc}") from None
    finally:
        _slots.release()
    return _answer(spec, result, notes)


@router.post("/sources/preview", response_model=None)
def source_preview(request: Request, body: PreviewRequest, user: EditorUser) -> dict[str, Any] | Response:
    """Fetch the draft source's page now and show what its rules make of it; nothing is recorded.

    Answers blocks, sections (heading paths with block counts), volatile blocks (they differed
    between the fetches) and a suggested remove/ignore rule; 422 with the problems when the draft
    does not validate or its rules make nothing of the page, 502 when the page cannot be fetched.
    """
    try:
        return run_preview(request, body.model_dump(exclude={"fetches", "interval"}), fetches=body.fetches,
                           interval=body.interval)
    except InvalidSpec as exc:
        return invalid(exc.problems)
