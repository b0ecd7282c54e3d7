"""`tracker serve`: the web UI and JSON API, served by uvicorn."""

from __future__ import annotations

import socket

import typer

from tracker.cli.app import app, engine, fail, settings


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
    port: int = typer.Option(8000, "--port", help="port to listen on (0: any free port)"),
    proxy_headers: bool = typer.Option(
        False, "--proxy-headers", help="trust X-Forwarded-Proto/For from a proxy on this host"
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level"),
) -> None:
    """Serve the web UI for program managers (and /api, listed at /docs after login).

    Example: tracker serve --host 0.0.0.0 --port 8080 --proxy-headers   (behind a reverse proxy)
    """
    import uvicorn

    from tracker.web import create_app

    s = settings()
    engine().dispose()  # refuses a database that is not migrated, with what to run
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port or stop what uses it")
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"tracker web UI on http://{shown}:{bound}/ (API docs at /docs); Ctrl+C stops", err=True)
    config = uvicorn.Config(
        create_app(s),
        log_level=log_level,
        proxy_headers=proxy_headers,
        forwarded_allow_ips="127.0.0.1" if proxy_headers else None,
        access_log=True,
    )
    uvicorn.Server(config).run(sockets=[sock])
