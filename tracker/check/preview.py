"""`tracker sources preview`: what a source's rules make of its page now, and what of it is noise.

The page is fetched two or three times a few seconds apart and extracted with the rules, and
nothing is recorded. The blocks that differ between the fetches are volatile
(tracker.check.volatile): they are listed with a suggested rule that drops them, a `remove`
selector of the element holding them when one holds little else, and an `ignore` pattern of
their common leading words. The section tree (heading paths with block counts) is the form SOP
`sections:` globs match.

The fetch is a plain HTTP GET (no Scrapy reactor: preview runs in the CLI's own process),
bounded in time and size like a crawl: TRACKER_DOWNLOAD_TIMEOUT and TRACKER_MAX_PAGE_BYTES-like
limits are the caller's to pass.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lxml.etree
import lxml.html

from tracker.check.blocks import Block, ExtractionError, Rules
from tracker.check.extract import extract
from tracker.check.maincontent import text_length
from tracker.check.volatile import VolatileBlock, masked, suggest_pattern, volatile_blocks

MAX_PREVIEW_BYTES = 20 * 1024 * 1024
# A remove suggestion must not drop much more than the volatile text itself.
_MAX_EXTRA_CHARS = 200


class PreviewError(Exception):
    """The page could not be fetched or extracted for a preview."""


class PreviewExtractionError(PreviewError):
    """The page was fetched, but the rules make nothing of it (no match, no text, not text)."""


@dataclass
class Page:
    """One fetched page: its body and content type."""

    body: bytes
    content_type: str | None


@dataclass
class Preview:
    """What the rules make of a page over a few fetches: blocks, sections, volatile blocks, suggestions."""

    url: str
    rules: Rules
    blocks: list[Block]
    fetches: int
    volatile: list[VolatileBlock] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)

    @property
    def sections(self) -> list[tuple[str, int]]:
        return section_tree(self.blocks)

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "rules": self.rules.to_json(), "fetches": self.fetches,
                "blocks": [b.to_json() for b in self.blocks],
                "sections": [{"section": s, "blocks": n} for s, n in self.sections],
                "volatile": [v.to_json() for v in self.volatile],
                "suggested": {"remove": self.remove, "ignore": self.ignore}}


def section_tree(blocks: Sequence[Block]) -> list[tuple[str, int]]:
    """Each heading path of the blocks, in document order, with how many blocks stand under it."""
    counts: dict[str, int] = {}
    for b in blocks:
        counts[b.section] = counts.get(b.section, 0) + 1
    return list(counts.items())


class _HttpRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) URLs only (urllib's own would follow one to ftp:)."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        if not newurl.lower().startswith(("http://", "https://")):
            raise PreviewError(f"{req.full_url}: redirected to {newurl[:200]!r}, which is not an http(s) URL")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpRedirects)


def fetch_page(url: str, *, timeout: float, user_agent: str, max_bytes: int = MAX_PREVIEW_BYTES) -> Page:
    """GET a page (http or https only), at most max_bytes of it; PreviewError on any failure."""
    if not url.lower().startswith(("http://", "https://")):
        raise PreviewError(f"{url}: only http and https URLs can be previewed")
    request = urllib.request.Request(url, headers={"User-Agent": user_agent})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body = response.read(max_bytes + 1)
            content_type = response.headers.get("Content-Type")
    except urllib.error.HTTPError as exc:
        raise PreviewError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise PreviewError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    if len(body) > max_bytes:
        raise PreviewError(f"{url}: the page is larger than {max_bytes:,} bytes")
    return Page(body, content_type)


def preview(url: str, rules: Rules, *, fetch: Callable[[str], Page], fetches: int = 3, interval: float = 2.0,
            sleep: Callable[[float], None] = time.sleep) -> Preview:
    """Fetch url `fetches` times, `interval` seconds apart, and tell what the rules make of it."""
    pages: list[Page] = []
    extracted: list[list[Block]] = []
    for n in range(max(1, fetches)):
        if n:
            sleep(interval)
        page = fetch(url)
        try:
            blocks = extract(page.body, rules, content_type=page.content_type).blocks
        except ExtractionError as exc:
            raise PreviewExtractionError(f"{url}: {exc}") from None
        pages.append(page)
        extracted.append(masked(blocks, rules.ignore))
    volatile = volatile_blocks(extracted)
    result = Preview(url, rules, extracted[-1], len(pages), volatile)
    for v in volatile:
        selector = suggest_remove(pages[-1].body, v.texts)
        if selector is not None and selector not in result.remove:
            result.remove.append(selector)
        pattern = suggest_pattern(v.texts)
        if pattern is not None and pattern not in result.ignore:
            result.ignore.append(pattern)
    return result


def suggest_remove(body: bytes, texts: Sequence[str]) -> str | None:
    """A `remove` selector (tag.class) of the innermost element holding one of the texts and little else."""
    try:
        root = lxml.html.document_fromstring(body)
    except (lxml.etree.ParserError, ValueError):
        return None
    best: tuple[int, lxml.etree._Element] | None = None
    for el in root.iter():
        if not isinstance(el.tag, str) or not el.get("class"):
            continue
        content = " ".join(el.text_content().split())
        if not any(t[:80] in content for t in texts):
            continue
        depth = sum(1 for _ in el.iterancestors())
        if best is None or depth > best[0]:
            best = (depth, el)
    if best is None:
        return None
    el = best[1]
    if text_length(el) > max(len(t) for t in texts) + _MAX_EXTRA_CHARS:
        return None
    return f"{el.tag}.{el.get('class', '').split()[0]}"
