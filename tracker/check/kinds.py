"""What the tracker must know of a source kind to check it: the `Extraction` record, and the extractors
and rule checks of the built-in kinds.

The kinds themselves are listed once, in `spiders.KINDS` (each an `Extraction` plus its spider). The
services never import the spiders (a top layer): whoever reads a kind here is handed that registry
by its caller, the `kinds` parameter of record_check and the pydantic validation context of a
sources file (tracker.declare.sources). Nothing here branches on a kind's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel

from tracker.check.blocks import Extracted, OverLimit, Rules
from tracker.check.ecfr import extract_part
from tracker.check.entry import StreamEntry
from tracker.check.extract import check_text, extract, validate_selector
from tracker.check.jsondoc import extract_json, validate_jmespath
from tracker.check.limits import DEFAULT_LIMITS, Limits, blocks_over
from tracker.check.parts import PARTS_TYPE, extract_parts
from tracker.check.pdf import extract_pdf
from tracker.check.render import render_problems
from tracker.check.shapes import NoQuery


class Shape(StrEnum):
    """How a kind's checks are recorded."""

    DOCUMENT = "document"  # versions of one text, compared block by block (tracker.check.record)
    STREAM = "stream"  # entries; each new or updated one is a change of its own (tracker.check.streams)


class Extractor(Protocol):
    """A document kind's extractor: a fetched body to blocks, within the limits (a pure function)."""

    def __call__(self, body: bytes, rules: Rules, content_type: str | None, /, *,
                 limits: Limits) -> Extracted: ...


class FingerprintingExtractor(Protocol):
    """An extractor that also tells a page it read before by its fingerprint (Extracted.fingerprint):
    given that fingerprint as unless, it skips building the blocks of a page that has it again."""

    def __call__(self, body: bytes, rules: Rules, content_type: str | None, /, *,
                 limits: Limits, unless: str | None) -> Extracted: ...


EntryParser = Callable[[bytes], list[StreamEntry]]
# select and remove as declared -> what is wrong with them for the kind (empty when nothing is).
RuleCheck = Callable[[list[str], list[str]], list[str]]


def any_rules(select: list[str], remove: list[str]) -> list[str]:
    """The rule check of kinds that do not read select or remove (nothing to refuse)."""
    return []


@dataclass(frozen=True, kw_only=True)
class Extraction:
    """One source kind as the services see it: its shape, how its bodies are read, what it may declare."""

    name: str
    shape: Shape
    description: str  # one line, for `tracker sources kinds` and the docs
    extract: Extractor | None = None  # document kinds
    # Document kinds whose extractor fingerprints pages (the fast path of an unchanged page).
    extract_unless: FingerprintingExtractor | None = None
    entries: EntryParser | None = None  # stream kinds
    query: type[BaseModel] = NoQuery  # the schema of the source's `query:`
    check_rules: RuleCheck = any_rules
    link_select: bool = False  # whether the url may be an index page linking to the document
    # The next check asks for what was published since the newest entry recorded (else the cursor).
    cursor_from_entries: bool = False

    def __post_init__(self) -> None:
        reader = self.extract if self.shape is Shape.DOCUMENT else self.entries
        if reader is None:
            raise ValueError(f"kind {self.name}: a {self.shape} kind needs "
                             f"{'extract' if self.shape is Shape.DOCUMENT else 'entries'}")


Kinds = Mapping[str, Extraction]


