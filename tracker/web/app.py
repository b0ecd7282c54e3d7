"""The FastAPI application: routers for pages, actions, the API and login; errors; security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from tracker.config import Settings, get_settings
from tracker.paths import templates_dir
from tracker.store.db import make_engine
from tracker.web.bodylimit import BodyLimit, body_limit
from tracker.web.context import LoginRequired, Problem, WebContext, make_env, optional_user, render
from tracker.web.ratelimit import LoginLimiter

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path in ("/api", "/openapi.json")


def _problem_response(request: Request, status: int, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"detail": message}, status_code=status)
    return render(request, "error.html", optional_user(request), status=status, code=status, message=message)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The web UI and JSON API on the configured database (nothing connects until a request)."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    web = WebContext(
        settings=settings,
        engine=engine,
        env=make_env(),
        limiter=LoginLimiter(
            engine=engine, max_failures=settings.web_login_max_failures, window=settings.web_login_window_seconds
        ),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        web.engine.dispose()

    app = FastAPI(
        title="Policy tracker",
        version="0.1.0",
        lifespan=lifespan,
        # No Swagger UI or ReDoc (they load scripts from a CDN) and no open schema: tracker.web.apidocs
        # serves /docs and /openapi.json behind login.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        description="Policy changes, the SOPs they affect, the PM workflow and the audit trail. "
        "Log in at /login; mutations need the X-CSRF-Token header (see /api/me).",
    )
    app.state.web = web

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if "text/html" in response.headers.get("content-type", ""):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if _wants_json(request):
            return JSONResponse(
                {"detail": "not logged in: POST /login first (the session is a cookie)"}, status_code=401
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/"
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(Problem)
    async def problem(request: Request, exc: Problem) -> Response:
        return _problem_response(request, exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and message == "Not Found":
            message = f"there is no page at {request.url.path}"
        return _problem_response(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": exc.errors()}, status_code=422)
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) or "request" for e in exc.errors())
        return _problem_response(request, 422, f"the form is incomplete or invalid ({fields}): go back and fix it")

    async def too_large(request: Request, max_bytes: int) -> Response:
        return _problem_response(
            request,
            413,
            f"the request is over {max_bytes:,} bytes, more than a note of TRACKER_MAX_NOTE_CHARS="
            f"{settings.max_note_chars:,} characters needs: shorten the note",
        )

    app.add_middleware(BodyLimit, max_bytes=body_limit(settings.max_note_chars), refuse=too_large)

    from tracker.web import (
        actions,
        api,
        apidocs,
        auth,
        checknow,
        feeds,
        manage_api,
        manage_sops,
        manage_sources,
        metrics,
        pages,
        search,
        source_pages,
        source_preview,
        suggestions,
        watch_builder,
    )

    app.include_router(auth.router)
    app.include_router(apidocs.router)
    app.include_router(manage_sops.router)  # before pages: /sops/new is not an SOP id
    app.include_router(pages.router)
    app.include_router(manage_sources.router)  # before source_pages: /sources/new is not a source id
    app.include_router(source_pages.router)
    app.include_router(checknow.router)
    app.include_router(checknow.api)
    app.include_router(actions.router)
    app.include_router(api.router)
    app.include_router(manage_api.router)
    app.include_router(feeds.router)
    app.include_router(search.router)
    app.include_router(search.api)
    app.include_router(metrics.router)
    app.include_router(suggestions.router)
    app.include_router(watch_builder.router)
    app.include_router(source_preview.router)
    app.mount("/static", StaticFiles(directory=str(templates_dir() / "web" / "static")), name="static")
    return app
