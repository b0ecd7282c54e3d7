"""Atom feeds of changes and the impacts they opened, per source, team or SOP.

Built with ElementTree (every text escaped) from cleaned text: scraped headings may hold control
characters that XML 1.0 forbids, which would make readers reject the whole feed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from tracker.store.models import Change, Impact, Sop, Source

ATOM = "http://www.w3.org/2005/Atom"
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
MAX_ENTRIES = 100


@dataclass(frozen=True)
class FeedFilter:
    """Which changes a feed carries: one source, the SOPs of one team, or one SOP (or all)."""

    source: str = ""
    team: str = ""
    sop: str = ""

    def label(self) -> str:
        for kind, value in (("source", self.source), ("team", self.team), ("SOP", self.sop)):
            if value:
                return f"{kind} {value}"
        return "all sources"


def _text(value: object, limit: int = 500) -> str:
    out = _XML_BAD.sub("", str(value)).strip()
    return out if len(out) <= limit else out[: limit - 1] + "…"


def _changes(session: Session, f: FeedFilter) -> list[tuple[Change, Source]]:
    q = (select(Change, Source).join(Source, col(Change.source_id) == col(Source.id))
         .where(col(Change.technical).is_(False)))
    if f.source:
        q = q.where(Change.source_id == f.source)
    if f.sop or f.team:
        impacted = select(Impact.change_id).join(Sop, col(Impact.sop_id) == col(Sop.id))
        impacted = impacted.where(Sop.id == f.sop) if f.sop else impacted.where(Sop.team_id == f.team)
        q = q.where(col(Change.id).in_(impacted))
    q = q.order_by(col(Change.detected_at).desc(), col(Change.id).desc()).limit(MAX_ENTRIES)
    return [(c, s) for c, s in session.exec(q).all()]


def _impacts(session: Session, change_ids: list[int]) -> dict[int, list[tuple[Impact, Sop]]]:
    out: dict[int, list[tuple[Impact, Sop]]] = {}
    rows = session.exec(select(Impact, Sop).join(Sop, col(Impact.sop_id) == col(Sop.id))
                        .where(col(Impact.change_id).in_(change_ids)).order_by(col(Impact.id))).all()
    for impact, sop in rows:
        out.setdefault(impact.change_id, []).append((impact, sop))
    return out


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def build_feed(*, session: Session, base_url: str, feed_filter: FeedFilter, now: datetime) -> bytes:
    """The Atom document: one entry per change, with the SOP impacts it opened."""
    base = base_url.rstrip("/")
    changes = _changes(session, feed_filter)
    impacts = _impacts(session, [c.id or 0 for c, _ in changes])
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _sub(feed, "id", f"{base}/feeds/changes.atom#{_text(feed_filter.label())}")
    _sub(feed, "title", f"Policy changes: {_text(feed_filter.label(), 200)}")
    _sub(feed, "updated", _iso(changes[0][0].detected_at if changes else now))
    _sub(feed, "link", rel="alternate", href=f"{base}/changes")
    # No rel="self" link: it would carry the reader's token into every copy of the feed.
    _sub(_sub(feed, "author"), "name", "policy tracker")
    for change, source in changes:
        entry = _sub(feed, "entry")
        link = f"{base}/changes/{change.id}"
        _sub(entry, "id", link)
        sections = "; ".join(_text(s, 200) for s in change.sections[:5]) or "the document"
        _sub(entry, "title", _text(f"{source.name} changed: {sections}", 300))
        _sub(entry, "updated", _iso(change.detected_at))
        _sub(entry, "link", rel="alternate", href=link)
        lines = [f"{source.name}: +{change.added} −{change.removed} ~{change.modified} block(s)."]
        lines += [f"{sop.id} ({_text(sop.title, 200)}): {impact.status} — {base}/impacts/{impact.id}"
                  for impact, sop in impacts.get(change.id or 0, [])]
        _sub(entry, "summary", "\n".join(_text(line) for line in lines), type="text")
    return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))
