"""Section-aware, word-level diff of two versions' blocks. Pure functions on text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from tracker.check.blocks import SEP, Block

# A modified block is a pair whose words are at least this similar; below, remove + add.
PAIR_THRESHOLD = 0.5
# Beyond this many candidate pairs in one replaced run, pair by position only (a rewrite).
MAX_PAIRING_WORK = 5_000
_WORDS = re.compile(r"\S+")


@dataclass
class BlockChange:
    """One block added, removed or modified; words holds (op, text) runs for modified blocks."""

    op: str  # added | removed | modified
    kind: str
    section: str
    old: str | None = None
    new: str | None = None
    words: list[tuple[str, str]] = field(default_factory=list)  # op: equal | insert | delete

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"op": self.op, "kind": self.kind, "section": self.section}
        if self.old is not None:
            data["old"] = self.old
        if self.new is not None:
            data["new"] = self.new
        if self.words:
            data["words"] = [list(w) for w in self.words]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlockChange:
        return cls(op=data["op"], kind=data["kind"], section=data["section"], old=data.get("old"),
                   new=data.get("new"), words=[(w[0], w[1]) for w in data.get("words", [])])

    @property
    def inserted_text(self) -> str:
        """Words that appear only in the new text."""
        if self.op == "added":
            return self.new or ""
        return " ".join(t for op, t in self.words if op == "insert")

    @property
    def deleted_text(self) -> str:
        """Words that appear only in the old text."""
        if self.op == "removed":
            return self.old or ""
        return " ".join(t for op, t in self.words if op == "delete")


@dataclass
class Diff:
    """The difference between two versions, block by block, in document order."""

    changes: list[BlockChange]

    @property
    def added(self) -> int:
        return sum(1 for c in self.changes if c.op == "added")

    @property
    def removed(self) -> int:
        return sum(1 for c in self.changes if c.op == "removed")

    @property
    def modified(self) -> int:
        return sum(1 for c in self.changes if c.op == "modified")

    @property
    def sections(self) -> list[str]:
        """Heading paths touched, in document order, each once."""
        return list(dict.fromkeys(c.section for c in self.changes))

    def by_section(self) -> dict[str, list[BlockChange]]:
        """Block changes grouped under their heading path."""
        groups: dict[str, list[BlockChange]] = {}
        for c in self.changes:
            groups.setdefault(c.section, []).append(c)
        return groups

    def __bool__(self) -> bool:
        return bool(self.changes)

    def to_json(self) -> dict[str, Any]:
        return {"changes": [c.to_json() for c in self.changes]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Diff:
        return cls([BlockChange.from_json(c) for c in data.get("changes", [])])


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """Runs of equal, deleted and inserted words turning old into new."""
    a, b = _WORDS.findall(old), _WORDS.findall(new)
    runs: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            runs.append(("equal", " ".join(a[i1:i2])))
            continue
        if tag in ("delete", "replace"):
            runs.append(("delete", " ".join(a[i1:i2])))
        if tag in ("insert", "replace"):
            runs.append(("insert", " ".join(b[j1:j2])))
    return runs


def _similarity(a: str, b: str) -> float:
    wa, wb = a.split(), b.split()
    sm = SequenceMatcher(None, wa, wb, autojunk=False)
    if sm.real_quick_ratio() < PAIR_THRESHOLD or sm.quick_ratio() < PAIR_THRESHOLD:
        return 0.0
    return sm.ratio()


def _pair(old: Sequence[Block], new: Sequence[Block]) -> list[tuple[int | None, int | None]]:
    """Align a replaced run: similar blocks pair up in order, the rest are removed or added."""
    if len(old) * len(new) > MAX_PAIRING_WORK:
        pairs_by_pos: list[tuple[int | None, int | None]] = []
        for k in range(max(len(old), len(new))):
            i = k if k < len(old) else None
            j = k if k < len(new) else None
            if i is not None and j is not None and _similarity(old[i].text, new[j].text) == 0.0:
                pairs_by_pos += [(i, None), (None, j)]
            else:
                pairs_by_pos.append((i, j))
        return pairs_by_pos
    pairs: list[tuple[int | None, int | None]] = []
    j0 = 0
    for i, ob in enumerate(old):
        best, best_j = 0.0, -1
        for j in range(j0, len(new)):
            if new[j].kind != ob.kind and {new[j].kind, ob.kind} & {"heading"}:
                continue
            score = _similarity(ob.text, new[j].text)
            if score > best:
                best, best_j = score, j
        if best_j < 0:
            pairs.append((i, None))
            continue
        pairs.extend((None, j) for j in range(j0, best_j))
        pairs.append((i, best_j))
        j0 = best_j + 1
    pairs.extend((None, j) for j in range(j0, len(new)))
    return _pair_lone(pairs, old, new)


def _pair_lone(pairs: list[tuple[int | None, int | None]], old: Sequence[Block],
               new: Sequence[Block]) -> list[tuple[int | None, int | None]]:
    """One block removed and one of its kind added in the same place is that block rewritten.

    A renamed heading or a changed date line ("Effective: March 13, 2024") shares few words
    with its old text, yet a reader sees one modified block, not a removal and an addition.
    """
    out: list[tuple[int | None, int | None]] = []
    run: list[tuple[int | None, int | None]] = []
    for p in [*pairs, (-1, -1)]:  # a sentinel closes the last run
        if p[0] is None or p[1] is None:
            run.append(p)
            continue
        removed = [i for i, _ in run if i is not None]
        added = [j for _, j in run if j is not None]
        if len(removed) == 1 and len(added) == 1 and old[removed[0]].kind == new[added[0]].kind:
            out.append((removed[0], added[0]))
        else:
            out.extend(run)
        run = []
        if p != (-1, -1):
            out.append(p)
    return out


def diff_blocks(old: Sequence[Block], new: Sequence[Block]) -> Diff:
    """Blocks added, removed and modified (with word runs) between two versions."""
    # Align on kind and text: a renamed heading is one modified block, not a change to every
    # block beneath it (their paths follow the heading).
    a = [(b.kind, b.text) for b in old]
    b_ = [(b.kind, b.text) for b in new]
    changes: list[BlockChange] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b_, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        for i, j in _pair(old[i1:i2], new[j1:j2]):
            if i is not None and j is not None:
                ob, nb = old[i1 + i], new[j1 + j]
                if ob.text == nb.text:
                    # Same words under a renamed heading: recorded where the block now lives.
                    changes.append(BlockChange("modified", nb.kind, nb.section, ob.text, nb.text,
                                               [("equal", nb.text)]))
                else:
                    changes.append(BlockChange("modified", nb.kind, nb.section, ob.text, nb.text,
                                               word_diff(ob.text, nb.text)))
            elif i is not None:
                ob = old[i1 + i]
                changes.append(BlockChange("removed", ob.kind, ob.section, old=ob.text))
            elif j is not None:
                nb = new[j1 + j]
                changes.append(BlockChange("added", nb.kind, nb.section, new=nb.text))
    return Diff(changes)


def render_text(diff: Diff, *, width: int = 100) -> str:
    """A readable section-by-section diff: [-removed-] and {+added+} words, like git --word-diff."""
    lines: list[str] = []
    for section, changes in diff.by_section().items():
        lines.append(f"## {section or '(top of document)'}")
        for c in changes:
            if c.op == "added":
                lines.append(f"  + {c.new}")
            elif c.op == "removed":
                lines.append(f"  - {c.old}")
            else:
                parts = []
                for op, text in c.words:
                    parts.append(text if op == "equal" else f"[-{text}-]" if op == "delete" else f"{{+{text}+}}")
                lines.append("  ~ " + " ".join(parts))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def section_path(section: str) -> list[str]:
    """A section string split back into heading levels."""
    return section.split(SEP) if section else []
