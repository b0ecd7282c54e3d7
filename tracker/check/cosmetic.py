"""Cosmetic changes: edits that leave every word where it was.

A page that switched from straight to curly quotes, re-spaced a paragraph, wrote "Terms" as
"TERMS", swapped a hyphen for an en dash or pointed a link elsewhere changed for a hash but not
for a reader. Such a change is still recorded (and shown and exported), flagged `cosmetic`, and
mapped only to watches that ask for it (`include_cosmetic: true`): a reviewer is not asked to
read it. The test is strict: the texts of both versions, with URLs, whitespace, punctuation,
quote and dash characters taken out and case folded, must be the same sequence.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from tracker.check.blocks import Block

# A URL written in the text is a link target: which page it names is cosmetic, its words are not there.
_URL = re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.I)


def _is_noise(char: str) -> bool:
    """Whitespace, punctuation (every quote and dash style is punctuation) and format characters."""
    return char.isspace() or unicodedata.category(char)[0] in "PZ" or unicodedata.category(char) == "Cf"


def canonical(text: str) -> str:
    """A text's words only: URLs, whitespace, punctuation, quotes and dashes out, letters case folded."""
    text = _URL.sub("", unicodedata.normalize("NFKC", text))
    return "".join(c for c in text if not _is_noise(c)).casefold()


def _words(blocks: Iterable[Block]) -> list[str]:
    return [c for c in (canonical(b.text) for b in blocks) if c]


def is_cosmetic(old: Iterable[Block], new: Iterable[Block]) -> bool:
    """Whether two versions differ only in whitespace, punctuation, quote/dash style, case or link targets."""
    return _words(old) == _words(new)
