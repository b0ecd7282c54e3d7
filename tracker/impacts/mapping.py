"""Mapping changes to the SOPs they affect: one Impact per (change, SOP), with the reasons why.

A watch matches a change when the change is in the watch's source, and
- if it has `sections`: a changed block's heading path matches one of the globs. A glob matches
  the whole path ("Privacy Policy > Data retention") or any tail of it that starts at a level
  boundary ("Data retention", "* > Data retention"), case-insensitively; `*`, `?` and `[...]`
  work as in shell globs, and `*` may span levels;
- if it has `keywords`: one of them occurs as a whole word (case-insensitive) in the changed
  text: the inserted and deleted words of modified blocks, the whole text of added or removed
  blocks. A keyword may be a phrase ("data retention"); a trailing `*` makes it a prefix
  ("appeal*" matches "appeals"). With sections too, the keyword must be in the changed text of a
  block under a matching section.
Technical changes (the extraction rules changed, not the policy) are never mapped.

Matching is built once per run (globs and keywords compiled, watches indexed by source, glob
and keyword) so a change costs what it touches, not the number of SOPs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import translate
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from tracker.audit.trail import SYSTEM, append_event
from tracker.check.blocks import SEP
from tracker.check.diff import BlockChange
from tracker.check.entry import entry_filters_hold, type_name
from tracker.store.models import Change, Impact, Sop

_WORD = re.compile(r"\w+")
_SPACES = re.compile(r"\s+")
_LEVEL_SPLIT = re.compile(r"\s*>\s*")
_GLOB_SPECIAL = re.compile(r"[*?\[]")


# --- globs and keywords -------------------------------------------------------------------------

def normalise_glob(glob: str) -> str:
    """A section glob in canonical form: levels joined by ' > ', spaces collapsed, case folded."""
    levels = [_SPACES.sub(" ", level).strip() for level in _LEVEL_SPLIT.split(glob.strip())]
    return SEP.join(levels).casefold()


def _normalise_path(section: str) -> str:
    return SEP.join(_SPACES.sub(" ", level).strip() for level in section.split(SEP)).casefold()


def path_tails(section: str) -> list[str]:
    """A heading path and every tail of it that starts at a level boundary, normalised."""
    levels = _normalise_path(section).split(SEP)
    return [SEP.join(levels[i:]) for i in range(len(levels))]


def glob_problem(glob: str) -> str | None:
    """Why a section glob is unusable, or None when it is fine."""
    if not isinstance(glob, str) or not glob.strip():
        return "it is empty"
    levels = _LEVEL_SPLIT.split(glob.strip())
    if any(not level.strip() for level in levels):
        return "a level between '>' is empty (levels are joined by ' > ', e.g. 'Privacy Policy > Data*')"
    depth = 0
    for ch in glob:
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
    if depth:
        return "'[' is never closed (use '[[]' for a literal '[')"
    if re.search(r"\[\]", glob) or re.search(r"\[!\]", glob):
        return "an empty character class '[]'"
    try:
        re.compile(translate(normalise_glob(glob)))
    except re.error as exc:
        return f"not a valid glob: {exc}"
    return None


def keyword_problem(keyword: str) -> str | None:
    """Why a keyword is unusable, or None when it is fine."""
    if not isinstance(keyword, str) or not keyword.strip():
        return "it is empty"
    body = keyword.strip().removesuffix("*")
    if "*" in body:
        return "'*' is only allowed at the end of a keyword (a prefix: 'appeal*')"
    if not _WORD.search(body):
        return "it has no letters or digits, so it can never be a whole word"
    if keyword.strip().endswith("*") and len(_WORD.findall(body)) != 1:
        return "a prefix keyword ('word*') must be a single word"
    return None


@dataclass(frozen=True)
class _Keyword:
    norm: str  # case folded, spaces collapsed
    kind: str  # word | prefix | phrase
    token: str  # the word or the prefix
    tokens: frozenset[str] = frozenset()  # a phrase's words (a cheap test before the regex)
    regex: re.Pattern[str] | None = None


def _compile_keyword(keyword: str) -> _Keyword:
    kw = _SPACES.sub(" ", keyword.strip()).casefold()
    if kw.endswith("*"):
        return _Keyword(kw, "prefix", kw[:-1].strip())
    tokens = _WORD.findall(kw)
    if len(tokens) == 1 and tokens[0] == kw:
        return _Keyword(kw, "word", kw)
    pattern = r"\s+".join(re.escape(part) for part in kw.split(" "))
    return _Keyword(kw, "phrase", kw, frozenset(tokens), re.compile(rf"(?<!\w){pattern}(?!\w)"))


def changed_pieces(block: BlockChange) -> list[str]:
    """The changed text of a block: inserted and deleted runs, or the whole added/removed text."""
    if block.op == "added":
        return [block.new or ""]
    if block.op == "removed":
        return [block.old or ""]
    return [text for op, text in block.words if op in ("insert", "delete")]


def _pieces_json(change: dict[str, Any]) -> list[str]:
    op = change["op"]
    if op == "added":
        return [change.get("new") or ""]
    if op == "removed":
        return [change.get("old") or ""]
    return [text for wop, text in change.get("words", ()) if wop in ("insert", "delete")]


# Joins the changed runs of a section: no word or phrase can match across it.
_PIECE_SEP = "\n\x00\n"


# --- the matcher ----------------------------------------------------------------------------------

@dataclass(eq=False)  # hashed by identity: watches are put in sets on every match
class _Watch:
    sop_id: str
    index: int  # 1-based position in the SOP's watches
    globs: tuple[tuple[int, str], ...]  # (glob id, the glob as written)
    keywords: tuple[tuple[int, str], ...]  # (keyword id, the keyword as written)
    glob_ids: frozenset[int] = frozenset()
    keyword_ids: frozenset[int] = frozenset()
    agencies: frozenset[str] = frozenset()  # case folded slugs or names
    types: frozenset[str] = frozenset()  # case folded type names
    include_cosmetic: bool = False  # cosmetic changes (tracker.check.cosmetic) match this watch too


@dataclass
class _SourceWatches:
    """Every watch on one source, with its globs and keywords compiled and indexed."""

    glob_ids: dict[str, int] = field(default_factory=dict)
    # Globs by shape, so that the common ones cost a dict lookup instead of a regex:
    literal: dict[str, int] = field(default_factory=dict)  # "data retention"
    prefix: dict[str, list[int]] = field(default_factory=dict)  # "how we use*"
    suffix: dict[str, list[int]] = field(default_factory=dict)  # "* > data retention"
    contains: list[tuple[str, int]] = field(default_factory=list)  # "*retention*"
    general: list[tuple[re.Pattern[str], int]] = field(default_factory=list)  # anything else
    keywords: list[_Keyword] = field(default_factory=list)
    keyword_ids: dict[str, int] = field(default_factory=dict)
    words: dict[str, list[int]] = field(default_factory=dict)
    prefixes: dict[str, list[int]] = field(default_factory=dict)
    prefix_lengths: set[int] = field(default_factory=set)
    phrases: list[int] = field(default_factory=list)
    # Memo of every token seen: the word and prefix keywords it hits, or none (most tokens).
    token_hits: dict[str, tuple[int, ...]] = field(default_factory=dict)
    tokens_seen: set[str] = field(default_factory=set)
    by_glob: dict[int, list[_Watch]] = field(default_factory=dict)
    by_keyword: dict[int, list[_Watch]] = field(default_factory=dict)  # watches with keywords only
    always: list[_Watch] = field(default_factory=list)  # watches with neither
    path_hits: dict[str, frozenset[int]] = field(default_factory=dict)  # memo: section -> glob ids

    def glob_id(self, glob: str) -> int:
        norm = normalise_glob(glob)
        if norm in self.glob_ids:
            return self.glob_ids[norm]
        gid = self.glob_ids[norm] = len(self.glob_ids)
        inner = norm.strip("*")
        if _GLOB_SPECIAL.search(inner) is not None:
            self.general.append((re.compile(translate(norm), re.DOTALL), gid))
        elif norm == inner:
            self.literal[norm] = gid
        elif norm == inner + "*":
            self.prefix.setdefault(inner, []).append(gid)
        elif norm == "*" + inner:
            self.suffix.setdefault(inner, []).append(gid)
        elif norm == "*" + inner + "*":
            self.contains.append((inner, gid))
        else:  # several stars at an end: "**x"
            self.general.append((re.compile(translate(norm), re.DOTALL), gid))
        return gid

    def _glob_hits(self, section: str) -> frozenset[int]:
        tails = path_tails(section)
        full = tails[0]
        hit: set[int] = set()
        for tail in tails:
            if tail in self.literal:
                hit.add(self.literal[tail])
        if self.prefix:
            for tail in tails:
                for k in range(len(tail) + 1):
                    if (gids := self.prefix.get(tail[:k])) is not None:
                        hit.update(gids)
        # A tail is a suffix and a substring of the full path: '*'-led globs need only the full path.
        if self.suffix:
            for k in range(len(full) + 1):
                if (gids := self.suffix.get(full[k:])) is not None:
                    hit.update(gids)
        hit.update(gid for inner, gid in self.contains if inner in full)
        hit.update(gid for rx, gid in self.general if any(rx.match(tail) for tail in tails))
        return frozenset(hit)

    def keyword_id(self, keyword: str) -> int:
        kw = _compile_keyword(keyword)
        if kw.norm not in self.keyword_ids:
            kid = self.keyword_ids[kw.norm] = len(self.keywords)
            self.keywords.append(kw)
            if kw.kind == "word":
                self.words.setdefault(kw.token, []).append(kid)
            elif kw.kind == "prefix":
                self.prefixes.setdefault(kw.token, []).append(kid)
                self.prefix_lengths.add(len(kw.token))
            else:
                self.phrases.append(kid)
        return self.keyword_ids[kw.norm]

    def globs_matching(self, section: str) -> frozenset[int]:
        hit = self.path_hits.get(section)
        if hit is None:
            hit = self.path_hits[section] = self._glob_hits(section)
        return hit

    def _token_keywords(self, token: str) -> tuple[int, ...]:
        kids = list(self.words.get(token, ()))
        for k in self.prefix_lengths:
            if k <= len(token):
                kids.extend(self.prefixes.get(token[:k], ()))
        return tuple(kids)

    def keywords_matching(self, pieces: Sequence[str]) -> frozenset[int]:
        if not self.keywords:
            return frozenset()
        text = _PIECE_SEP.join(pieces).casefold()
        tokens = set(_WORD.findall(text))
        # Set operations (in C) against the memo; only tokens never seen before are looked up.
        hits = self.token_hits
        new = tokens - self.tokens_seen
        if new:
            self.tokens_seen |= new
            for tok in new:
                if kids := self._token_keywords(tok):
                    hits[tok] = kids
        found: set[int] = set()
        for tok in tokens & hits.keys():
            found.update(hits[tok])
        for kid in self.phrases:
            kw = self.keywords[kid]
            if kw.tokens <= tokens and kw.regex is not None and kw.regex.search(text):
                found.add(kid)
        return frozenset(found)


@dataclass(frozen=True)
class SopInfo:
    """What impact creation needs to know about an SOP."""

    owner: str
    review_days: int | None


class Matcher:
    """Every enabled SOP's watches, compiled once; match() says which SOPs a change affects and why.

    When a watch has both sections and keywords, a keyword must occur in the changed text of a
    block under a matching section (not anywhere in the change).
    """

    def __init__(self, sops: Iterable[tuple[str, Sequence[dict[str, Any]]]]):
        self.sources: dict[str, _SourceWatches] = {}
        for sop_id, watches in sops:
            for n, watch in enumerate(watches, 1):
                idx = self.sources.setdefault(watch["source"], _SourceWatches())
                globs = tuple((idx.glob_id(g), g) for g in watch.get("sections") or [])
                keywords = tuple((idx.keyword_id(k), k) for k in watch.get("keywords") or [])
                w = _Watch(sop_id, n, globs, keywords, frozenset(g for g, _ in globs),
                           frozenset(k for k, _ in keywords),
                           frozenset(a.strip().casefold() for a in watch.get("agencies") or []),
                           frozenset(type_name(t) for t in watch.get("types") or []),
                           bool(watch.get("include_cosmetic")))
                if w.glob_ids:
                    for gid in w.glob_ids:
                        idx.by_glob.setdefault(gid, []).append(w)
                elif w.keyword_ids:
                    for kid in w.keyword_ids:
                        idx.by_keyword.setdefault(kid, []).append(w)
                else:
                    idx.always.append(w)

    def match(self, source_id: str, blocks: Sequence[BlockChange]) -> dict[str, list[dict[str, Any]]]:
        """SOP id -> reasons (one per matching watch) for a change of source_id made of blocks."""
        return self._match(source_id, [(b.section, changed_pieces(b)) for b in blocks])

    def match_json(self, source_id: str, diff: dict[str, Any], entry: dict[str, Any] | None = None,
                   *, cosmetic: bool = False) -> dict[str, list[dict[str, Any]]]:
        """match() on a change's stored diff JSON, without building BlockChange objects.

        entry: the stream entry the change adds (the agencies/types filters read its fields); cosmetic: only
        watches with include_cosmetic may match.
        """
        return self._match(source_id, [(c["section"], _pieces_json(c)) for c in diff.get("changes", ())],
                           (entry or {}).get("fields") or {}, cosmetic=cosmetic)

    def _match(self, source_id: str, items: list[tuple[str, list[str]]],
               fields: dict[str, Any] | None = None, *, cosmetic: bool = False) -> dict[str, list[dict[str, Any]]]:
        idx = self.sources.get(source_id)
        if idx is None or not items:
            return {}
        by_section: dict[str, list[str]] = {}
        for section, pieces in items:
            by_section.setdefault(section, []).extend(pieces)
        sections = list(by_section)
        hits = {s: idx.globs_matching(s) for s in sections}

        # Inverted: which sections each matched glob and keyword is in (in document order).
        glob_sections: dict[int, list[str]] = {}
        for s in sections:
            for gid in hits[s]:
                glob_sections.setdefault(gid, []).append(s)
        candidates: set[_Watch] = set(idx.always)
        for gid in glob_sections:
            candidates.update(idx.by_glob.get(gid, ()))
        keyword_sections: dict[int, list[str]] = {}
        if idx.by_keyword or any(w.keyword_ids for w in candidates):
            for s, pieces in by_section.items():
                for kid in idx.keywords_matching(pieces):
                    keyword_sections.setdefault(kid, []).append(s)
            for kid in keyword_sections:
                candidates.update(idx.by_keyword.get(kid, ()))

        position = {s: n for n, s in enumerate(sections)}
        out: dict[str, list[dict[str, Any]]] = {}
        for w in candidates:
            if cosmetic and not w.include_cosmetic:
                continue
            reason: dict[str, Any] = {"watch": w.index, "source": source_id}
            if w.agencies or w.types:
                held = entry_filters_hold(agencies=w.agencies, types=w.types, fields=fields or {})
                if held is None:
                    continue
                reason.update(held)
            if not w.glob_ids and not w.keyword_ids:
                out.setdefault(w.sop_id, []).append(reason)
                continue
            where: set[str] | None = None
            if w.glob_ids:
                where = set().union(*(glob_sections.get(g, ()) for g in w.glob_ids))
            if w.keyword_ids:
                in_kw = set().union(*(keyword_sections.get(k, ()) for k in w.keyword_ids))
                where = in_kw if where is None else where & in_kw
            if not where:
                continue
            if w.glob_ids:
                reason["sections"] = sorted(where, key=position.__getitem__)
                reason["globs"] = list(dict.fromkeys(g for gid, g in w.globs
                                                     if not where.isdisjoint(glob_sections.get(gid, ()))))
            if w.keyword_ids:
                reason["keywords"] = list(dict.fromkeys(k for kid, k in w.keywords
                                                        if not where.isdisjoint(keyword_sections.get(kid, ()))))
            out.setdefault(w.sop_id, []).append(reason)
        for reasons in out.values():
            reasons.sort(key=lambda r: r["watch"])
        return out


# --- impacts --------------------------------------------------------------------------------------

@dataclass
class MappingContext:
    """A matcher plus what impact creation needs about each SOP; build once per run."""

    matcher: Matcher
    sops: dict[str, SopInfo]
    default_review_days: int
    effective_lead_days: int = 14

    @classmethod
    def load(cls, session: Session, *, default_review_days: int | None = None) -> MappingContext:
        """Read every enabled SOP and compile its watches."""
        from tracker.config import get_settings

        settings = get_settings()
        if default_review_days is None:
            default_review_days = settings.default_review_days
        rows = session.exec(select(Sop).where(col(Sop.enabled).is_(True)).order_by(col(Sop.id))).all()
        return cls(Matcher((s.id, s.watches) for s in rows),
                   {s.id: SopInfo(s.owner, s.review_days) for s in rows}, default_review_days,
                   settings.effective_lead_days)


class CrawlMapper:
    """map_change for a crawl: the compiled SOP watches are reused from change to change and
    rebuilt only when the SOP table changed (one aggregate query instead of a full reload)."""

    def __init__(self) -> None:
        self._context: MappingContext | None = None
        self._stamp: tuple[Any, ...] | None = None

    def __call__(self, session: Session, change: Change) -> list[Impact]:
        stamp = tuple(session.exec(select(sa.func.count(), sa.func.max(Sop.updated_at))).one())
        if self._context is None or stamp != self._stamp:
            self._context, self._stamp = MappingContext.load(session), stamp
        return map_change(session, change, context=self._context)


def create_impacts(*, session: Session, change: Change, hits: dict[str, list[dict[str, Any]]],
                    context: MappingContext, existing: set[str]) -> list[Impact]:
    from tracker.impacts.workflow import due_date_for

    created: list[Impact] = []
    for sop_id in sorted(hits):
        if sop_id in existing:
            continue
        info = context.sops[sop_id]
        days = info.review_days if info.review_days is not None else context.default_review_days
        impact = Impact(change_id=change.id or 0, sop_id=sop_id, source_id=change.source_id, status="open",
                        reasons=hits[sop_id], assignee=info.owner,
                        due_date=due_date_for(detected_at=change.detected_at, review_days=days,
                                              effective_on=change.effective_on,
                                              lead_days=context.effective_lead_days))
        session.add(impact)
        session.flush()
        append_event(session=session, actor=SYSTEM, action="impact.created", entity_type="impact",
                     entity_id=impact.id or 0,
                     after={"change_id": change.id, "sop_id": sop_id, "source_id": change.source_id,
                            "status": impact.status, "reasons": impact.reasons, "assignee": impact.assignee,
                            "due_date": impact.due_date})
        created.append(impact)
    return created


def map_change(session: Session, change: Change, *, context: MappingContext | None = None) -> list[Impact]:
    """Open impacts for every SOP a change affects, in the transaction that records it.

    Technical changes and quiet reverts (tracker.impacts.flapping) are never mapped, cosmetic ones only to
    watches that include them; SOPs with an impact on the change are skipped (running it again never duplicates).
    """
    if change.technical or change.id is None:
        return []
    if change.quiet:
        from tracker.impacts.flapping import close_flapped_impacts

        close_flapped_impacts(session=session, change=change)
        return []
    context = context or MappingContext.load(session)
    hits = context.matcher.match_json(change.source_id, change.diff, change.entry, cosmetic=change.cosmetic)
    if not hits:
        return []
    existing = set(session.exec(select(Impact.sop_id).where(Impact.change_id == change.id)).all())
    return create_impacts(session=session, change=change, hits=hits, context=context, existing=existing)
