"""`tracker demo`: see the whole product work on a bundled sample, offline, with no configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tracker.cli.app import app, fail


@app.command("demo")
def demo(
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="folder for the demo database and files (default: a new temp folder)")] = None,
    port: int = typer.Option(0, "--port", help="port of the local sample site (default: any free port)"),
) -> None:
    """Run the product end to end on real policy versions: crawl, change, SOP impacts, digest preview.

    Example: tracker demo --dir ./demo   (then: TRACKER_DATABASE_URL=sqlite:///demo/tracker.db tracker serve)
    """
    from tracker.demo.run import DemoError, run_demo

    try:
        run_demo(directory=directory, port=port, echo=typer.echo)
    except DemoError as exc:
        fail(str(exc))