def extract_kind(body: bytes, rules: Rules, content_type: str | None = None, *, kind: Extraction,
                 limits: Limits = DEFAULT_LIMITS, unless: str | None = None) -> Extracted:
    """Extract a fetched body with its kind's extractor (each page of a document of several), within the
    limits on blocks and text (html counts as it goes; the others bound their own work and are checked here).

    unless: the fingerprint of the page read last time. A kind that fingerprints its pages returns
    Extracted.same_as_before, without blocks, for a page with that fingerprint (see Extracted)."""
    extractor = kind.extract
    if extractor is None:
        raise ValueError(f"kind {kind.name} is a {kind.shape}, not a document")
    if kind.extract_unless is not None and content_type != PARTS_TYPE:
        extracted = kind.extract_unless(body, rules, content_type, limits=limits, unless=unless)
        if not extracted.same_as_before:
            _check_limits(extracted, limits)
        return extracted

    def within(body: bytes, rules: Rules, content_type: str | None) -> Extracted:
        return extractor(body, rules, content_type, limits=limits)

    extracted = extract_parts(body, rules, within) if content_type == PARTS_TYPE else within(body, rules,
                                                                                             content_type)
    _check_limits(extracted, limits)
    return extracted


def _check_limits(extracted: Extracted, limits: Limits) -> None:
    if len(extracted.blocks) > limits.max_blocks:
        raise OverLimit(blocks_over(limits))
    check_text(extracted.blocks, limits)


# --- the built-in kinds' extractors and rule checks (spiders.KINDS names them) ----------------------

def extract_html(body: bytes, rules: Rules, content_type: str | None, /, *, limits: Limits,
                 unless: str | None = None) -> Extracted:
    """kind html: blocks with heading paths from the page (select and remove are CSS), fingerprinted."""
    return extract(body, rules, content_type=content_type, limits=limits, unless=unless)


def extract_pdf_text(body: bytes, rules: Rules, content_type: str | None, /, *, limits: Limits) -> Extracted:
    """kind pdf: the text layer, page by page (bounded by tracker.check.pdf itself)."""
    return extract_pdf(body, rules, content_type)


def extract_json_doc(body: bytes, rules: Rules, content_type: str | None, /, *, limits: Limits) -> Extracted:
    """kind json: the document's (or its JMESPath selection's) fields as blocks."""
    return extract_json(body, rules, content_type)


def extract_cfr_part(body: bytes, rules: Rules, content_type: str | None, /, *, limits: Limits) -> Extracted:
    """kind ecfr: one CFR part's XML as sections."""
    return Extracted(blocks=extract_part(body), encoding="utf-8")


def _css(field: str, values: list[str]) -> list[str]:
    return [f"{field}: invalid CSS selector {v!r}: {why}" for v in values if (why := validate_selector(v))]


def css_rules(select: list[str], remove: list[str]) -> list[str]:
    """kind html: select and remove must be valid CSS selectors."""
    return _css("select", select) + _css("remove", remove)


def jmespath_rules(select: list[str], remove: list[str]) -> list[str]:
    """kind json: select holds JMESPath expressions; remove does not apply."""
    problems = [f"select: invalid JMESPath expression {v!r}: {why}" for v in select if (why := validate_jmespath(v))]
    if remove:
        problems.append("remove: does not apply to kind json (narrow `select` instead)")
    return problems


def whole_text_rules(select: list[str], remove: list[str]) -> list[str]:
    """kind pdf: the whole text layer is read, so select and remove do not apply."""
    return [f"{name}: does not apply to kind pdf (the whole text layer is read)"
            for name, given in (("select", select), ("remove", remove)) if given]


def link_select_problems(kind: Extraction, link_select: str | None, kinds: Kinds) -> list[str]:
    """What is wrong with a source's link_select for its kind (empty when nothing is)."""
    if link_select is None:
        return []
    if not kind.link_select:
        takers = ", ".join(k.name for k in kinds.values() if k.link_select) or "none"
        return [f"link_select: applies to kind {takers} only, not {kind.name}"]
    return _css("link_select", [link_select])


def rule_problems(kind: Extraction, *, select: list[str], remove: list[str], link_select: str | None,
                  kinds: Kinds, render: str | None = None, wait_for: str | None = None) -> list[str]:
    """What is wrong with a source's rules for its kind (empty when nothing is)."""
    return (render_problems(kind.name, render=render, wait_for=wait_for) + kind.check_rules(select, remove)
            + link_select_problems(kind, link_select, kinds))
