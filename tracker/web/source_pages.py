"""The source page (/sources/ID): what is watched there, the form SOP `sections:` globs match.

Its rules, the latest version's section tree with block counts, health, and the newest versions
and changes (cosmetic and reverted ones marked), from tracker.check.overview like `tracker
sources show`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tracker.check.overview import source_overview
from tracker.web.context import CurrentUser, Problem, ReadSession, render

router = APIRouter(include_in_schema=False)


@router.get("/sources/{source_id}")
def source_page(request: Request, source_id: str, user: CurrentUser, s: ReadSession) -> Response:
    """One source: rules, section tree, health, history."""
    view = source_overview(session=s, source_id=source_id)
    if view is None:
        raise Problem(404, f"no source {source_id!r}: see the list of sources at /sources")
    return render(request, "source.html", user, view=view, nav="sources")
