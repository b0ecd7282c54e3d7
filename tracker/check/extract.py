"""Policy text extraction: a page's selected part as normalised blocks with heading paths.

Pure functions, no database and no network. The page is hostile input: any encoding, any size,
scripts, broken markup. lxml parses the page (a 165 KB page in ~1 ms against ~47 ms for a
BeautifulSoup tree) and one XSLT pass in libxslt walks the selected part, leaving Python one string
to cut into blocks (see _blocks_by_xslt; the Python walk, _Walker, remains for the pages that pass
cannot take). BeautifulSoup's UnicodeDammit decides the encoding when the page does not say, and
BeautifulSoup's lenient html.parser repairs pages lxml cannot read. bench/extract.py times it, and
tests/unit/test_extract_equivalence.py holds it to the blocks of the extractor it replaced.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import lxml.etree
import lxml.html
from lxml.cssselect import CSSSelector

from tracker.check.limits import DEFAULT_LIMITS, Limits, blocks_over, clip_heading, strip_controls, text_over
from tracker.check.maincontent import MAIN_CONTENT_VERSION, boilerplate, main_content

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


class OverLimit(ExtractionError):
    """The page makes more blocks or text than TRACKER_MAX_BLOCKS / TRACKER_MAX_TEXT_BYTES allow."""


@dataclass(frozen=True, slots=True)
class Block:
    """One unit of policy text: a heading, paragraph, list item or table row."""

    kind: str
    text: str
    path: tuple[str, ...] = ()
    # Where the block stands in a paged document (PDF; 1-based), for people to find it. Not part of
    # the text: it takes no part in equality or blocks_hash, so a page break that moved is no change.
    page: int | None = field(default=None, compare=False)

    @property
    def section(self) -> str:
        """The heading path as one string, levels joined by ' > '."""
        return SEP.join(self.path)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "text": self.text, "path": list(self.path)}
        if self.page is not None:
            data["page"] = self.page
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Block:
        return cls(kind=data["kind"], text=data["text"], path=tuple(data.get("path", ())), page=data.get("page"))


@dataclass(frozen=True)
class Rules:
    """The extraction rules of a source: what to keep, what to drop."""

    select: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    extractor: str = EXTRACTOR_VERSION
    # The source's kind (html, pdf, json): named in the rules only when it is not html, so that the
    # rules hash of every html version stays what it was.
    kind: str = "html"

    # Regular expressions over block text taken out of comparison (tracker.check.volatile).
    ignore: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"select": list(self.select), "remove": list(self.remove),
                                "extractor": self.extractor}
        if self.kind != "html":
            data["kind"] = self.kind
        elif not self.select:  # the main-content choice (tracker.check.maincontent) makes these versions
            data["main"] = MAIN_CONTENT_VERSION
        if self.ignore:
            data["ignore"] = list(self.ignore)
        return data

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
    """Collapse whitespace, drop control and invisible characters and URL tracking parameters, NFC-normalise."""
    text = strip_controls(text)
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
    # The hashed lines repeat each block's path: they are hashed in pieces of about 1 MB, never joined
    # into one string (with a long heading that string was hundreds of times the page's size).
    q = _json_string
    digest = hashlib.sha256()
    paths: dict[tuple[str, ...], str] = {}
    parts: list[str] = []
    size = 0
    for b in blocks:
        path = paths.get(b.path)
        if path is None:
            path = paths[b.path] = "[" + ", ".join(map(q, b.path)) + "]"
        line = "[" + q(b.kind) + ", " + path + ", " + q(b.text) + "]\n"
        parts.append(line)
        size += len(line)
        if size > 1 << 20:
            digest.update("".join(parts).encode())
            parts, size = [], 0
    digest.update("".join(parts).encode())
    return digest.hexdigest()


def validate_selector(selector: str) -> str | None:
    """None when the CSS selector is valid, else why not."""
    try:
        CSSSelector(selector)
    except Exception as exc:  # cssselect raises several kinds
        return f"{type(exc).__name__}: {exc}"
    return None


_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# Control characters other than tab, newline, carriage return and form feed (the bytes \x0b and \x0c
# count as text, as they always have here), deleted by bytes.translate to count them at C speed.
_CONTROL_BYTES = bytes(range(9)) + bytes(range(14, 32))


def _count_controls(data: bytes) -> int:
    """How many bytes of data are control characters (see _CONTROL_BYTES)."""
    return len(data) - len(data.translate(None, _CONTROL_BYTES))


def decode(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Decode a page body: a BOM, valid UTF-8, the HTTP charset, the page's own, then windows-1252."""
    text, encoding, _ = _decode(body, content_type)
    return text, encoding


