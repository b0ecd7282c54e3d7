"""The `tracker` command line. Each module registers its commands on the shared app."""

from __future__ import annotations

from tracker.cli import audit, changes, crawl, db, digest, export, impacts, sops, sources  # noqa: F401  (registers commands)
from tracker.cli import demo, run, status  # noqa: F401  (registers commands: the service and the demo)
from tracker.cli import serve, users  # noqa: F401  (registers commands: the web UI)
from tracker.cli.app import app


def main() -> None:
    """Entry point of the `tracker` command."""
    app()


__all__ = ["app", "main"]
