"""The kinds of source, in one place: each kind's extractor and what its rules may say.

Ingest dispatches on EXTRACTORS and the sources file is validated by rule_problems; SOURCE_KINDS
(tracker.declare.sources) and the spiders (spiders.SPIDERS) are derived from or checked against this table.
"""

from __future__ import annotations

from collections.abc import Callable

from tracker.check.ecfr import extract_part
from tracker.check.extract import Extracted, OverLimit, Rules, extract, validate_selector
from tracker.check.jsondoc import extract_json, validate_jmespath
from tracker.check.limits import DEFAULT_LIMITS, Limits, blocks_over, text_over
from tracker.check.parts import PARTS_TYPE, extract_parts
from tracker.check.pdf import extract_pdf
from tracker.check.render import render_problems

# kind -> extractor(body, rules, content_type)
Extractor = Callable[[bytes, Rules, "str | None"], Extracted]


def _extract_html(body: bytes, rules: Rules, content_type: str | None = None) -> Extracted:
    return extract(body, rules, content_type=content_type)


def _extract_ecfr(body: bytes, rules: Rules, content_type: str | None = None) -> Extracted:
    return Extracted(blocks=extract_part(body), encoding="utf-8")


# Document kinds (versions of one text). Stream kinds (entries) are tracker.check.shapes.STREAMS.
EXTRACTORS: dict[str, Extractor] = {"html": _extract_html, "pdf": extract_pdf, "json": extract_json,
                                    "ecfr": _extract_ecfr}


def extract_kind(body: bytes, rules: Rules, content_type: str | None = None, *,
                 limits: Limits = DEFAULT_LIMITS) -> Extracted:
    """Extract a fetched body with the extractor of its rules' kind (each page of a document of several),
    within the limits on blocks and text (html counts as it goes; the others bound their own work and are
    checked here)."""

    def html(body: bytes, rules: Rules, content_type: str | None = None) -> Extracted:
        return extract(body, rules, content_type=content_type, limits=limits)

    extractor = html if rules.kind == "html" else EXTRACTORS[rules.kind]
    extracted = extract_parts(body, rules, extractor) if content_type == PARTS_TYPE else (
        extractor(body, rules, content_type))
    _check_limits(extracted, limits)
    return extracted


def _check_limits(extracted: Extracted, limits: Limits) -> None:
    if len(extracted.blocks) > limits.max_blocks:
        raise OverLimit(blocks_over(limits))
    if sum(len(b.text.encode("utf-8")) for b in extracted.blocks) > limits.max_text_bytes:
        raise OverLimit(text_over(limits))


def _css(field: str, values: list[str]) -> list[str]:
    return [f"{field}: invalid CSS selector {v!r}: {why}" for v in values if (why := validate_selector(v))]


def rule_problems(kind: str, *, select: list[str], remove: list[str], link_select: str | None,
                  render: str | None = None, wait_for: str | None = None) -> list[str]:
    """What is wrong with a source's rules for its kind (empty when nothing is)."""
    problems: list[str] = render_problems(kind, render=render, wait_for=wait_for)
    if kind == "html":
        problems += _css("select", select) + _css("remove", remove)
    elif kind == "json":
        problems += [f"select: invalid JMESPath expression {v!r}: {why}"
                     for v in select if (why := validate_jmespath(v))]
        if remove:
            problems.append("remove: does not apply to kind json (narrow `select` instead)")
    elif kind == "pdf":
        for name, given in (("select", select), ("remove", remove)):
            if given:
                problems.append(f"{name}: does not apply to kind pdf (the whole text layer is read)")
    if link_select is not None:
        if kind != "pdf":
            problems.append(f"link_select: applies to kind pdf only, not {kind}")
        else:
            problems += _css("link_select", [link_select])
    return problems
