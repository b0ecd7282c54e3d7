"""`tracker worker`: crawl the batches `tracker run` sends through Celery (TRACKER_EXECUTOR=celery)."""

from __future__ import annotations

import logging

import typer

from tracker.cli.app import app, engine, fail, settings


@app.command("worker")
def worker(
    queues: str = typer.Option("default", "--queues", "-Q",
                               help="comma-separated worker queues to fetch from (sources name theirs with "
                                    "`queue:`; the rest are in `default`)"),
    concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, help="crawl batches run at once"),
    name: str | None = typer.Option(None, "--name", help="worker name in `tracker status` (default tracker-PID@HOST)"),
    log_format: str = typer.Option("json", "--log-format", help="json (one object per line) or kv (key=value)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logs, and Celery's info logs"),
) -> None:
    """Run a crawl worker until SIGTERM (finishes its batches) or a second SIGTERM (they are delivered
    again elsewhere). Needs TRACKER_BROKER_URL and the shared database (PostgreSQL).

    Example: TRACKER_EXECUTOR=celery tracker worker --queues default,eu --concurrency 4
    """
    from tracker.declare.sources import QUEUE
    from tracker.service.logs import configure_logging
    from tracker.service.worker import default_name, run_worker

    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    if not wanted or any(not QUEUE.match(q) for q in wanted):
        fail(f"--queues {queues!r}: give queue names (lowercase letters, digits, '-' or '_'), e.g. default,eu")
    if log_format not in ("json", "kv"):
        fail(f"--log-format must be json or kv, not {log_format!r}")
    s = settings()
    eng = engine(check_schema=True)
    configure_logging(log_format, logging.DEBUG if verbose else logging.INFO)
    code = run_worker(settings=s, engine=eng, queues=wanted, concurrency=concurrency, name=name or default_name(),
                      loglevel="INFO" if verbose else "WARNING")
    eng.dispose()
    raise typer.Exit(code)
