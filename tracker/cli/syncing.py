"""What `tracker sources sync` and `tracker sops sync` share: --dry-run, and asking before disabling many.

A sync makes the database match a file, so a file truncated by mistake disables most rows. On a
terminal, more than FEW rows to disable needs a yes (or --yes); --dry-run prints what would be
added, changed and disabled and rolls everything back (the audit events with it).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from sqlmodel import Session

FEW = 3
DRY_RUN = typer.Option(False, "--dry-run", help="print what would be added, changed and disabled; change nothing")
YES = typer.Option(False, "--yes", help=f"do not ask before disabling more than {FEW} rows")


def settle(s: Session, *, disabled: int, dry_run: bool, yes: bool) -> bool:
    """Keep the sync (True) or roll it back: on --dry-run, or when a person at a terminal says no."""
    if dry_run:
        s.rollback()
        typer.echo("dry run: nothing was changed")
        return False
    if disabled > FEW and not yes and sys.stdin.isatty():
        if not typer.confirm(f"disable {disabled} rows?", default=False):
            s.rollback()
            typer.echo("nothing was changed (pass --yes to skip this question)")
            return False
    return True
