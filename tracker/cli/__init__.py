"""The `tracker` command line. Each module registers its commands on the shared app."""

from __future__ import annotations

from tracker.cli import (  # noqa: F401  (registers commands)  # noqa: F401  (registers commands: the service and the demo)  # noqa: F401  (registers commands: the web UI)
    audit,
    changes,
    crawl,
    db,
    demo,
    digest,
    export,
    impacts,
    manage,
    metrics,
    notify,
    run,
    search,
    serve,
    sops,
    sources,
    status,
    users,
    worker,
)
from tracker.cli.app import app, run_app


def main() -> None:
    """Entry point of the `tracker` command."""
    run_app(owns_process=True)


__all__ = ["app", "main"]