_UTF8_NAMES = frozenset({"utf-8", "utf8", "unicode-1-1-utf-8", "x-unicode20utf8"})


def _declares_utf8(body: bytes, content_type: str | None) -> bool:
    """Whether the page says it is UTF-8: the HTTP charset, or when that says nothing, the page's own <meta>."""
    if content_type and (m := _CHARSET_HEADER.search(content_type)):
        return m.group(1).lower() in _UTF8_NAMES
    from bs4.dammit import EncodingDetector  # (only pages that are not valid UTF-8 get here)

    meta = EncodingDetector.find_declared_encoding(body, is_html=True)
    return meta is not None and meta.lower() in _UTF8_NAMES


def _mostly_utf8(body: bytes, content_type: str | None) -> str | None:
    """A page declared UTF-8 with a few invalid bytes, decoded as a browser does (U+FFFD for each), else None.

    One stray byte (a windows-1252 quote pasted into a UTF-8 page) must not turn every accented
    letter of the page into mojibake, a false change in every block. A page only labelled UTF-8 but
    written in windows-1252 has no valid multi-byte sequence at all: it goes on to the charset
    detection, as before. The evidence: more valid non-ASCII characters than invalid sequences.
    """
    if not _declares_utf8(body, content_type):
        return None
    text = body.decode("utf-8", "replace")
    bad = text.count("\ufffd") - body.count(b"\xef\xbf\xbd")  # (not a U+FFFD the page itself holds)
    valid = len(text) - len(text.encode("ascii", "ignore")) - bad
    return text if valid > bad else None


