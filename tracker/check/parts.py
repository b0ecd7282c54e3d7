"""Documents of several pages (`urls:`): the pages fetched for one check, kept together as one body.

The spider fetches every page of such a source and hands the pipeline one body holding them all, in
order, under PARTS_TYPE; the snapshot keeps that body, so a re-extraction (rules changed) reads the
same pages again. Each page is extracted with the source's kind and rules, and the blocks are
combined in order into one version. A page that fails to extract fails the whole check, naming it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tracker.check.blocks import Extracted, ExtractionError, NotText, Rules

PARTS_TYPE = "application/vnd.policy-tracker.parts+json"


@dataclass(frozen=True)
class Part:
    """One page of a document of several pages, as fetched."""

    url: str
    content_type: str | None
    body: bytes


def encode_parts(parts: Sequence[Part]) -> bytes:
    """The pages as one body (JSON, bodies in base64), in order."""
    return json.dumps({"parts": [{"url": p.url, "content_type": p.content_type,
                                  "body": base64.b64encode(p.body).decode("ascii")} for p in parts]}).encode()


def decode_parts(body: bytes) -> list[Part]:
    """The pages of a body encode_parts made."""
    try:
        data = json.loads(body)
        return [Part(str(p["url"]), p.get("content_type"), base64.b64decode(p["body"])) for p in data["parts"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise NotText(f"the stored pages of a document of several pages are unreadable ({exc})") from None


def extract_parts(body: bytes, rules: Rules, extract: Callable[[bytes, Rules, str | None], Extracted]) -> Extracted:
    """Every page extracted with the same rules, blocks combined in order; one failing page fails all."""
    blocks = []
    encodings = []
    for n, part in enumerate(decode_parts(body), 1):
        try:
            extracted = extract(part.body, rules, part.content_type)
        except ExtractionError as exc:
            raise type(exc)(f"page {n} ({part.url}): {exc}") from None
        blocks.extend(extracted.blocks)
        encodings.append(extracted.encoding)
    if not blocks:
        raise ExtractionError("the document of several pages has no pages")
    return Extracted(blocks=blocks, encoding=",".join(dict.fromkeys(encodings)))
