"""What a stream (a feed, a Federal Register query) publishes: entries, each a unit of news."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from tracker.check.blocks import Block


@dataclass(frozen=True)
class StreamEntry:
    """One published entry: its id in the stream, what a reader sees, and kind-specific fields."""

    id: str
    title: str
    url: str | None = None
    published: str | None = None  # ISO date or date-time, as the stream states it
    updated: str | None = None
    summary: str = ""
    path: tuple[str, ...] = ()  # where it sits ("Federal Register > Rule"); its title is added below
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """Equal hashes: the entry says the same as before (an update changes it)."""
        data = [self.title, self.url, self.summary, self.updated, self.fields]
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    def blocks(self) -> list[Block]:
        """The entry as text blocks under its title path: what mapping and the diff read."""
        path = (*self.path, self.title)
        out = [Block("heading", self.title, path)]
        facts = [f"{k.replace('_', ' ')}: {_show(v)}" for k, v in sorted(self.fields.items()) if _show(v)]
        if self.published:
            facts.insert(0, f"published: {self.published}")
        out += [Block("paragraph", fact, path) for fact in facts]
        if self.summary:
            out.append(Block("paragraph", self.summary, path))
        if self.url:
            out.append(Block("paragraph", f"link: {self.url}", path))
        return out

    def public(self) -> dict[str, Any]:
        """The entry as `changes list --json` shows it."""
        return {"id": self.id, "title": self.title, "url": self.url, "published": self.published}


_TYPE_CODES = {"rule": "rule", "prorule": "proposed rule", "notice": "notice", "presdocu": "presidential document"}


def type_name(kind: str) -> str:
    """A Federal Register document type as a case folded name: RULE and "Rule" are "rule"."""
    norm = " ".join(kind.split()).casefold()
    return _TYPE_CODES.get(norm, norm)


def entry_filters_hold(*, agencies: frozenset[str], types: frozenset[str],
                       fields: dict[str, Any]) -> dict[str, list[str]] | None:
    """A watch's agencies / types filters (case folded) against an entry's fields: what matched, or None."""
    matched: dict[str, list[str]] = {}
    if agencies:
        have = [str(a) for a in [*(fields.get("agency_slugs") or []), *(fields.get("agencies") or [])]]
        hit = [a for a in have if a.strip().casefold() in agencies]
        if not hit:
            return None
        matched["agencies"] = list(dict.fromkeys(hit))
    if types:
        kind = str(fields.get("type") or "")
        if type_name(kind) not in types:
            return None
        matched["types"] = [kind]
    return matched


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value if _show(v))
    if isinstance(value, dict):
        return " ".join(f"{k} {v}" for k, v in value.items() if v is not None)
    return "" if value is None else str(value)
