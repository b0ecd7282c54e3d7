"""RSS 2.0, RSS 1.0 and Atom feeds as stream entries, parsed with feedparser.

A feed is hostile input: feedparser never fetches anything here (it is handed bytes), text is
stripped of markup and control characters, and at most MAX_ENTRIES entries are read.
"""

from __future__ import annotations

import re
import time
from typing import Any

from lxml import html as lxml_html

from tracker.check.blocks import ExtractionError, normalise_text
from tracker.check.entry import StreamEntry

MAX_ENTRIES = 1000
MAX_SUMMARY = 20_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class MalformedFeed(ExtractionError):
    """The response is not an RSS or Atom feed feedparser can read."""


def _plain(markup: str) -> str:
    markup = _CONTROL.sub("", markup or "")[:MAX_SUMMARY]
    if "<" in markup:
        try:
            markup = lxml_html.fromstring(f"<div>{markup}</div>").text_content()
        except Exception:  # lxml refuses some fragments; keep the raw text then
            markup = re.sub(r"<[^>]*>", " ", markup)
    return normalise_text(markup)


def _when(entry: Any, key: str) -> str | None:
    parsed = entry.get(f"{key}_parsed")
    if parsed:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", parsed)
    raw = entry.get(key)
    return _plain(raw)[:64] if raw else None


def parse_feed(body: bytes) -> list[StreamEntry]:
    """The entries of a feed, newest as the feed orders them; MalformedFeed when it is not one."""
    import feedparser  # here, not at the top: only crawls with feed sources need it (~15 ms of a start)

    parsed = feedparser.parse(body)
    version = parsed.get("version") or ""
    if not version or (parsed.get("bozo") and not parsed.entries):
        why = parsed.get("bozo_exception")
        raise MalformedFeed(f"not an RSS or Atom feed{f' ({why})' if why else ''}")
    feed_title = _plain(parsed.feed.get("title", "")) or "Feed"
    out: list[StreamEntry] = []
    for entry in parsed.entries[:MAX_ENTRIES]:
        title = _plain(entry.get("title", "")) or "(untitled)"
        link = entry.get("link") or None
        ident = entry.get("id") or entry.get("guid") or f"{link or ''}#{title}"
        out.append(StreamEntry(id=str(ident)[:500], title=title[:500], url=link,
                               published=_when(entry, "published") or _when(entry, "updated"),
                               updated=_when(entry, "updated"),
                               summary=_plain(entry.get("summary", "")), path=(feed_title,)))
    return out
