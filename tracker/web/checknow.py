"""Check now from the web: the button on /sources/ID and POST /api/sources/ID/check, and the request's status.

A press queues a CheckRequest (tracker.service.checknow.request_check: never a second one while one
is queued or running; a second press gets the first back). With a `tracker run` alive, its next
tick picks the request up and checks the source in its normal batch path. Without one, the web
server runs the check itself: a background thread calls run_check_now (the crawl subprocess for
that one source), so the answer comes at once and the page polls
GET /api/sources/ID/checks/REQUEST for queued -> running -> done | failed and the outcome.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.engine import Engine
from sqlmodel import Session

from tracker.config import Settings
from tracker.impacts.workflow import WorkflowError
from tracker.service.checknow import latest_request, request_check, run_check_now, service_running
from tracker.store.db import session_scope
from tracker.store.models import CheckRequest
from tracker.web.context import CurrentUser, EditorUser, ReadSession, ctx, flash
from tracker.web.errors import refused

log = logging.getLogger("tracker.web")
router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["api"])

# Sources this process is checking in a thread of its own (another process's run is refused by the
# data layer: run_check_now claims the request, and only one claim wins).
_running: set[str] = set()
_lock = threading.Lock()


def request_json(req: CheckRequest, *, mode: str | None = None) -> dict[str, Any]:
    """A check request as the API and the page's script read it."""
    out = {"id": req.id, "source_id": req.source_id, "state": req.state, "outcome": req.outcome,
           "error": req.error, "requested_by": req.requested_by, "requested_at": req.requested_at,
           "started_at": req.started_at, "finished_at": req.finished_at,
           "status_url": f"/api/sources/{req.source_id}/checks/{req.id}"}
    return out | ({"mode": mode} if mode else {})


def _run_here(settings: Settings, engine: Engine, source_id: str, actor: str) -> None:
    try:
        run_check_now(settings=settings, engine=engine, source_id=source_id, actor=actor)
    except WorkflowError as exc:  # CheckBusy: another process claimed it first
        log.info("check now of %s not run here: %s", source_id, exc)
    except Exception:  # the request is marked failed below (or expires as abandoned)
        log.exception("check now of %s failed", source_id)
    finally:
        with _lock:
            _running.discard(source_id)


def start_check(request: Request, source_id: str, actor: str) -> tuple[CheckRequest, str]:
    """Queue a check of the source (or get the one queued or running) and make sure something runs it:
    the service when one is alive, else a thread of this server. (request, "service" | "here")."""
    web = ctx(request)
    with session_scope(web.engine) as s:
        running = service_running(session=s)
        req = request_check(session=s, source_id=source_id, actor=actor)
    if running:
        return req, "service"
    with _lock:
        start = req.state == "queued" and source_id not in _running
        if start:
            _running.add(source_id)
    if start:
        threading.Thread(target=_run_here, args=(web.settings, web.engine, source_id, actor),
                         name=f"check-now-{source_id}", daemon=True).start()
    return req, "here"


def _request_of(s: Session, source_id: str, request_id: int) -> CheckRequest:
    req = s.get(CheckRequest, request_id)
    if req is None or req.source_id != source_id:
        raise HTTPException(404, f"no check request {request_id} of source {source_id!r}")
    return req


@router.post("/sources/{source_id}/check")
def check_now_form(request: Request, source_id: str, user: EditorUser) -> Response:
    """The source page's Check now button: queue a check and go back to the page, which shows its progress."""
    response = RedirectResponse(f"/sources/{source_id}#check-now", status_code=303)
    try:
        req, mode = start_check(request, source_id, user.email)
    except WorkflowError as exc:
        flash(request, response, str(exc), "error")
        return response
    who = "the running service" if mode == "service" else "this server"
    flash(request, response, f"check #{req.id} of {source_id} is {req.state}; {who} runs it")
    return response


@api.post("/sources/{source_id}/check", status_code=202)
def check_now(request: Request, source_id: str, user: EditorUser) -> dict[str, Any]:
    """Check a source now: queued for the running service, or run by this server when there is none.

    Answers the request (a second press while one is queued or running gets that one back); poll
    its status_url for state queued -> running -> done | failed and the outcome.
    """
    try:
        req, mode = start_check(request, source_id, user.email)
    except WorkflowError as exc:
        raise refused(exc) from None
    return request_json(req, mode=mode)


@api.get("/sources/{source_id}/checks/latest")
def latest_check(source_id: str, user: CurrentUser, s: ReadSession) -> dict[str, Any]:
    """The source's newest check request (404 when none was ever made)."""
    req = latest_request(session=s, source_id=source_id)
    if req is None:
        raise HTTPException(404, f"no check of {source_id!r} was ever requested")
    return request_json(req)


@api.get("/sources/{source_id}/checks/{request_id}")
def check_status(source_id: str, request_id: int, user: CurrentUser, s: ReadSession) -> dict[str, Any]:
    """A check request: state (queued, running, done, failed), outcome (new, changed, unchanged, not_modified,
    failed) and the error of a failed one."""
    return request_json(_request_of(s, source_id, request_id))
