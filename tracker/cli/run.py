"""`tracker run`: the scheduled service (crawls on each source's schedule, the daily digest)."""

from __future__ import annotations

import logging

import typer

from tracker.cli.app import EXIT_USAGE, app, engine, fail, settings


@app.command("run")
def run(
    wait: bool = typer.Option(False, "--wait", help="wait for the running scheduler to stop instead of refusing"),
    log_format: str = typer.Option("json", "--log-format", help="json (one object per line) or kv (key=value)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logs"),
) -> None:
    """Run the scheduler until SIGTERM/SIGINT: one crawl job per enabled source, the daily digest.

    Exit 0 after a clean stop, 2 when another scheduler holds this database or the configuration
    is wrong, 1 when the scheduler lock was lost.

    Example: tracker run --log-format text   (stop with Ctrl-C or SIGTERM)
    """
    from tracker.declare.yamlfile import RegistryError
    from tracker.service.jobs import SchedulerBusy, Service, install_signal_handlers
    from tracker.service.logs import configure_logging
    from tracker.service.scheduler import ScheduleConfigError

    if log_format not in ("json", "kv"):
        fail(f"--log-format must be json or kv, not {log_format!r}")
    s = settings()
    engine(check_schema=True).dispose()
    configure_logging(log_format, logging.DEBUG if verbose else logging.INFO)
    service = Service(settings=s)
    install_signal_handlers(service)
    try:
        service.start(wait=wait)
    except SchedulerBusy as exc:
        fail(str(exc))
    except (RegistryError, ScheduleConfigError, FileNotFoundError) as exc:
        fail(f"cannot start the scheduler: {exc}", EXIT_USAGE)
    except OSError as exc:  # e.g. the lock file beside a SQLite database cannot be created
        fail(f"cannot take the scheduler lock: {exc} (is the database's folder writable?)", EXIT_USAGE)
    code = service.serve_forever()
    raise typer.Exit(code)
