"""Blocks: the unit of extracted policy text, the rules that make them, their normal form and their hashes.

Every kind's extractor (HTML, PDF, JSON, eCFR, feeds) makes Blocks and raises ExtractionError's
kinds; the diff, the record and the web read them. Pure, like the extractors: no database, no
network. The stored form (blocks_to_json) and the hash (blocks_hash) are what versions are
compared by, so they change only with EXTRACTOR_VERSION.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracker.check.limits import strip_controls
from tracker.check.maincontent import MAIN_CONTENT_VERSION

# Bump when the extraction itself changes: versions made by other rules are re-extracted
# and the difference recorded as a technical change, never as a policy change.
EXTRACTOR_VERSION = "2"

SEP = " > "
INVISIBLE_CHARS = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_INVISIBLE = dict.fromkeys(map(ord, INVISIBLE_CHARS), None)
_json_string = json.encoder.encode_basestring  # a JSON string literal, as json.dumps(ensure_ascii=False) writes it
URL = re.compile(r"\bhttps?://[^\s<>\"]+", re.I)
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
    # The digest of what the blocks are made of (the selected part after removals, the rules and
    # limits), when the extractor computes one; same_as_before: it equalled the digest the caller
    # passed (unless=), so the blocks were not built (an empty list) and are those of that page.
    fingerprint: str | None = None
    same_as_before: bool = False

    @property
    def hash(self) -> str:
        return blocks_hash(self.blocks)


def normalise_text(text: str) -> str:
    """Collapse whitespace, drop control and invisible characters and URL tracking parameters, NFC-normalise."""
    text = strip_controls(text)
    # Hot path (every block of every fetched page): ASCII text has no invisible characters and
    # is already NFC; str.split() splits on exactly the characters regex \s matches.
    if not text.isascii():
        if any(c in text for c in INVISIBLE_CHARS):
            text = text.translate(_INVISIBLE)
        text = unicodedata.normalize("NFC", text)
    if "://" in text and "?" in text:
        text = URL.sub(untrack, text)
    return " ".join(text.split())


def untrack(m: re.Match[str]) -> str:
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
    # What each line holds before its text: "[" kind ", " path ", ", from two small caches (a page has a
    # handful of kinds and its headings' paths), and the line made by one f-string.
    kinds: dict[str, str] = {}
    paths: dict[tuple[str, ...], str] = {}
    parts: list[str] = []
    size = 0
    for b in blocks:
        try:
            path = paths[b.path]
        except KeyError:
            path = paths[b.path] = ", [" + ", ".join(map(q, b.path)) + "], "
        try:
            kind = kinds[b.kind]
        except KeyError:
            kind = kinds[b.kind] = "[" + q(b.kind)
        line = f"{kind}{path}{q(b.text)}]\n"
        parts.append(line)
        size += len(line)
        if size > 1 << 20:
            digest.update("".join(parts).encode())
            parts, size = [], 0
    digest.update("".join(parts).encode())
    return digest.hexdigest()


_new_object = object.__new__
_set_kind, _set_text, _set_path = Block.kind.__set__, Block.text.__set__, Block.path.__set__  # type: ignore[attr-defined,misc]
_set_page = Block.page.__set__  # type: ignore[misc,union-attr]


def make_block(kind: str, text: str, path: tuple[str, ...]) -> Block:
    """Block(kind, text, path), made without the frozen dataclass's __init__ (object.__setattr__ per
    field): a third of the time, and a page makes hundreds."""
    b = _new_object(Block)
    _set_kind(b, kind)
    _set_text(b, text)
    _set_path(b, path)
    _set_page(b, None)
    return b


def blocks_from_json(data: dict[str, Any] | Sequence[dict[str, Any]]) -> list[Block]:
    """Blocks as stored on a Version (see blocks_to_json; a list is the form before migration 0009)."""
    if not isinstance(data, dict):
        return [Block.from_json(d) for d in data]
    paths: list[tuple[str, ...]] = []
    for parent, heading in data.get("paths", ()):
        paths.append((*paths[parent], heading) if parent >= 0 else (heading,))
    # One tuple per path, shared by its blocks (as extraction makes them).
    return [make_block(kind, text, paths[p] if p >= 0 else ()) for kind, text, p in data.get("blocks", ())]


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

    known = ids.get  # most blocks share a path already seen: looked up inline, path_id for the others
    return {"paths": table,
            "blocks": [[b.kind, b.text, i if (i := known(b.path)) is not None else path_id(b.path)] for b in blocks]}
