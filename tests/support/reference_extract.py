"""A frozen copy of tracker/check/extract.py's extraction as it was at EXTRACTOR_VERSION "2", before it was made faster.

Why it exists: stored versions are compared by the hash of their blocks, so a faster extractor must
produce exactly the same blocks (kind, text, heading path) for every page, or every source would show
a spurious change. tests/unit/test_extract_equivalence.py and bench/extract.py compare the live extractor
against this copy; never edit it to follow tracker/check/extract.py (a deliberate change of output is a new
EXTRACTOR_VERSION and a new reference).

The original module docstring:
Policy text extraction: a page's selected part as normalised blocks with heading paths.

Pure functions, no database and no network. The page is hostile input: any encoding, any size,
scripts, broken markup. lxml parses and walks the page (a 165 KB page in ~2 ms against ~47 ms
for a BeautifulSoup tree), BeautifulSoup's UnicodeDammit decides the encoding when the page
does not say, and BeautifulSoup's lenient html.parser repairs pages lxml cannot read.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lxml.etree
import lxml.html
from bs4 import BeautifulSoup, UnicodeDammit
from bs4.dammit import EncodingDetector
from lxml.cssselect import CSSSelector

# Bump when the extraction itself changes: versions made by other rules are re-extracted
# and the difference recorded as a technical change, never as a policy change.
EXTRACTOR_VERSION = "2"

SEP = " > "
ALWAYS_REMOVE = ("script", "style", "noscript", "template", "svg", "iframe", "object", "embed",
                 "canvas", "button", "input", "select", "textarea")
HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Elements that end the running paragraph; everything else is inline text.
BLOCK_TAGS = frozenset(
    "address article aside blockquote body caption center dd details dialog dir div dl dt fieldset "
    "figcaption figure footer form header hgroup hr html li main menu nav ol p pre section summary "
    "table tbody td tfoot th thead tr ul br".split()
)
KIND_OF = {"li": "list_item", "dt": "term", "dd": "definition", "pre": "preformatted",
           "blockquote": "quote", "caption": "caption", "figcaption": "caption"}
_INVISIBLE_CHARS = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_INVISIBLE = dict.fromkeys(map(ord, _INVISIBLE_CHARS), None)
_json_string = json.encoder.encode_basestring  # a JSON string literal, as json.dumps(ensure_ascii=False) writes it
_CHARSET_HEADER = re.compile(r"charset=[\"']?([\w.:-]+)", re.I)
_URL = re.compile(r"\bhttps?://[^\s<>\"]+", re.I)
# Query parameters that identify a click or a campaign, never the page.
_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|yclid|mc_cid|mc_eid|_ga|_gl|igshid|"
    r"ref_src|ref_url|_hsenc|_hsmi|mkt_tok|oly_anon_id|oly_enc_id|vero_id|spm|si)$", re.I)


class ExtractionError(Exception):
    """The page gave no usable policy text; the baseline version stays as it is."""


class EmptyPage(ExtractionError):
    """The response had no content at all."""


class NotText(ExtractionError):
    """The response is binary or undecodable garbage, not an HTML page."""


class SelectorNoMatch(ExtractionError):
    """None of the source's select rules matched anything on the page."""


class NoText(ExtractionError):
    """The selected part of the page holds no text."""


@dataclass(frozen=True, slots=True)
class Block:
    """One unit of policy text: a heading, paragraph, list item or table row."""

    kind: str
    text: str
    path: tuple[str, ...] = ()

    @property
    def section(self) -> str:
        """The heading path as one string, levels joined by ' > '."""
        return SEP.join(self.path)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "path": list(self.path)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Block:
        return cls(kind=data["kind"], text=data["text"], path=tuple(data.get("path", ())))


@dataclass(frozen=True)
class Rules:
    """The extraction rules of a source: what to keep, what to drop."""

    select: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    extractor: str = EXTRACTOR_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"select": list(self.select), "remove": list(self.remove), "extractor": self.extractor}

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()


@dataclass
class Extracted:
    """The outcome of extracting a page."""

    blocks: list[Block]
    encoding: str
    warnings: list[str] = field(default_factory=list)

    @property
    def hash(self) -> str:
        return blocks_hash(self.blocks)


def normalise_text(text: str) -> str:
    """Collapse whitespace, drop invisible characters and tracking parameters of URLs, NFC-normalise."""
    # Hot path (every block of every fetched page): ASCII text has no invisible characters and
    # is already NFC; str.split() splits on exactly the characters regex \s matches.
    if not text.isascii():
        if any(c in text for c in _INVISIBLE_CHARS):
            text = text.translate(_INVISIBLE)
        text = unicodedata.normalize("NFC", text)
    if "://" in text and "?" in text:
        text = _URL.sub(_untrack, text)
    return " ".join(text.split())


def _untrack(m: re.Match[str]) -> str:
    """A URL shown in the text, without its tracking query parameters (utm_*, fbclid, ...)."""
    url = m.group(0)
    trail = len(url) - len(url.rstrip(".,;:!)]'\""))
    url, end = (url[:-trail], url[-trail:]) if trail else (url, "")
    base, sep, rest = url.partition("?")
    if not sep:
        return url + end
    query, hsep, fragment = rest.partition("#")
    kept = [p for p in query.split("&") if p and not _TRACKING.match(p.split("=", 1)[0])]
    return base + ("?" + "&".join(kept) if kept else "") + hsep + fragment + end


