"""Noise learned, not guessed: volatile blocks, ignore patterns and the rule that drops them.

A page fetched a few seconds apart shows its noise: the blocks that differ between the fetches
("Page generated at …", "Trending now: item 42", a navigation list in random order) are
volatile. preview (tracker.check.preview) shows them and suggests a rule: a `remove` selector of
the element that holds them, or an `ignore` pattern. A source's `ignore:` patterns are regular
expressions over block text; what they match is taken out of the comparison (replaced by an
ellipsis in the text compared and diffed) while the block itself stays in the version.

Patterns are declared in YAML, hostile input like any other: each is capped at
MAX_PATTERN_CHARS and at most MAX_PATTERNS are allowed per source, compiled once, and applied
to block text that extraction already bounded (TRACKER_MAX_TEXT_BYTES).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tracker.check.blocks import Block

MAX_PATTERN_CHARS = 200
MAX_PATTERNS = 20
IGNORED = "\u2026"


def pattern_problem(pattern: str) -> str | None:
    """None when an ignore pattern is usable, else why not."""
    if not pattern:
        return "an empty pattern would match every text"
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"{len(pattern)} characters; an ignore pattern may have at most {MAX_PATTERN_CHARS}"
    try:
        compiled = _compile(pattern)
    except re.error as exc:
        return f"not a regular expression: {exc}"
    if compiled.fullmatch(""):
        return "it matches the empty text, so it would match everywhere; anchor it or make it match something"
    return None


def patterns_problem(patterns: Sequence[str]) -> str | None:
    """None when a source's ignore list is usable, else the first problem."""
    if len(patterns) > MAX_PATTERNS:
        return f"{len(patterns)} patterns; a source may have at most {MAX_PATTERNS}"
    for p in patterns:
        if (why := pattern_problem(p)) is not None:
            return f"ignore pattern {p!r}: {why}"
    return None


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise re.error(f"longer than {MAX_PATTERN_CHARS} characters")
    return re.compile(pattern)


def masked(blocks: Sequence[Block], patterns: Sequence[str]) -> list[Block]:
    """The blocks as compared: what the ignore patterns match replaced by an ellipsis."""
    if not patterns:
        return list(blocks)
    compiled = [_compile(p) for p in patterns]
    out = []
    for b in blocks:
        text = b.text
        for rx in compiled:
            text = rx.sub(IGNORED, text)
        out.append(b if text == b.text else Block(b.kind, text, b.path, b.page))
    return out


@dataclass
class VolatileBlock:
    """A block that differed between fetches of the same page: where, and the texts seen."""

    section: str
    kind: str
    texts: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"section": self.section, "kind": self.kind, "texts": self.texts}


def volatile_blocks(fetches: Sequence[Sequence[Block]]) -> list[VolatileBlock]:
    """The blocks not seen the same number of times in every fetch, grouped by section and kind."""
    counts = [Counter((b.kind, b.path, b.text) for b in blocks) for blocks in fetches]
    keys = set().union(*counts) if counts else set()
    unstable = {k for k in keys if len({c[k] for c in counts}) > 1}
    groups: dict[tuple[str, tuple[str, ...]], VolatileBlock] = {}
    for blocks in fetches:  # in page order, the first fetch first
        for b in blocks:
            if (b.kind, b.path, b.text) in unstable:
                group = groups.setdefault((b.kind, b.path), VolatileBlock(b.section, b.kind))
                if b.text not in group.texts:
                    group.texts.append(b.text)
    return list(groups.values())


def suggest_pattern(texts: Sequence[str]) -> str | None:
    """An ignore pattern for texts that vary: their common leading words, then anything; None without any."""
    words = [t.split(" ") for t in texts]
    common: list[str] = []
    for column in zip(*words, strict=False):
        if len(set(column)) > 1:
            break
        common.append(column[0])
    if not common:
        return None
    return "^" + re.escape(" ".join(common)).replace("\\ ", " ") + " .*"
