"""The `tracker` command line. Each module registers its commands on the shared app (tracker.cli.app).

Importing this package registers every command, as the tests, the docs generator and any program that
drives the app expect. The `tracker` program (`tracker.__main__.run`) loads only the module of the
command it was asked for: importing the other eighteen and building their click commands cost ~40 ms
of every run, `tracker crawl` included (tests/e2e/test_cli_startup.py).
"""

from __future__ import annotations

import importlib
import sys

import tracker
from tracker.cli.app import app, run_app

# The command modules, in the order their commands are registered (and listed by `tracker --help`).
MODULES = ("audit", "changes", "crawl", "db", "demo", "digest", "export", "impacts", "manage", "metrics", "notify",
           "run", "search", "serve", "sops", "sources", "status", "users", "worker")
# The modules registering each top-level command or group (manage adds to the sops and sources groups).
MODULES_OF = {name: (name,) for name in MODULES if name != "manage"} | {"sops": ("sops", "manage"),
                                                                      "sources": ("sources", "manage")}


def load_commands(name: str | None = None) -> None:
    """Register the commands: only the modules of command `name` when it is one, else all of them."""
    for module in MODULES_OF.get(name or "", MODULES):
        importlib.import_module(f"{__name__}.{module}")


if not tracker.COMMANDS_ON_DEMAND:
    load_commands()


def main() -> None:
    """Entry point of the `tracker` command."""
    if tracker.COMMANDS_ON_DEMAND:
        # The first argument names the command, unless it is an option (--help, --version) or missing.
        first = sys.argv[1] if len(sys.argv) > 1 else None
        load_commands(first if first is not None and not first.startswith("-") else None)
    run_app(owns_process=True)


__all__ = ["MODULES", "app", "load_commands", "main"]
