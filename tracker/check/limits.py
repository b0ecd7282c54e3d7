"""Bounds on what one page may make: blocks, text, heading length, and no terminal control codes.

A page is hostile input. A 16 MB page of 2,000,000 `<p>x</p>` made 2,000,000 blocks (2.4 GB to
crawl, 226 MB in the database); a 54 KB `<h1>` above 5,000 paragraphs was copied into every
block's heading path (541 MB per change). Extraction therefore counts blocks and text as it makes
them and stops at the first one past the limit (the check records the error and the baseline
stays), and a heading enters the heading path of the blocks beneath it clipped to
MAX_HEADING_CHARS (its own block keeps the whole text, so a change to it is still seen).
Escape sequences and other control characters in page text would reach the terminal through
`changes show` and the text digest: they are removed from every text at extraction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A heading longer than this enters heading paths (sections) clipped, with an ellipsis. Part of
# what extraction makes, as fixed as the rest of it: changing it changes the paths of pages with
# longer headings (migration 0009 clipped the stored ones to match).
MAX_HEADING_CHARS = 300
ELLIPSIS = "\u2026"


@dataclass(frozen=True, slots=True)
class Limits:
    """How much one version may hold: TRACKER_MAX_BLOCKS blocks, TRACKER_MAX_TEXT_BYTES of text."""

    max_blocks: int = 20_000
    max_text_bytes: int = 5 * 1024 * 1024


DEFAULT_LIMITS = Limits()


def blocks_over(limits: Limits) -> str:
    """The error of a page with more blocks than the limit allows."""
    return (f"the page's selected text makes more than {limits.max_blocks} blocks (TRACKER_MAX_BLOCKS); "
            "narrow the source's select rules, or raise TRACKER_MAX_BLOCKS if the page is legitimate")


def text_over(limits: Limits) -> str:
    """The error of a page with more text than the limit allows."""
    return (f"the page's selected text is larger than {limits.max_text_bytes} bytes (TRACKER_MAX_TEXT_BYTES); "
            "narrow the source's select rules, or raise TRACKER_MAX_TEXT_BYTES if the page is legitimate")


def clip_heading(text: str) -> str:
    """A heading as it enters the heading path: at most MAX_HEADING_CHARS characters."""
    if len(text) <= MAX_HEADING_CHARS:
        return text
    return text[: MAX_HEADING_CHARS - 1].rstrip(" ") + ELLIPSIS


# ESC sequences (CSI "ESC [ ... final", OSC "ESC ] ... BEL or ESC \\", and two-character ones), then
# every other C0 and C1 control character. The ones str.split() counts as whitespace (\t \n \v \f \r,
# \x1c-\x1f, NEL) are left to the whitespace collapse, which turns them into spaces as it always has.
# An OSC ends at BEL or ESC \\ within 512 characters; unterminated, only its ESC ] goes (never the rest of
# the page, and never extraction's marker characters, U+FDD0 and U+FDD1).
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b\ufdd0\ufdd1]{0,512}(?:\x07|\x1b\\)|[ -/]*[0-~]?)")
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")
# A C1 character in page text is a windows-1252 byte read as ISO-8859-1 (browsers read that label as
# windows-1252): it becomes the character the page meant ("\x97" an em dash), or goes when that byte
# means nothing there either. Either way no C1 control (8-bit CSI "\x9b" among them) is left.
_C1 = {c: bytes([c]).decode("cp1252", "ignore") or None for c in range(0x80, 0xA0) if c != 0x85}
_OTHER_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1b\x7f]")


# The characters _CONTROLS matches, ASCII ones first: looking for each with `in` (memchr-like, hot path:
# every extracted page) is several times faster than one regex search of the whole text.
_CONTROL_CHARS = tuple(chr(c) for c in (*range(0x09), *range(0x0E, 0x1C), 0x7F, *range(0x80, 0x85),
                                        *range(0x86, 0xA0)))
_ASCII_CONTROL_CHARS = _CONTROL_CHARS[:24]


def strip_controls(text: str) -> str:
    """text without terminal escape sequences and control characters (whitespace ones kept)."""
    if not any(c in text for c in (_ASCII_CONTROL_CHARS if text.isascii() else _CONTROL_CHARS)):
        return text  # the common case
    return _OTHER_CONTROLS.sub("", _ESCAPES.sub("", text)).translate(_C1)