def _decode(body: bytes, content_type: str | None) -> tuple[str, str, bool]:
    """decode(), and whether the text is the whole body read as UTF-8 (then the parser can take the body)."""
    whole_utf8 = False
    if not body or body.isspace():  # (body.strip() would copy the whole body to find out)
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
        controls = _count_controls(sample)
        if b"\x00" in sample or controls > len(sample) // 20:
            raise NotText(f"the response is not text ({controls} control bytes in the first {len(sample)})")
        try:
            # Valid UTF-8 with non-ASCII bytes is never an accident: it wins over a wrong header.
            text = body.decode("utf-8")
            whole_utf8 = True
        except UnicodeDecodeError:
            text = _mostly_utf8(body, content_type)
        if text is None:
            declared = []
            if content_type and (m := _CHARSET_HEADER.search(content_type)):
                declared.append(m.group(1))
            # Undeclared or wrongly declared: the page's own <meta>, then windows-1252 (the web's
            # default for undeclared pages) before any statistical guess.
            # bs4 is imported here, not at the top: only pages that are not UTF-8 need it (~60 ms per crawl).
            from bs4 import UnicodeDammit
            from bs4.dammit import EncodingDetector

            if (meta := EncodingDetector.find_declared_encoding(body, is_html=True)) is not None:
                declared.append(meta)
            # (UnicodeDammit tries user_encodings before the page's own declaration: pass both as definite.)
            dammit = UnicodeDammit(body, known_definite_encodings=[d for d in declared if "utf" not in d.lower()],
                                   user_encodings=["windows-1252"], is_html=True)
            if dammit.unicode_markup is None:
                raise NotText("the response could not be decoded in any known encoding") from None
            text, encoding = dammit.unicode_markup, dammit.original_encoding or "windows-1252"
    assert text is not None
    bad = text.count("\ufffd")
    if bad > max(16, len(text) // 50):
        raise NotText(f"the response decodes to {bad} replacement characters: garbage or a wrong charset")
    # In UTF-8 every control character is its own single byte and every other character's bytes are
    # >= 0x80 or printable, so counting bytes counts characters (surrogatepass: a lone surrogate is text).
    controls = _count_controls(text[:8192].encode("utf-8", "surrogatepass"))
    if controls > len(text[:8192]) // 20:
        raise NotText(f"the response is not text ({controls} control characters in the first {len(text[:8192])})")
    return text, encoding, whole_utf8


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


def extract(body: bytes | str, rules: Rules, *, content_type: str | None = None,
            limits: Limits = DEFAULT_LIMITS) -> Extracted:
    """Extract the policy text selected by rules from a page, as blocks with heading paths.

    Raises OverLimit as soon as the blocks or their text pass limits (see tracker.check.limits).
    """
    if isinstance(body, bytes):
        markup, encoding, whole_utf8 = _decode(body, content_type)
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
    for el in list(root.iter(lxml.etree.Comment, lxml.etree.ProcessingInstruction)):
        _drop(el)
    for tag in ALWAYS_REMOVE:
        for el in list(root.iter(tag)):
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

    blocks = _blocks_by_xslt(roots, markup, limits)
    if blocks is None:  # text holding the marker characters, or nested too deep for libxslt: the Python walk
        walker = _Walker(limits)
        for el in roots:
            walker.walk(el)
            walker.flush()
        blocks = walker.blocks
    if not blocks:
        raise NoText("the selected part of the page holds no text")
    _check_text(blocks, limits)
    return Extracted(blocks=blocks, encoding=encoding)


def _check_text(blocks: Sequence[Block], limits: Limits) -> None:
    """OverLimit when the blocks' text (UTF-8) is larger than limits allow."""
    chars = sum(len(b.text) for b in blocks)
    if chars > limits.max_text_bytes or (
            chars * 4 > limits.max_text_bytes and sum(len(b.text.encode()) for b in blocks) > limits.max_text_bytes):
        raise OverLimit(text_over(limits))


# -- the fast path: libxslt walks the selection, Python cuts one marked-up string ---------------
#
# The stylesheet writes the selection's text in document order (the text _Walker buffers) and, where
# _Walker acts, an op between two MARKs that says what the text before it is:
#   MARK kind-code MARK    a block of that kind (_Walker's flush; the kind its kind_stack holds
#                          there, kept by one XSLT mode per kind)
#   MARK "h" level MARK    a heading (string() of the element, as _Walker._heading takes it)
#   MARK "r" MARK          a table row, its element children's string() separated by CELL
# so that output.split(MARK) alternates text and op. Each root's output ends with a paragraph op
# (_Walker's flush between roots). MARK and CELL are Unicode noncharacters: no character composes
# with them (NFC of the whole output is NFC of each text), they are not whitespace, and the URL
# pattern stops at them, so the whole output is normalised in one pass (_normalise_marked) exactly
# as normalise_text would normalise each text. A selection whose text or alt attributes hold
# either character is walked by _Walker instead.
_MARK, _CELL = "\ufdd0", "\ufdd1"
_KIND_CODE = {"paragraph": "p", "list_item": "l", "term": "t", "definition": "d", "preformatted": "f",
              "quote": "q", "caption": "c"}
_CODE_KIND = {code: kind for kind, code in _KIND_CODE.items()}
_HEADING_OP = {f"h{level}": level for level in HEADINGS.values()}
_URL_MARKED = re.compile(_URL.pattern.replace("<>", "<>" + _MARK + _CELL), _URL.flags)
_MARKED_PAIR = re.compile(f"([^{_MARK}]*){_MARK}([^{_MARK}]*){_MARK}")


def _stylesheet() -> str:
    """The XSLT (1.0, text output) that marks up a selection for _blocks_by_xslt."""
    m = _MARK

    def mode(code: str) -> str:
        return "" if code == "p" else f' mode="{code}"'

    plain_blocks = "|".join(sorted(t for t in BLOCK_TAGS if t not in KIND_OF and t != "tr"))
    kind_blocks = {_KIND_CODE[k]: "|".join(sorted(t for t, j in KIND_OF.items() if j == k))
                   for k in dict.fromkeys(KIND_OF.values())}
    assert set(KIND_OF) <= BLOCK_TAGS and "tr" in BLOCK_TAGS and not set(HEADINGS) & BLOCK_TAGS
    # The root: the selected element (lxml runs the stylesheet on it as on a document of its own),
    # then the paragraph flush _Walker makes after each root.
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
        for c in _INVISIBLE_CHARS:  # str.replace runs at C speed; translate looks each character up
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


def _blocks_by_xslt(roots: Sequence[lxml.etree._Element], markup: str,
                    limits: Limits = DEFAULT_LIMITS) -> list[Block] | None:
    """The blocks of the selected roots, exactly as _Walker makes them; None when _Walker must make them.

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
    code_kind, heading_op, block = _CODE_KIND, _HEADING_OP, _block
    for text, op in _marked_pairs(marked, ops, limits):
        if not text or text == " ":  # no text since the last op (most ops): nothing to flush
            continue
        if "://" in text and "?" in text:
            text = _URL_MARKED.sub(_untrack, text)
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


_new_object = object.__new__
_set_kind, _set_text, _set_path = Block.kind.__set__, Block.text.__set__, Block.path.__set__  # type: ignore[attr-defined,misc]
_set_page = Block.page.__set__  # type: ignore[misc,union-attr]


def _block(kind: str, text: str, path: tuple[str, ...]) -> Block:
    """Block(kind, text, path), made without the frozen dataclass's __init__ (object.__setattr__ per
    field): a third of the time, and a page makes hundreds."""
    b = _new_object(Block)
    _set_kind(b, kind)
    _set_text(b, text)
    _set_path(b, path)
    _set_page(b, None)
    return b


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


class _Walker:
    """Turns an element tree into blocks, tracking the heading path."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
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
                    self._add(Block(self.kind_stack[-1], text, self._path))

    def _add(self, block: Block) -> None:
        """Keep a block, or raise OverLimit when it is one more than the limit allows."""
        if len(self.blocks) >= self.limits.max_blocks:
            raise OverLimit(blocks_over(self.limits))
        self.blocks.append(block)

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
            self.headings.append((level, clip_heading(text)))
            self._path = self.path
            self._add(Block("heading", text, self._path))

    def _row(self, el: lxml.etree._Element) -> None:
        self.flush()
        cells = [normalise_text(_text_content(c)) for c in el if isinstance(c.tag, str)]
        if any(cells):
            self._add(Block("table_row", " | ".join(cells), self._path))


