"""What a digest says and how it looks: the content model, word-level excerpts, subject, HTML and text.

Pure code: no database, no network. tracker/notify/digest.py fills DigestContent from the database;
this module turns it into a subject, an HTML part (CSS inlined) and a plain-text part.
Scraped text is hostile, so every template autoescapes and nothing from a page is marked safe.
"""

from __future__ import annotations

import functools
import textwrap
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2

from tracker.check.dates import takes_effect
from tracker.check.diff import BlockChange
from tracker.paths import templates_dir

# Words of unchanged text kept either side of an inserted or deleted run.
CONTEXT_WORDS = 6
# Longest inserted/deleted/added/removed run shown, in words.
MAX_RUN_WORDS = 40
# Block changes shown per change or impact; the rest are counted ("and 4 more").
MAX_EXCERPTS = 3
GAP = "…"
# Items per section shown with excerpts; the rest are one line each, so a big digest stays small
# enough for mail clients (Gmail clips messages over ~100 KB) and still lists everything it carries.
DETAIL_ITEMS = 25


@dataclass
class Excerpt:
    """A compact view of one block change: (op, text) segments; op is equal, insert, delete or gap."""

    section: str
    op: str  # added | removed | modified | moved
    segments: list[tuple[str, str]]


@dataclass
class ImpactItem:
    """One impact on one SOP, as a digest shows it."""

    impact_id: int
    status: str
    overdue: bool
    due_date: date | None
    assignee: str | None
    sop_id: str
    sop_title: str
    sop_owner: str
    source_id: str
    source_name: str
    source_url: str
    change_id: int
    detected_at: datetime
    sections: list[str]
    reasons: list[str]
    excerpts: list[Excerpt]
    more_blocks: int = 0


@dataclass
class CosmeticSource:
    """A source's cosmetic changes (tracker.check.cosmetic): listed in one line, never in full."""

    source_id: str
    source_name: str
    change_ids: list[int]
    latest: datetime


@dataclass
class ChangeItem:
    """A change in a watched source that touched no SOP."""

    change_id: int
    source_id: str
    source_name: str
    source_url: str
    detected_at: datetime
    sections: list[str]
    added: int
    removed: int
    modified: int
    excerpts: list[Excerpt]
    more_blocks: int = 0
    # SOPs this change may concern ("SOP-ID: title"), best first (tracker.impacts.suggest).
    suggested: list[str] = field(default_factory=list)


@dataclass
class PublicationItem:
    """A new or updated entry of a stream (a Federal Register document, a feed item): news as such,
    whether or not it touched an SOP, with when it takes effect and when comments close."""

    change_id: int
    source_id: str
    source_name: str
    title: str
    url: str | None
    published: str | None
    detail: str  # "Rule · Federal Trade Commission", or ""
    effective_on: date | None
    comments_close_on: date | None
    update: bool = False

    def takes_effect(self, today: date) -> str:
        """"takes effect in 12 days", "took effect on 2024-01-01", or "" when unknown."""
        return takes_effect(self.effective_on, today)


@dataclass
class SourceHealth:
    """A source whose checks are failing: since when, how often, and the last error."""

    source_id: str
    source_name: str
    source_url: str
    error_since: datetime | None
    failures: int
    last_error: str | None
    last_checked_at: datetime | None
    new: bool = False  # started failing since the recipient's last delivered digest


@dataclass
class RedirectedSource:
    """A source whose page was last fetched from another host than the one declared (a redirect)."""

    source_id: str
    source_name: str
    source_url: str
    final_url: str
    host: str


@dataclass
class DigestContent:
    """Everything one recipient's digest carries."""

    recipient: str
    now: datetime
    impacts: list[ImpactItem] = field(default_factory=list)
    changes: list[ChangeItem] = field(default_factory=list)
    failing: list[SourceHealth] = field(default_factory=list)
    publications: list[PublicationItem] = field(default_factory=list)
    redirected: list[RedirectedSource] = field(default_factory=list)
    cosmetic: list[CosmeticSource] = field(default_factory=list)
    everything: bool = False  # on the subscribe-to-everything list
    since: datetime | None = None  # an explicit re-send from this time

    @property
    def sops_needing_review(self) -> list[str]:
        """SOP ids with at least one undecided impact, in digest order."""
        return list(dict.fromkeys(i.sop_id for i in self.impacts if i.status not in ("updated", "dismissed")))

    @property
    def overdue_sops(self) -> list[str]:
        """SOP ids with at least one overdue impact."""
        return list(dict.fromkeys(i.sop_id for i in self.impacts if i.overdue))

    @property
    def has_news(self) -> bool:
        """True when there is something to send: impacts, changes, or a source that newly fails."""
        return bool(self.impacts or self.changes or self.publications or any(h.new for h in self.failing))


@dataclass
class Rendered:
    """A digest ready to mail or preview."""

    subject: str
    html: str
    text: str


# ---------------------------------------------------------------- excerpts


def _words(text: str) -> list[str]:
    return text.split()


def _clip(words: list[str], limit: int = MAX_RUN_WORDS) -> str:
    return " ".join(words) if len(words) <= limit else " ".join(words[:limit]) + " " + GAP


