"""The fast path of HTML extraction: libxslt walks the selection, Python cuts one marked-up string.

One XSLT pass writes the selection's text with markers where the Python walk (tracker.check.walker)
would make a block, so that Python only splits a string instead of visiting every element.
blocks_by_xslt returns None for the pages it cannot take exactly, and the walk makes those.
tests/unit/test_extract_equivalence.py holds both to the frozen reference extractor.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence

import lxml.etree

from tracker.check.blocks import INVISIBLE_CHARS, URL, Block, OverLimit, make_block, untrack
from tracker.check.limits import DEFAULT_LIMITS, Limits, blocks_over, clip_heading, strip_controls, text_over
from tracker.check.walker import BLOCK_TAGS, HEADINGS, KIND_OF

# The stylesheet writes the selection's text in document order (the text Walker buffers) and, where
# Walker acts, an op between two MARKs that says what the text before it is:
#   MARK kind-code MARK    a block of that kind (Walker's flush; the kind its kind_stack holds
#                          there, kept by one XSLT mode per kind)
#   MARK "h" level MARK    a heading (string() of the element, as Walker._heading takes it)
#   MARK "r" MARK          a table row, its element children's string() separated by CELL
# so that output.split(MARK) alternates text and op. Each root's output ends with a paragraph op
# (Walker's flush between roots). MARK and CELL are Unicode noncharacters: no character composes
# with them (NFC of the whole output is NFC of each text), they are not whitespace, and the URL
# pattern stops at them, so the whole output is normalised in one pass (_normalise_marked) exactly
# as normalise_text would normalise each text. A selection whose text or alt attributes hold
# either character is walked by Walker instead.
_MARK, _CELL = "\ufdd0", "\ufdd1"
_KIND_CODE = {"paragraph": "p", "list_item": "l", "term": "t", "definition": "d", "preformatted": "f",
              "quote": "q", "caption": "c"}
_CODE_KIND = {code: kind for kind, code in _KIND_CODE.items()}
_HEADING_OP = {f"h{level}": level for level in HEADINGS.values()}
_URL_MARKED = re.compile(URL.pattern.replace("<>", "<>" + _MARK + _CELL), URL.flags)
_MARKED_PAIR = re.compile(f"([^{_MARK}]*){_MARK}([^{_MARK}]*){_MARK}")


def _stylesheet() -> str:
    """The XSLT (1.0, text output) that marks up a selection for blocks_by_xslt."""
    m = _MARK

    def mode(code: str) -> str:
        return "" if code == "p" else f' mode="{code}"'

    plain_blocks = "|".join(sorted(t for t in BLOCK_TAGS if t not in KIND_OF and t != "tr"))
    kind_blocks = {_KIND_CODE[k]: "|".join(sorted(t for t, j in KIND_OF.items() if j == k))
                   for k in dict.fromkeys(KIND_OF.values())}
    assert set(KIND_OF) <= BLOCK_TAGS and "tr" in BLOCK_TAGS and not set(HEADINGS) & BLOCK_TAGS
    # The root: the selected element (lxml runs the stylesheet on it as on a document of its own),
    # then the paragraph flush Walker makes after each root.
    templates = [f'<xsl:template match="/"><xsl:apply-templates/><xsl:text>{m}p{m}</xsl:text></xsl:template>']
    for code in _CODE_KIND:
        templates.append(f'<xsl:template match="{plain_blocks}"{mode(code)}><xsl:text>{m}{code}{m}</xsl:text>'
                         f'<xsl:apply-templates{mode(code)}/><xsl:text>{m}{code}{m}</xsl:text></xsl:template>')
        for inner, tags in kind_blocks.items():
            templates.append(f'<xsl:template match="{tags}"{mode(code)}><xsl:text>{m}{code}{m}</xsl:text>'
                             f'<xsl:apply-templates{mode(inner)}/><xsl:text>{m}{inner}{m}</xsl:text></xsl:template>')
        templates.append(
            f'<xsl:template match="{"|".join(HEADINGS)}"{mode(code)}><xsl:text>{m}{code}{m}</xsl:text>'
            f'<xsl:value-of select="."/><xsl:text>{m}</xsl:text><xsl:value-of select="name()"/>'
            f'<xsl:text>{m}</xsl:text></xsl:template>')
        templates.append(
            f'<xsl:template match="tr"{mode(code)}><xsl:text>{m}{code}{m}</xsl:text><xsl:for-each select="*">'
            f'<xsl:if test="position() != 1"><xsl:text>{_CELL}</xsl:text></xsl:if><xsl:value-of select="."/>'
            f'</xsl:for-each><xsl:text>{m}r{m}</xsl:text></xsl:template>')
        templates.append(
            f'<xsl:template match="img"{mode(code)}><xsl:apply-templates{mode(code)}/><xsl:if test="@alt != \'\'">'
            f'<xsl:text> </xsl:text><xsl:value-of select="@alt"/><xsl:text> </xsl:text></xsl:if></xsl:template>')
    return ('<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
            '<xsl:output method="text" encoding="UTF-8"/>' + "".join(templates) + "</xsl:stylesheet>")


_TRANSFORM = lxml.etree.XSLT(lxml.etree.XML(_stylesheet()))
# A marker character reaches the tree only as itself or as a numeric character reference (libxml2 and
# html.parser read "&#xFDD0", "&#64976;", with leading zeros, with or without ";"; larger numbers
# become U+FFFD, never wrap around). Prefix matches only: a false alarm costs one XPath test.
_MARKER_REF = re.compile(r"&#(?:[xX]0*[fF][dD][dD][01]|0*6497[67])")
# True when the text or an alt attribute of the selection holds a marker character.
_HOLDS_MARKERS = lxml.etree.XPath(
    f"contains(., '{_MARK}') or contains(., '{_CELL}')"
    f" or boolean(descendant-or-self::*/@alt[contains(., '{_MARK}') or contains(., '{_CELL}')])")


# libxslt recurses in C once per element level: on a deeply nested selection it would need more stack
# than a worker thread has (a 1 MiB thread stack overflows at 2000 levels). Past this depth (real
# pages nest a few dozen levels) the Python walk, which keeps its own stack, does the work.
_XSLT_MAX_DEPTH = 128
_DEEPER_THAN_XSLT_MAX = lxml.etree.XPath("boolean(" + "/".join(["*"] * _XSLT_MAX_DEPTH) + ")")


def _may_hold_markers(markup: str) -> bool:
    """Whether a page's tree may hold a marker character anywhere (False: it certainly holds none)."""
    return _MARK in markup or _CELL in markup or ("&#" in markup and _MARKER_REF.search(markup) is not None)


