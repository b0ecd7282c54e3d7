"""The change page's diff: changed blocks by section, with the unchanged text around them to expand.

A change stores only its changed blocks. For context the two versions are aligned again the same
way the diff was made; the stored diff stays the authority: when re-aligning does not reproduce
it exactly (a technical re-extraction, say) the page shows the stored blocks without context.

One page shows at most PAGE_CHANGES block changes (a change of 2,000,000 blocks once made a 476 MB
page): a larger change is shown in pages of that many, without the unchanged text around them, with
links to the other pages; versions of more than CONTEXT_MAX_BLOCKS blocks are never re-aligned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from difflib import SequenceMatcher

from tracker.check.blocks import Block, blocks_from_json
from tracker.check.diff import BlockChange, Diff, diff_blocks
from tracker.store.models import Version

# Unchanged blocks shown next to a change, on each side; the rest of a run is folded.
CONTEXT = 1
# Block changes on one change page; past it, pages (?page=N) of this many, without context.
PAGE_CHANGES = 500
# Versions larger than this are not re-aligned for context (the change page shows changed blocks only).
CONTEXT_MAX_BLOCKS = 20_000


@dataclass
class ContextRun:
    """Unchanged blocks between changes: the ones next to a change shown, the rest folded."""

    blocks: list[Block]
    lead: int = 0  # shown at the start (right after a change)
    trail: int = 0  # shown at the end (right before a change)

    @property
    def shown_before(self) -> list[Block]:
        return self.blocks[: self.lead]

    @property
    def folded(self) -> list[Block]:
        return self.blocks[self.lead : len(self.blocks) - self.trail]

    @property
    def shown_after(self) -> list[Block]:
        return self.blocks[len(self.blocks) - self.trail :] if self.trail else []


@dataclass
class SectionView:
    """One section of the document: its changes and the unchanged blocks around them."""

    section: str
    items: list[BlockChange | ContextRun] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(isinstance(i, BlockChange) for i in self.items)

    @property
    def changes(self) -> int:
        return sum(1 for i in self.items if isinstance(i, BlockChange))


@dataclass
class UnchangedSections:
    """A run of sections without any change, shown collapsed as one."""

    sections: list[SectionView]

    @property
    def blocks(self) -> int:
        return sum(len(i.blocks) for s in self.sections for i in s.items if isinstance(i, ContextRun))


@dataclass
class DiffView:
    """What the change page shows; `with_context` is False when only the stored blocks could be shown."""

    parts: list[SectionView | UnchangedSections]
    with_context: bool
    page: int = 1
    pages: int = 1
    total: int = 0  # block changes in the whole change
    first: int = 0  # index of the first one shown
    changes_shown: int = 0


def page_of(diff: Diff, page: int) -> tuple[Diff, int, int, int]:
    """The block changes one page shows: (those, page number, number of pages, index of the first)."""
    pages = max(1, -(-len(diff.changes) // PAGE_CHANGES))
    page = min(max(1, page), pages)
    first = (page - 1) * PAGE_CHANGES
    return Diff(diff.changes[first:first + PAGE_CHANGES]), page, pages, first


def _aligned(old: list[Block], new: list[Block]) -> list[BlockChange | Block]:
    """The new document in order, each changed run replaced by its block changes."""
    a = [(b.kind, b.text) for b in old]
    b_ = [(b.kind, b.text) for b in new]
    out: list[BlockChange | Block] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b_, autojunk=False).get_opcodes():
        if tag == "equal":
            out.extend(new[j1:j2])
        else:
            out.extend(diff_blocks(old[i1:i2], new[j1:j2]).changes)
    return out


def _section_of(item: BlockChange | Block) -> str:
    return item.section


def build_view(diff: Diff, old: Version | None, new: Version | None, *, page: int = 1) -> DiffView:
    """Sections in document order: changed ones with collapsed context, unchanged ones folded together."""
    total = len(diff.changes)
    shown, page, pages, first = page_of(diff, page)
    if pages > 1 or any(v is not None and v.block_count > CONTEXT_MAX_BLOCKS for v in (old, new)):
        old = new = None  # shown without context
    view = _build(shown, old, new)
    view.page, view.pages, view.total, view.first = page, pages, total, first
    view.changes_shown = len(shown.changes)
    return view


def _build(diff: Diff, old: Version | None, new: Version | None) -> DiffView:
    stored = [c.to_json() for c in diff.changes]
    seq: list[BlockChange | Block] | None = None
    if old is not None and new is not None:
        seq = _aligned(blocks_from_json(old.blocks), blocks_from_json(new.blocks))
        if [c.to_json() for c in seq if isinstance(c, BlockChange)] != stored:
            seq = None
    with_context = seq is not None
    if seq is None:
        seq = list(diff.changes)
    sections: list[SectionView] = []
    for item in seq:
        name = _section_of(item)
        if not sections or sections[-1].section != name:
            sections.append(SectionView(name))
        items = sections[-1].items
        if isinstance(item, BlockChange):
            items.append(item)
        elif items and isinstance(items[-1], ContextRun):
            items[-1].blocks.append(item)
        else:
            items.append(ContextRun([item]))
    for sec in sections:
        _place_context(sec)
    parts: list[SectionView | UnchangedSections] = []
    for sec in sections:
        if sec.changed:
            parts.append(sec)
        elif parts and isinstance(parts[-1], UnchangedSections):
            parts[-1].sections.append(sec)
        else:
            parts.append(UnchangedSections([sec]))
    return DiffView(parts, with_context)


def _place_context(sec: SectionView) -> None:
    """Show CONTEXT blocks on each side of a change; fold the rest (unless folding would hide only one)."""
    for k, item in enumerate(sec.items):
        if not isinstance(item, ContextRun):
            continue
        lead = CONTEXT if k > 0 and isinstance(sec.items[k - 1], BlockChange) else 0
        trail = CONTEXT if k + 1 < len(sec.items) and isinstance(sec.items[k + 1], BlockChange) else 0
        if len(item.blocks) <= lead + trail + 1:
            lead, trail = len(item.blocks), 0
        item.lead, item.trail = lead, trail
