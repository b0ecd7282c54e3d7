"""Policy text extraction: a page's selected part as normalised blocks with heading paths.

Pure functions, no database and no network. The page is hostile input: any encoding, any size,
scripts, broken markup. lxml parses the page (a 165 KB page in ~1 ms against ~47 ms for a
BeautifulSoup tree) and one XSLT pass in libxslt walks the selected part, leaving Python one string
to cut into blocks (tracker.check.xslt; the Python walk, tracker.check.walker, remains for the pages
that pass cannot take). tracker.check.decode turns the body into text, and BeautifulSoup's lenient
html.parser repairs pages lxml cannot read. The blocks, rules and errors are tracker.check.blocks'.
bench/extract.py times it, and tests/unit/test_extract_equivalence.py holds it to the blocks of the
extractor it replaced.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence

import lxml.etree
import lxml.html
from lxml.cssselect import CSSSelector

from tracker.check.blocks import (
    Block,
    EmptyPage,
    Extracted,
    ExtractionError,
    NoText,
    NotText,
    OverLimit,
    Rules,
    SelectorNoMatch,
)
from tracker.check.decode import decode_body
from tracker.check.limits import DEFAULT_LIMITS, Limits, text_over
from tracker.check.maincontent import boilerplate, main_content
from tracker.check.walker import Walker
from tracker.check.xslt import blocks_by_xslt

ALWAYS_REMOVE = ("script", "style", "noscript", "template", "svg", "iframe", "object", "embed",
                 "canvas", "button", "input", "select", "textarea")


def validate_selector(selector: str) -> str | None:
    """None when the CSS selector is valid, else why not."""
    try:
        CSSSelector(selector)
    except Exception as exc:  # cssselect raises several kinds
        return f"{type(exc).__name__}: {exc}"
    return None


# libxml2 keeps elements nested up to this depth (huge_tree; 256 without it) and drops the rest.
MAX_DEPTH = 2048


_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


def _parse(markup: str, utf8: bytes | None = None) -> lxml.etree._Element:
    """The page's element tree; utf8, when given, is markup encoded as UTF-8 (the body as fetched)."""
    stripped = _XML_DECLARATION.sub("", markup)  # lxml refuses str input with a declaration
    # lxml hands a str that is not ASCII to libxml2 as Latin-1, UTF-16 or UCS-4, which libxml2 then
    # converts to UTF-8, its own encoding: UTF-8 bytes (the body itself when it was UTF-8) parse the
    # same text into the same tree without that conversion (a fifth to a half less parse time). A str
    # that still starts with a declaration (lxml's ValueError, handled below) or a BOM stays a str.
    data: str | bytes = stripped
    if not stripped.isascii() and not stripped.startswith(("<?xml", "\ufeff")):
        if utf8 is not None and len(stripped) == len(markup):
            data = utf8
        else:
            try:
                data = stripped.encode("utf-8")
            except UnicodeEncodeError:  # a str body with lone surrogates
                pass
    # lxml.etree's HTML parser, not lxml.html's: the same parse, but plain elements, without the
    # Python class lookup lxml.html runs for every element the walk touches (hot path).
    parser = lxml.etree.HTMLParser(huge_tree=True, encoding="utf-8" if isinstance(data, bytes) else None)
    try:
        root = lxml.html.document_fromstring(data, parser=parser)
    except (lxml.etree.ParserError, ValueError):
        # BeautifulSoup's html.parser is more forgiving of truly broken markup.
        from bs4 import BeautifulSoup

        parser = lxml.etree.HTMLParser(huge_tree=True)
        repaired = str(BeautifulSoup(stripped, "html.parser"))
        root = lxml.html.document_fromstring(repaired or "<html></html>", parser=parser)
    if any(e.type_name == "ERR_RESOURCE_LIMIT" for e in parser.error_log):
        # The parser silently dropped what lies deeper: never record a truncated text.
        raise ExtractionError(f"the page nests elements more than {MAX_DEPTH} levels deep; "
                              "its text cannot be read in full (a broken or hostile page)")
    return root


@functools.lru_cache(maxsize=256)
def _selector(selector: str) -> CSSSelector:
    """A compiled CSS selector: compiling costs more than matching, and sources reuse theirs on every fetch."""
    return CSSSelector(selector)


# Part of every fingerprint: raise it whenever what the blocks are made of changes in a way the rules'
# extractor version does not say (a fingerprint must never vouch for blocks today's code would not make),
# or when the digest itself changes (2: SHA-256 over UTF-8; a stored fingerprint of another version
# simply never matches, so each source's next page is read in full once).
FINGERPRINT_VERSION = "2"


