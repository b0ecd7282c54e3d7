"""Globs checked: an SOP's `sections:` glob that matches no heading of its source's latest version.

A glob that matches nothing is accepted by the SOP file (the page may gain the heading later),
but it is almost always a typo or a renamed heading, and it silently maps nothing. `tracker sops
sync` and the SOP page warn about each one, naming the nearest headings of the latest version.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from tracker.check.blocks import SEP
from tracker.check.overview import latest_sections
from tracker.impacts.mapping import _SourceWatches, normalise_glob

NEAREST = 3


@dataclass(frozen=True)
class GlobWarning:
    """A sections glob of one watch that matches no heading of the source's latest version."""

    sop_id: str
    watch: int  # 1-based
    source_id: str
    glob: str
    nearest: list[str] = field(default_factory=list)

    def message(self) -> str:
        near = "; nearest headings: " + ", ".join(repr(n) for n in self.nearest) if self.nearest else ""
        return (f"SOP {self.sop_id}, watch {self.watch} ({self.source_id}): sections glob {self.glob!r} matches "
                f"no heading of the source's latest version{near}")


def nearest_headings(glob: str, sections: Sequence[str], n: int = NEAREST) -> list[str]:
    """The heading paths of sections closest to a glob (compared without its wildcards)."""
    want = normalise_glob(glob).replace("*", "").replace("?", "")
    by_key: dict[str, str] = {}
    for s in sections:
        if s:
            by_key.setdefault(s.casefold(), s)
            by_key.setdefault(s.split(SEP)[-1].casefold(), s)
    close = difflib.get_close_matches(want, list(by_key), n=n * 2, cutoff=0.3)
    return list(dict.fromkeys(by_key[c] for c in close))[:n]


def unmatched_globs(*, session: Session, sops: Iterable[tuple[str, Sequence[dict[str, Any]]]]) -> list[GlobWarning]:
    """A warning for each watch glob matching no heading of its source's latest version (if it has one)."""
    cache: dict[str, list[str] | None] = {}
    warnings = []
    for sop_id, watches in sops:
        for n, watch in enumerate(watches, 1):
            source_id = watch["source"]
            if source_id not in cache:
                cache[source_id] = latest_sections(session=session, source_id=source_id)
            sections = cache[source_id]
            if sections is None:
                continue
            for glob in watch.get("sections") or []:
                idx = _SourceWatches()
                gid = idx.glob_id(glob)
                if not any(gid in idx.globs_matching(s) for s in sections if s):
                    warnings.append(GlobWarning(sop_id, n, source_id, glob, nearest_headings(glob, sections)))
    return warnings
