"""eCFR versioner XML (DIV5 part > DIV6 subpart > DIV7 subject group > DIV8 section) as blocks.

Each block's heading path follows the CFR hierarchy ("PART 1—RULES ... > Subpart A—General
Provisions > § 1.1 Addresses ..."), so `sections: ["*§ 1.1*"]` watches one section and the
section-aware diff names the sections an edition amended. The XML comes from a server: it is
parsed with lxml without network access, entities or huge-tree support.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import lxml.etree

from tracker.check.blocks import Block, ExtractionError, normalise_text

# The divisions whose HEAD opens a level of the path (DIV1 title ... DIV9 appendix).
_LEVELS = {f"DIV{n}" for n in range(1, 10)}
_TEXT_TAGS = {"P", "FP", "NOTE", "EXTRACT", "GPOTABLE", "AUTH", "SOURCE", "CITA", "EDNOTE", "FTNT", "PSPACE"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_BLOCKS = 50_000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class MalformedEcfr(ExtractionError):
    """The eCFR answer is not the XML or JSON the versioner API documents."""


def _text(el: Any) -> str:
    return normalise_text(_CONTROL.sub("", "".join(el.itertext())))


def extract_part(body: bytes) -> list[Block]:
    """The blocks of one CFR part (or section) in eCFR versioner XML, with CFR heading paths."""
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = lxml.etree.fromstring(body, parser)
    except lxml.etree.XMLSyntaxError as exc:
        raise MalformedEcfr(f"malformed eCFR XML: {exc}") from None
    blocks: list[Block] = []
    _walk(root, (), blocks)
    if not blocks:
        raise MalformedEcfr("the eCFR XML holds no CFR text (no DIV with a HEAD)")
    return blocks


def _walk(el: Any, path: tuple[str, ...], out: list[Block]) -> None:
    if len(out) >= MAX_BLOCKS:
        raise MalformedEcfr(f"the eCFR XML has more than {MAX_BLOCKS} blocks; watch one part, not a title")
    if el.tag in _LEVELS:
        head = el.find("HEAD")
        if head is not None and (title := _text(head)):
            path = (*path, title)
            out.append(Block("heading", title, path))
    for child in el:
        if not isinstance(child.tag, str) or child.tag == "HEAD":
            continue
        if child.tag in _LEVELS:
            _walk(child, path, out)
        elif child.tag in _TEXT_TAGS or child.tag.startswith("P"):
            if text := _text(child):
                out.append(Block("paragraph", text, path))


@dataclass(frozen=True)
class Amendment:
    """What versions/title-N.json says about a part: the newest edition and amendment dates."""

    issue_date: str
    amendment_date: str


def latest_amendment(body: bytes) -> Amendment | None:
    """The newest content version in a versions/title-N.json answer; None when it lists none."""
    try:
        data = json.loads(body)
        versions = data["content_versions"]
        if not isinstance(versions, list):
            raise TypeError("content_versions is not a list")
        dates = [(str(v.get("issue_date") or v["date"]), str(v.get("amendment_date") or v["date"]))
                 for v in versions]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MalformedEcfr(f"malformed eCFR versions JSON ({exc.__class__.__name__}: {exc})") from None
    if any(not _DATE.match(d) for pair in dates for d in pair):
        raise MalformedEcfr("malformed eCFR versions JSON: a date is not YYYY-MM-DD")
    if not dates:
        return None
    issue = max(d for d, _ in dates)
    return Amendment(issue, max(a for d, a in dates if d == issue))