def excerpt_of(change: BlockChange, *, context: int = CONTEXT_WORDS) -> Excerpt:
    """A few words of context around each inserted and deleted run of a block change."""
    if change.op == "added":
        return Excerpt(change.section, "added", [("insert", _clip(_words(change.new or "")))])
    if change.op == "removed":
        return Excerpt(change.section, "removed", [("delete", _clip(_words(change.old or "")))])
    runs = [(op, text) for op, text in change.words if text]
    if all(op == "equal" for op, _ in runs):
        # Same words under a renamed heading: the block moved.
        return Excerpt(change.section, "moved", [("equal", _clip(_words(change.new or "")))])
    segments: list[tuple[str, str]] = []
    last = len(runs) - 1
    for i, (op, text) in enumerate(runs):
        words = _words(text)
        if op != "equal":
            segments.append((op, _clip(words)))
            continue
        if i == 0:  # leading context: the words just before the first edit
            if len(words) > context:
                segments.append(("gap", GAP))
            segments.append(("equal", " ".join(words[-context:])))
        elif i == last:  # trailing context
            segments.append(("equal", " ".join(words[:context])))
            if len(words) > context:
                segments.append(("gap", GAP))
        elif len(words) > 2 * context + 2:  # between two edits: keep both ends
            segments += [("equal", " ".join(words[:context])), ("gap", GAP),
                         ("equal", " ".join(words[-context:]))]
        else:
            segments.append(("equal", text))
    return Excerpt(change.section, "modified", segments)


def excerpts_for(changes: list[BlockChange], *, sections: list[str] | None = None,
                 limit: int = MAX_EXCERPTS) -> tuple[list[Excerpt], int]:
    """Excerpts of the block changes (those in `sections` first when given) and how many were left out."""
    if sections:
        wanted = set(sections)
        ordered = [c for c in changes if c.section in wanted] or list(changes)
    else:
        ordered = list(changes)
    return [excerpt_of(c) for c in ordered[:limit]], max(0, len(ordered) - limit)


def describe_reason(reason: dict[str, Any]) -> str:
    """One line saying why a watch matched a change."""
    parts: list[str] = []
    if reason.get("sections"):
        text = "section " + "; ".join(str(s) for s in reason["sections"])
        if reason.get("globs"):
            text += " (watching " + ", ".join(f'"{g}"' for g in reason["globs"]) + ")"
        parts.append(text)
    if reason.get("keywords"):
        parts.append("keywords " + ", ".join(f'"{k}"' for k in reason["keywords"]))
    for key, value in reason.items():
        if key in ("sections", "keywords", "globs", "watch", "source") or value in (None, "", [], {}):
            continue
        parts.append(f"{key} {value}")
    return " and ".join(parts) if parts else "watches every change to this source"


# ---------------------------------------------------------------- subject, links, rendering


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def subject_for(content: DigestContent) -> str:
    """What matters, in the subject: SOPs needing review and how many are overdue, else changes, else health."""
    parts: list[str] = []
    sops, overdue = content.sops_needing_review, content.overdue_sops
    if sops:
        parts.append(_plural(len(sops), "SOP needs review", "SOPs need review"))
        if overdue:
            parts.append(f"{len(overdue)} overdue")
    else:
        if content.impacts:
            parts.append(_plural(len(content.impacts), "impact", "impacts") + " already decided")
        if content.changes:
            parts.append(_plural(len(content.changes), "policy change", "policy changes") + ", no SOP affected")
        if content.failing:
            parts.append(_plural(len(content.failing), "source failing", "sources failing"))
    prefix = "[Policy tracker] " + ("Re-send: " if content.since else "")
    return prefix + (" — ".join(parts) if parts else "nothing new")


@dataclass
class Links:
    """URLs of the web UI pages a digest links to."""

    base_url: str

    def _base(self) -> str:
        return self.base_url.rstrip("/")

    def change(self, change_id: int) -> str:
        return f"{self._base()}/changes/{change_id}"

    def impact(self, impact_id: int) -> str:
        return f"{self._base()}/impacts/{impact_id}"

    def sop(self, sop_id: str) -> str:
        return f"{self._base()}/sops/{quote(sop_id, safe='')}"

    def sources(self) -> str:
        return f"{self._base()}/sources"


@functools.lru_cache(maxsize=4)
def _environment(folder: str) -> jinja2.Environment:
    # Autoescape everything but the plain-text part (where escaping would show "&lt;" to the reader).
    autoescape = jinja2.select_autoescape(disabled_extensions=("txt",), default_for_string=True, default=True)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=autoescape,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["plural"] = _plural
    env.filters["plain_excerpt"] = plain_excerpt
    env.filters["wrap"] = _wrap
    return env


def plain_excerpt(x: Excerpt) -> str:
    """An excerpt as text, marked like git --word-diff: [-removed-] and {+added+}."""
    marks = {"insert": "{{+{}+}}", "delete": "[-{}-]"}
    return " ".join(marks[op].format(text) if op in marks else text for op, text in x.segments)


def _wrap(text: str, indent: str = "", width: int = 78) -> str:
    return textwrap.fill(text, width=width, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def environment() -> jinja2.Environment:
    """The Jinja environment for templates/email (autoescape on, built on first use)."""
    return _environment(str(templates_dir() / "email"))


def _local(tz: ZoneInfo) -> Any:
    def fmt(dt: datetime | None, with_zone: bool = True) -> str:
        if dt is None:
            return "-"
        local = dt.astimezone(tz)
        return local.strftime("%Y-%m-%d %H:%M") + (f" {local.tzname()}" if with_zone else "")
    return fmt


def _inline(html: str) -> str:
    import css_inline

    return str(css_inline.inline(html))


def render_digest(content: DigestContent, *, base_url: str, timezone: str) -> Rendered:
    """The subject, the HTML part (CSS inlined) and the plain-text part of one digest."""
    tz = ZoneInfo(timezone)
    context = {"d": content, "links": Links(base_url), "local": _local(tz), "subject": subject_for(content),
               "today": content.now.astimezone(tz).date(), "tz_name": timezone,
               "detail": DETAIL_ITEMS}
    env = environment()
    html = env.get_template("digest.html").render(context)
    text = env.get_template("digest.txt").render(context)
    return Rendered(subject=context["subject"], html=_inline(html), text=text)
