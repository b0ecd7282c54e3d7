"""Impact review on one screen: what an impact matched, the excerpt of it, and the change's contents.

The digest already computes, for each impact, the excerpt of the block changes in the sections its
SOP watches (tracker.notify.render.excerpts_for); the impact page and the dashboard reuse that, so a
reviewer reads the same words in the e-mail and on the page. A long change page (one YouTube change
is 22,650 px tall) gets a table of contents of its changed sections, with the ones each impact
matched marked, and stable anchors (a hash of the heading path) so links survive paging.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from tracker.check.diff import Diff
from tracker.notify.render import Excerpt, excerpts_for
from tracker.store.models import Change, Impact
from tracker.web.diffview import PAGE_CHANGES, SectionView


def section_anchor(section: str) -> str:
    """The id of a section on the change page: stable across pages and safe in a URL fragment."""
    return "sec-" + hashlib.sha1(section.encode("utf-8", "replace")).hexdigest()[:12]


def matched_sections(impact: Impact) -> list[str]:
    """The sections an impact's reasons name, in order, once each (empty for keyword-only matches)."""
    return list(dict.fromkeys(str(s) for r in impact.reasons for s in (r.get("sections") or [])))


@dataclass
class ImpactExcerpt:
    """What the impact page shows of its change: excerpts, how many blocks were left out, sections."""

    excerpts: list[Excerpt]
    more_blocks: int
    sections: list[str]


def impact_excerpt(impact: Impact, change: Change | None) -> ImpactExcerpt:
    """The digest's excerpt for this impact: block changes in the matched sections first."""
    if change is None:
        return ImpactExcerpt([], 0, matched_sections(impact))
    sections = matched_sections(impact)
    excerpts, more = excerpts_for(Diff.from_json(change.diff).changes, sections=sections or None)
    return ImpactExcerpt(excerpts, more, sections)


@dataclass
class TocEntry:
    """One changed section in the table of contents: where it is, and which impacts matched it."""

    section: str
    anchor: str
    page: int
    changes: int = 0
    impact_ids: list[int] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        return bool(self.impact_ids)


def table_of_contents(diff: Diff, impacts: list[Impact]) -> list[TocEntry]:
    """The changed sections in document order, with the page each starts on and the impacts matching it."""
    entries: dict[str, TocEntry] = {}
    for index, change in enumerate(diff.changes):
        entry = entries.get(change.section)
        if entry is None:
            entry = entries[change.section] = TocEntry(
                change.section, section_anchor(change.section), index // PAGE_CHANGES + 1
            )
        entry.changes += 1
    for impact in impacts:
        for section in matched_sections(impact):
            if section in entries and impact.id is not None:
                entries[section].impact_ids.append(impact.id)
    return list(entries.values())


def part_anchors(parts: Sequence[object]) -> dict[int, str]:
    """The anchor of each diff part that is the first of its section (a section can come back after
    unchanged ones in between; ids must be unique, and the TOC jumps to its first appearance)."""
    seen: set[str] = set()
    out: dict[int, str] = {}
    for index, part in enumerate(parts):
        if isinstance(part, SectionView) and part.section not in seen:
            seen.add(part.section)
            out[index] = section_anchor(part.section)
    return out
