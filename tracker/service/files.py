"""The declaration files the service watches: re-read and synced whenever their content changes.

A file that fails to load keeps the last good state in the database; its content hash is kept so
the same broken content is reported once, not on every poll.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import select

from tracker.service.logs import event
from tracker.store.db import session_scope
from tracker.store.models import Source, Team


@dataclass
class FileWatch:
    """A registry file the service re-syncs whenever its content changes."""

    path: Path
    kind: str  # sources | sops
    digest: str | None = None
    failed_digest: str | None = None

    def read_if_changed(self) -> bytes | None:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            if self.failed_digest != "missing":
                event("sync.file_unreadable", logging.ERROR, file=str(self.path), kind=self.kind, error=str(exc))
                self.failed_digest = "missing"
            return None
        digest = hashlib.sha256(data).hexdigest()
        if digest in (self.digest, self.failed_digest):
            return None
        return data


def apply_file(watch: FileWatch, *, engine: Engine) -> str:
    """Sync one changed file into the database (sources or SOPs), returning what changed."""
    from tracker.declare.sources import load_sources_file, sync_sources

    if watch.kind == "sources":
        from spiders import KINDS  # the registry of kinds the file is checked against

        specs = load_sources_file(watch.path, kinds=KINDS)
        with session_scope(engine) as s:
            kwargs: dict[str, Any] = {"session": s, "specs": specs}
            if "actor" in inspect.signature(sync_sources).parameters:
                kwargs["actor"] = "system"
            return sync_sources(**kwargs).summary()
    from tracker.declare.sops import load_sops_file, sync_sops  # imported late: SOPs are optional here

    with session_scope(engine) as s:
        known = s.exec(select(Source.id)).all()
        ui_teams = s.exec(select(Team.id).where(Team.managed_by == "ui")).all()  # SOPs may name those
        sop_file = load_sops_file(watch.path, known_sources=known, known_teams=ui_teams)
        return str(sync_sops(session=s, sop_file=sop_file, actor="system").summary())