# What lxml.html's HtmlElement.text_content() evaluates: every text node inside the element.
_text_content = lxml.etree.XPath("string()")


def blocks_from_json(data: dict[str, Any] | Sequence[dict[str, Any]]) -> list[Block]:
    """Blocks as stored on a Version (see blocks_to_json; a list is the form before migration 0009)."""
    if not isinstance(data, dict):
        return [Block.from_json(d) for d in data]
    paths: list[tuple[str, ...]] = []
    for parent, heading in data.get("paths", ()):
        paths.append((*paths[parent], heading) if parent >= 0 else (heading,))
    # One tuple per path, shared by its blocks (as extraction makes them).
    return [_block(kind, text, paths[p] if p >= 0 else ()) for kind, text, p in data.get("blocks", ())]


def blocks_to_json(blocks: Sequence[Block]) -> dict[str, Any]:
    """Blocks ready to store on a Version: each heading path once, as a tree, and each block as
    [kind, text, index of its path or -1] (a version's size is linear in its text, whatever its headings)."""
    table: list[list[Any]] = []
    ids: dict[tuple[str, ...], int] = {(): -1}

    def path_id(path: tuple[str, ...]) -> int:
        found = ids.get(path)
        if found is None:
            parent = path_id(path[:-1])
            found = ids[path] = len(table)
            table.append([parent, path[-1]])
        return found

    return {"paths": table, "blocks": [[b.kind, b.text, path_id(b.path)] for b in blocks]}