# Every character str.split() splits on (str.isspace()) but the space itself, ASCII first.
_OTHER_SPACES = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                 "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_ASCII_OTHER_SPACES = _OTHER_SPACES[:9]
# NFC turns U+2000 and U+2001 into U+2002 and U+2003 (canonical singletons): after it, looking for them
# is a wasted scan (a slow one: str's search for a character whose low byte is 0 cannot use memchr).
_NFC_OTHER_SPACES = _OTHER_SPACES.replace("\u2000\u2001", "")


def _normalise_marked(text: str) -> str:
    """normalise_text's character steps and whitespace collapse applied to every text between markers at
    once (see above for why that is exact); the URL step is left to the texts that hold a URL."""
    text = strip_controls(text)
    if text.isascii():
        spaces = _ASCII_OTHER_SPACES
    else:
        spaces = _NFC_OTHER_SPACES
        for c in INVISIBLE_CHARS:  # str.replace runs at C speed; translate looks each character up
            if c in text:
                text = text.replace(c, "")
        text = unicodedata.normalize("NFC", text)
    # Whitespace runs become one space (each text keeps at most one at either end, stripped later), as
    # " ".join(text.split()) would make them, without a string object per word. A URL ends at whitespace
    # and holds none, so untracking after the collapse changes nothing.
    for c in spaces:
        if c in text:
            text = text.replace(c, " ")
    while "  " in text:
        text = text.replace("  ", " ")
    return text


def _marked_pairs(text: str, ops: int, limits: Limits) -> Iterator[tuple[str, str]]:
    """The (text, op) pairs of the marked-up output: from one split when its ops cannot make more blocks
    than the limit allows, else one at a time (a page of 2,000,000 ops is refused after max_blocks)."""
    if ops <= limits.max_blocks:
        parts = iter(text.split(_MARK))
        return zip(parts, parts, strict=False)
    return (m.groups() for m in _MARKED_PAIR.finditer(text))  # type: ignore[misc]


def blocks_by_xslt(roots: Sequence[lxml.etree._Element], markup: str,
                    limits: Limits = DEFAULT_LIMITS) -> list[Block] | None:
    """The blocks of the selected roots, exactly as Walker makes them; None when Walker must make them.

    Each op makes at most one block: with no more ops than max_blocks the count needs no checking.
    """
    check = _may_hold_markers(markup)
    outputs = []
    for el in roots:
        if (check and _HOLDS_MARKERS(el)) or _DEEPER_THAN_XSLT_MAX(el):
            return None
        # The result's UTF-8 bytes (the output the stylesheet declares), decoded here: str(result) makes
        # the same string at twice the cost.
        outputs.append(bytes(_TRANSFORM(el)))
    marked = _normalise_marked(b"".join(outputs).decode("utf-8"))
    ops = marked.count(_MARK) // 2
    # Blocks and text are counted as they are made only when the output could pass a limit (blocks'
    # text is shorter than the output, and each op makes at most one block).
    counted = ops > limits.max_blocks or len(marked) > limits.max_text_bytes
    made, chars = 0, 0
    blocks: list[Block] = []
    append = blocks.append
    headings: list[tuple[int, str]] = []
    path: tuple[str, ...] = ()
    code_kind, heading_op, block = _CODE_KIND, _HEADING_OP, make_block
    for text, op in _marked_pairs(marked, ops, limits):
        if not text or text == " ":  # no text since the last op (most ops): nothing to flush
            continue
        if "://" in text and "?" in text:
            text = _URL_MARKED.sub(untrack, text)
        kind = code_kind.get(op)
        if kind is not None:
            append(block(kind, text.strip(" "), path))
        elif op == "r":
            cells = [c.strip(" ") for c in text.split(_CELL)]
            if any(cells):
                append(block("table_row", " | ".join(cells), path))
        else:
            text = text.strip(" ")
            level = heading_op[op]
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, clip_heading(text)))
            path = tuple(t for _, t in headings)
            append(block("heading", text, path))
        if counted and len(blocks) > made:
            made, chars = len(blocks), chars + len(blocks[-1].text)
            if made > limits.max_blocks:
                raise OverLimit(blocks_over(limits))
            if chars > limits.max_text_bytes:
                raise OverLimit(text_over(limits))
    return blocks

