"""The kinds of source, in one place: each kind's extractor and what its rules may say.

Ingest dispatches on EXTRACTORS and the sources file is validated by rule_problems; SOURCE_KINDS
(tracker.sources) and the spiders (spiders.SPIDERS) are derived from or checked against this table.
"""

from __future__ import annotations

from collections.abc import Callable

from tracker.check.jsondoc import extract_json, validate_jmespath
from tracker.check.parts import PARTS_TYPE, extract_parts
from tracker.check.pdf import extract_pdf
from tracker.extract import Extracted, Rules, extract, validate_selector

# kind -> extractor(body, rules, content_type)
Extractor = Callable[[bytes, Rules, "str | None"], Extracted]


def _extract_html(body: bytes, rules: Rules, content_type: str | None = None) -> Extracted:
    return extract(body, rules, content_type=content_type)


EXTRACTORS: dict[str, Extractor] = {"html": _extract_html, "pdf": extract_pdf, "json": extract_json}


def extract_kind(body: bytes, rules: Rules, content_type: str | None = None) -> Extracted:
    """Extract a fetched body with the extractor of its rules' kind (each page of a document of several)."""
    extractor = EXTRACTORS[rules.kind]
    if content_type == PARTS_TYPE:
        return extract_parts(body, rules, extractor)
    return extractor(body, rules, content_type)


def _css(field: str, values: list[str]) -> list[str]:
    return [f"{field}: invalid CSS selector {v!r}: {why}" for v in values if (why := validate_selector(v))]


def rule_problems(kind: str, *, select: list[str], remove: list[str], link_select: str | None) -> list[str]:
    """What is wrong with a source's rules for its kind (empty when nothing is)."""
    problems: list[str] = []
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
