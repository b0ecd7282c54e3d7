"""`tracker crawl`: check sources now."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from tracker.cli.app import EXIT_FAILURES, EXIT_INTERRUPTED, app, engine, fail, settings, startup

if TYPE_CHECKING:
    from tracker.check.state import CheckOutcome
    from tracker.config import Settings


def _progress(outcome: CheckOutcome, done: int, total: int) -> None:
    width = len(str(total))
    detail = ""
    if outcome.result == "changed":
        kind = "technical change" if outcome.technical else f"{len(outcome.sections)} section(s)"
        detail = f"  change #{outcome.change_id}, {kind}"
    elif outcome.result == "failed":
        detail = f"  {outcome.error}"
    typer.echo(f"[{done:>{width}}/{total}] {outcome.source_id}: {outcome.result}{detail}", err=True)


def _notify(s: Settings) -> None:
    """Immediate alerts, source failures and recoveries for team channels, right after the crawl that
    found them (the service runs this command, so its crawls send them too); never fails the crawl."""
    from tracker.notify.alerts import send_alerts
    from tracker.store.db import make_engine

    eng = make_engine(s.database_url)
    try:
        report = send_alerts(engine=eng, settings=s)
        if report.sent or report.failed:
            typer.echo(report.summary(), err=True)
    except Exception as exc:  # a notification problem must not turn a good crawl into a failed one
        typer.echo(f"notify: not sent: {type(exc).__name__}; see `tracker notify log`", err=True)
    finally:
        eng.dispose()


@app.command("crawl")
def crawl(source_ids: Annotated[list[str] | None,
                                typer.Argument(help="source ids (default: every enabled source)")] = None,
          quiet: bool = typer.Option(False, "--quiet", "-q", help="no per-source progress")) -> None:
    """Check sources now. Exit 0 when all were checked, 3 when some failed, 2 on a usage error, 130 when
    interrupted (SIGINT/SIGTERM: the sources not yet checked keep their state).

    Example: tracker crawl tiktok-privacy reddit-content-policy   (no ids: every enabled source)
    """
    with startup():
        from spiders.runner import UnknownSources, run_crawl
        from tracker.impacts.mapping import CrawlMapper

        s = settings()
        engine(check_schema=True).dispose()
    started = time.monotonic()
    try:
        summary = run_crawl(settings=s, source_ids=source_ids or None,
                            progress=None if quiet else _progress, on_change=CrawlMapper())
    except UnknownSources as exc:
        fail(str(exc))
    except KeyboardInterrupt:  # Ctrl+C before the crawl started: nothing was recorded
        typer.echo("crawl interrupted before any source was checked; nothing recorded", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if summary.interrupted:
        typer.echo(f"crawl interrupted: checked {len(summary.outcomes)} source(s), "
                   f"{len(summary.unchecked)} left unchecked with their state unchanged (checked next time)")
        raise typer.Exit(EXIT_INTERRUPTED)
    _notify(s)
    if not summary.outcomes:
        typer.echo("no enabled sources to check: `tracker sources sync sources.yaml` first")
        return
    counts = summary.counts
    typer.echo(
        f"checked {len(summary.outcomes)} source(s) in {time.monotonic() - started:.1f}s: "
        + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items())
    )
    if summary.failed:
        for o in summary.failed:
            typer.echo(f"  failed {o.source_id}: {o.error}", err=True)
        raise typer.Exit(EXIT_FAILURES)