def fingerprint(roots: Sequence[lxml.etree._Element], rules: Rules, limits: Limits) -> str:
    """The digest of everything the blocks of a page are made of: the selected elements as they stand
    after removals (serialised by libxml2 as UTF-8, without their tails), the rules and the limits.
    Blocks are a function of these alone, so two pages with one fingerprint have the same blocks.

    SHA-256 (cut to 160 bits), not BLAKE2: OpenSSL's runs on the CPU's SHA instructions where there are
    some, twice as fast here; UTF-8 rather than lxml's default ASCII with character references is
    shorter to write and to hash (an unchanged page is told ~65 µs sooner, a quarter of its fingerprint).
    """
    digest = hashlib.sha256()
    digest.update(f"{FINGERPRINT_VERSION}\0{rules.hash}\0{limits.max_blocks}\0{limits.max_text_bytes}"
                  f"\0{len(roots)}".encode())
    for el in roots:
        digest.update(b"\0")
        digest.update(lxml.etree.tostring(el, encoding="utf-8", with_tail=False))
    return digest.hexdigest()[:40]


def extract(body: bytes | str, rules: Rules, *, content_type: str | None = None,
            limits: Limits = DEFAULT_LIMITS, unless: str | None = None) -> Extracted:
    """Extract the policy text selected by rules from a page, as blocks with heading paths.

    Raises OverLimit as soon as the blocks or their text pass limits (see tracker.check.limits).
    The result carries the page's fingerprint; when it equals unless (the fingerprint of a page read
    before), the blocks are not built: they are that page's (same_as_before, an empty list). An
    unchanged page sent without validators is then told apart in about a third of the time.
    """
    if isinstance(body, bytes):
        markup, encoding, whole_utf8 = decode_body(body, content_type)
        utf8 = body if whole_utf8 else None
    else:
        if not body or body.isspace():
            raise EmptyPage("the response was empty")
        markup, encoding, utf8 = body, "utf-8", None
    try:
        root = _parse(markup, utf8)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise NotText(f"the page could not be parsed as HTML: {exc}") from exc

    # (lxml.etree.strip_elements would be no faster, and _drop is what decides which pages fail: lxml
    # refuses a tail holding a control character, and such pages must keep failing as they always did.)
    # One walk of the tree for comments, processing instructions and every ALWAYS_REMOVE tag, not one
    # per tag (14 walks of the whole page were a fifth of telling an unchanged page by its fingerprint).
    # In document order an element inside another dropped one is dropped from the detached subtree,
    # which changes nothing that stays in the page.
    for el in list(root.iter(lxml.etree.Comment, lxml.etree.ProcessingInstruction, *ALWAYS_REMOVE)):
        _drop(el)
    for sel in rules.remove:
        for el in _selector(sel)(root):
            _drop(el)
    if not rules.select:  # no rule says what to keep: the page's main content, never its boilerplate
        for el in boilerplate(root):
            _drop(el)

    if rules.select:
        roots: list[lxml.etree._Element] = []
        seen: set[int] = set()
        for sel in rules.select:
            for el in _selector(sel)(root):
                # Skip an element nested in one already selected: its text is in there.
                if id(el) in seen or any(id(a) in seen for a in el.iterancestors()):
                    continue
                seen.add(id(el))
                roots.append(el)
        if not roots:
            raise SelectorNoMatch(
                "select rule" + ("s " if len(rules.select) > 1 else " ")
                + ", ".join(repr(s) for s in rules.select) + " matched nothing on the page"
            )
    else:
        roots = [main_content(root)]

    page_print = fingerprint(roots, rules, limits)
    if unless is not None and page_print == unless:
        return Extracted(blocks=[], encoding=encoding, fingerprint=page_print, same_as_before=True)
    blocks = blocks_by_xslt(roots, markup, limits)
    if blocks is None:  # text holding the marker characters, or nested too deep for libxslt: the Python walk
        walker = Walker(limits)
        for el in roots:
            walker.walk(el)
            walker.flush()
        blocks = walker.blocks
    if not blocks:
        raise NoText("the selected part of the page holds no text")
    check_text(blocks, limits)
    return Extracted(blocks=blocks, encoding=encoding, fingerprint=page_print)


def check_text(blocks: Sequence[Block], limits: Limits) -> None:
    """OverLimit when the blocks' text (UTF-8) is larger than limits allow."""
    chars = sum(len(b.text) for b in blocks)
    if chars > limits.max_text_bytes or (
            chars * 4 > limits.max_text_bytes and sum(len(b.text.encode()) for b in blocks) > limits.max_text_bytes):
        raise OverLimit(text_over(limits))


# Characters lxml refuses in a text it is given; vertical tab and form feed are whitespace to the walk.
_XML_REFUSED = dict.fromkeys((*range(0, 9), *range(14, 32))) | {0x0b: " ", 0x0c: " "}


def _settable(text: str) -> str:
    """A text lxml accepts: it keeps control characters the HTML parser let through, but refuses them
    in a text it is given (ValueError). They are dropped; vertical tab and form feed become spaces."""
    return text if text.isprintable() else text.translate(_XML_REFUSED)


def _drop(el: lxml.etree._Element) -> None:
    """Remove an element but keep its tail text, which belongs to the parent."""
    parent = el.getparent()
    if parent is None:
        return
    tail = el.tail
    if tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = _settable((prev.tail or "") + tail)
        else:
            parent.text = _settable((parent.text or "") + tail)
    parent.remove(el)


