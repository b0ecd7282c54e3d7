"""The database as YAML: `tracker sources export` and `tracker sops export`.

The output is valid input for `tracker sources sync` / `tracker sops sync` and syncs back with no change
(rows managed in the UI are reported and left alone; every exported field is the one the sync would set).
"""

from __future__ import annotations

from typing import Any

import yaml
from sqlmodel import Session, col, select

from tracker.declare.manage_sops import sop_to_spec_dict, team_to_spec_dict
from tracker.declare.manage_sources import source_to_spec_dict
from tracker.declare.managed import MANAGERS
from tracker.store.db import utcnow
from tracker.store.models import Sop, Source, Team

MANAGED_CHOICES = ("all", *MANAGERS)


def _where(model: Any, managed: str) -> Any:
    if managed not in MANAGED_CHOICES:
        raise ValueError(f"managed must be one of {', '.join(MANAGED_CHOICES)}, got {managed!r}")
    query = select(model).order_by(col(model.id))
    return query if managed == "all" else query.where(model.managed_by == managed)


def _header(what: str, command: str, managed: str, sync: str) -> str:
    scope = "every row" if managed == "all" else f"rows managed in {'the UI' if managed == 'ui' else 'files'}"
    return (f"# {what} exported from the database by `{command}` at {utcnow():%Y-%m-%dT%H:%M:%SZ} ({scope}).\n"
            f"# `{sync} FILE` reads it back with no change; rows managed in the UI stay so (and are left\n"
            f"# alone by file syncs) until handed back with `{command.rsplit(' ', 1)[0]} manage ID --by file`.\n")


def _dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def export_sources_yaml(*, session: Session, managed: str = "all") -> str:
    """The sources (all, or those managed in `file` or `ui`) as a sources file, disabled ones with enabled: false."""
    rows = session.exec(_where(Source, managed)).all()
    return (_header(f"{len(rows)} source(s)", "tracker sources export", managed, "tracker sources sync")
            + _dump({"sources": [source_to_spec_dict(r) for r in rows]}))


def export_sops_yaml(*, session: Session, managed: str = "all") -> str:
    """The teams and SOPs (all, or those managed in `file` or `ui`) as an SOP file."""
    teams = session.exec(_where(Team, managed)).all()
    sops = session.exec(_where(Sop, managed)).all()
    return (_header(f"{len(teams)} team(s) and {len(sops)} SOP(s)", "tracker sops export", managed,
                    "tracker sops sync")
            + _dump({"teams": [team_to_spec_dict(t) for t in teams], "sops": [sop_to_spec_dict(p) for p in sops]}))