def blocks_hash(blocks: Iterable[Block]) -> str:
    """A stable hash of the extracted text: equal hashes mean no change."""
    # Each block hashed as json.dumps([kind, path, text], ensure_ascii=False) + "\n", written out
    # with json's own string encoder (what json.dumps does inside, without its per-call set-up),
    # each heading path encoded once, and the whole page hashed in one update.
    q = _json_string
    paths: dict[tuple[str, ...], str] = {}
    parts = []
    for b in blocks:
        path = paths.get(b.path)
        if path is None:
            path = paths[b.path] = "[" + ", ".join(map(q, b.path)) + "]"
        parts.append("[" + q(b.kind) + ", " + path + ", " + q(b.text) + "]\n")
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def validate_selector(selector: str) -> str | None:
    """None when the CSS selector is valid, else why not."""
    try:
        CSSSelector(selector)
    except Exception as exc:  # cssselect raises several kinds
        return f"{type(exc).__name__}: {exc}"
    return None


_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# Control characters other than tab, newline, carriage return and form feed.
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f]")


def decode(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Decode a page body: a BOM, valid UTF-8, the HTTP charset, the page's own, then windows-1252."""
    if not body.strip():
        raise EmptyPage("the response was empty")
    text: str | None = None
    encoding = "utf-8"
    # A byte order mark wins over any declaration (as in browsers).
    for bom, enc in _BOMS:
        if body.startswith(bom):
            try:
                text, encoding = body[len(bom):].decode(enc), enc
            except UnicodeDecodeError:
                pass
            break
    if text is None:
        sample = body[:8192]
        # Binary content has NUL bytes or a high share of control bytes; HTML has neither.
        controls = sum(1 for c in sample if c < 9 or 13 < c < 32)
        if b"\x00" in sample or controls > len(sample) // 20:
            raise NotText(f"the response is not text ({controls} control bytes in the first {len(sample)})")
        try:
            # Valid UTF-8 with non-ASCII bytes is never an accident: it wins over a wrong header.
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            declared = []
            if content_type and (m := _CHARSET_HEADER.search(content_type)):
                declared.append(m.group(1))
            # Undeclared or wrongly declared: the page's own <meta>, then windows-1252 (the web's
            # default for undeclared pages) before any statistical guess.
            if (meta := EncodingDetector.find_declared_encoding(body, is_html=True)) is not None:
                declared.append(meta)
            # (UnicodeDammit tries user_encodings before the page's own declaration: pass both as definite.)
            dammit = UnicodeDammit(body, known_definite_encodings=[d for d in declared if "utf" not in d.lower()],
                                   user_encodings=["windows-1252"], is_html=True)
            if dammit.unicode_markup is None:
                raise NotText("the response could not be decoded in any known encoding") from None
            text, encoding = dammit.unicode_markup, dammit.original_encoding or "windows-1252"
    bad = text.count("\ufffd")
    if bad > max(16, len(text) // 50):
        raise NotText(f"the response decodes to {bad} replacement characters: garbage or a wrong charset")
    controls = len(_CONTROLS.findall(text[:8192]))
    if controls > len(text[:8192]) // 20:
        raise NotText(f"the response is not text ({controls} control characters in the first {len(text[:8192])})")
    return text, encoding


# libxml2 keeps elements nested up to this depth (huge_tree; 256 without it) and drops the rest.
MAX_DEPTH = 2048


def _parse(markup: str) -> lxml.etree._Element:
    markup = re.sub(r"^\s*<\?xml[^>]*\?>", "", markup)  # lxml refuses str input with a declaration
    # lxml.etree's HTML parser, not lxml.html's: the same parse, but plain elements, without the
    # Python class lookup lxml.html runs for every element the walk touches (hot path).
    parser = lxml.etree.HTMLParser(huge_tree=True)
    try:
        root = lxml.html.document_fromstring(markup, parser=parser)
    except (lxml.etree.ParserError, ValueError):
        # BeautifulSoup's html.parser is more forgiving of truly broken markup.
        repaired = str(BeautifulSoup(markup, "html.parser"))
        root = lxml.html.document_fromstring(repaired or "<html></html>", parser=parser)
    if any(e.type_name == "ERR_RESOURCE_LIMIT" for e in parser.error_log):
        # The parser silently dropped what lies deeper: never record a truncated text.
        raise ExtractionError(f"the page nests elements more than {MAX_DEPTH} levels deep; "
                              "its text cannot be read in full (a broken or hostile page)")
    return root


def extract(body: bytes | str, rules: Rules, *, content_type: str | None = None) -> Extracted:
    """Extract the policy text selected by rules from a page, as blocks with heading paths."""
    if isinstance(body, bytes):
        markup, encoding = decode(body, content_type)
    else:
        if not body.strip():
            raise EmptyPage("the response was empty")
        markup, encoding = body, "utf-8"
    try:
        root = _parse(markup)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise NotText(f"the page could not be parsed as HTML: {exc}") from exc

    for el in list(root.iter(lxml.etree.Comment, lxml.etree.ProcessingInstruction)):
        _drop(el)
    for tag in ALWAYS_REMOVE:
        for el in list(root.iter(tag)):
            _drop(el)
    for sel in rules.remove:
        for el in CSSSelector(sel)(root):
            _drop(el)

    if rules.select:
        roots: list[lxml.etree._Element] = []
        seen: set[int] = set()
        for sel in rules.select:
            for el in CSSSelector(sel)(root):
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
        body_el = root.find("body")
        roots = [body_el if body_el is not None else root]

    walker = _Walker()
    for el in roots:
        walker.walk(el)
        walker.flush()
    if not walker.blocks:
        raise NoText("the selected part of the page holds no text")
    return Extracted(blocks=walker.blocks, encoding=encoding)


def _drop(el: lxml.etree._Element) -> None:
    """Remove an element but keep its tail text, which belongs to the parent."""
    parent = el.getparent()
    if parent is None:
        return
    tail = el.tail
    if tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(el)


class _Walker:
    """Turns an element tree into blocks, tracking the heading path."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.headings: list[tuple[int, str]] = []
        self.buffer: list[str] = []
        self.kind_stack: list[str] = ["paragraph"]
        self._path: tuple[str, ...] = ()

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self.headings)

    def flush(self) -> None:
        buffer = self.buffer
        if buffer:
            text = "".join(buffer)
            buffer.clear()
            if not text.isspace():  # whitespace between blocks normalises to nothing
                text = normalise_text(text)
                if text:
                    self.blocks.append(Block(self.kind_stack[-1], text, self._path))

    # The walk is the hot path of every fetch that is extracted: one loop, local names, the
    # heading path kept as a tuple (rebuilt only when a heading is seen), flush only when the
    # buffer holds text.
    def walk(self, root: lxml.etree._Element) -> None:
        """Turn root's subtree into blocks (iteratively: hostile pages nest thousands deep)."""
        self._path = self.path
        if not self._open(root):
            return
        buffer = self.buffer
        kind_stack = self.kind_stack
        block_tags, kind_of = BLOCK_TAGS, KIND_OF
        stack = [(root, iter(root))]
        push, pop = stack.append, stack.pop
        while stack:
            el, children = stack[-1]
            for child in children:
                # Open the child; headings and table rows are taken whole, never entered.
                tag = child.tag
                tag = tag.lower() if isinstance(tag, str) else ""
                if tag in block_tags:
                    if tag == "tr":
                        self._row(child)
                    else:
                        if buffer:
                            self.flush()
                        if tag in kind_of:
                            kind_stack.append(kind_of[tag])
                        text = child.text
                        if text:
                            buffer.append(text)
                        push((child, iter(child)))
                        break
                elif tag in HEADINGS:
                    self._heading(child, tag)
                else:
                    text = child.text
                    if text:
                        buffer.append(text)
                    push((child, iter(child)))
                    break
                tail = child.tail
                if tail:
                    buffer.append(tail)
            else:
                pop()
                tag = el.tag
                tag = tag.lower() if isinstance(tag, str) else ""
                if tag in block_tags:
                    if buffer:
                        self.flush()
                    if tag in kind_of:
                        kind_stack.pop()
                elif tag == "img":
                    alt = el.get("alt")
                    if alt:
                        buffer.append(" " + alt + " ")
                if stack:  # the tail belongs to the parent, still open
                    tail = el.tail
                    if tail:
                        buffer.append(tail)

    def _open(self, el: lxml.etree._Element) -> bool:
        """Start an element; False when it was taken whole (heading, table row)."""
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if tag in HEADINGS:
            self._heading(el, tag)
            return False
        if tag == "tr":
            self._row(el)
            return False
        if tag in BLOCK_TAGS:
            self.flush()
            if tag in KIND_OF:
                self.kind_stack.append(KIND_OF[tag])
        if el.text:
            self.buffer.append(el.text)
        return True

    def _heading(self, el: lxml.etree._Element, tag: str) -> None:
        self.flush()
        text = normalise_text(_text_content(el))
        if text:
            level = HEADINGS[tag]
            while self.headings and self.headings[-1][0] >= level:
                self.headings.pop()
            self.headings.append((level, text))
            self._path = self.path
            self.blocks.append(Block("heading", text, self._path))

    def _row(self, el: lxml.etree._Element) -> None:
        self.flush()
        cells = [normalise_text(_text_content(c)) for c in el if isinstance(c.tag, str)]
        if any(cells):
            self.blocks.append(Block("table_row", " | ".join(cells), self._path))


# What lxml.html's HtmlElement.text_content() evaluates: every text node inside the element.
_text_content = lxml.etree.XPath("string()")


def blocks_from_json(data: Sequence[dict[str, Any]]) -> list[Block]:
    """Blocks as stored on a Version."""
    return [Block.from_json(d) for d in data]


def blocks_to_json(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    """Blocks ready to store on a Version."""
    return [b.to_json() for b in blocks]
