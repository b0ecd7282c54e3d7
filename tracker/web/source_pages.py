"""The source page (/sources/ID): what is watched there, the form SOP `sections:` globs match.

Its kind, schedule and next run, rules, health, the latest version's section tree with block
counts (from tracker.check.overview like `tracker sources show`), and its history as a timeline
(tracker.check.history: versions and changes, failures and recoveries, edits), newest first, a
page at a time. Editors also get its Edit, Disable/Enable and Check now buttons.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tracker.check.history import source_history
from tracker.check.overview import source_overview
from tracker.service.checknow import latest_request
from tracker.web import queries as q
from tracker.web.context import CurrentUser, Problem, ReadSession, ctx, render

router = APIRouter(include_in_schema=False)


@router.get("/sources/{source_id}")
def source_page(request: Request, source_id: str, user: CurrentUser, s: ReadSession, page: int = 1) -> Response:
    """One source: kind, schedule, next run, rules, section tree, health and its history."""
    view = source_overview(session=s, source_id=source_id)
    if view is None:
        raise Problem(404, f"no source {source_id!r}: see the list of sources at /sources")
    default_schedule = ctx(request).settings.default_schedule
    health = q.health_of(s, view.source, default_schedule=default_schedule)
    history = source_history(session=s, source_id=source_id, page=page)
    return render(request, "source.html", user, view=view, health=health, history=history,
                  default_schedule=default_schedule, check=latest_request(session=s, source_id=source_id),
                  nav="sources")
