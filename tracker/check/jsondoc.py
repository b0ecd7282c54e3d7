"""JSON document extraction: the values a JMESPath expression selects, as blocks with key paths.

Each value becomes a block whose heading path is where it sits (`policies > minors > age_limit`),
so the section-aware diff, SOP mapping and digest read a JSON answer as they read a page. Objects
are walked in sorted key order and values written canonically, so key order and formatting never
make a change. A list of objects names each item by its title, name or id when it has one (then
inserting an item moves no other item's path), else by its position (#1, #2...). The document is
hostile: parsing is bounded by the page-size limit, nesting and the number of values by this module.
"""

from __future__ import annotations

import json
from typing import Any

from tracker.check.blocks import (
    Block,
    Extracted,
    ExtractionError,
    NoText,
    NotText,
    Rules,
    SelectorNoMatch,
    normalise_text,
)
from tracker.check.decode import decode

MAX_DEPTH = 64
MAX_VALUES = 100_000
# Keys that name an item of a list of objects (first one present wins).
_ITEM_NAMES = ("title", "name", "heading", "id", "key")


def validate_jmespath(expression: str) -> str | None:
    """None when the JMESPath expression compiles, else why not."""
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(expression)
    except JMESPathError as exc:
        return " ".join(str(exc).split())
    return None


def extract_json(body: bytes, rules: Rules, content_type: str | None = None) -> Extracted:
    """The selected values of a JSON document as blocks (every value when rules.select is empty)."""
    text, encoding = decode(body, content_type)
    try:
        data = json.loads(text)
    except RecursionError:
        raise ExtractionError(f"the JSON nests deeper than Python can parse (over {MAX_DEPTH} levels is "
                              "refused): a broken or hostile document") from None
    except ValueError as exc:
        raise NotText(f"the response is not JSON ({exc})"[:300]) from None
    blocks: list[Block] = []
    selections = [_select(data, expr) for expr in rules.select] if rules.select else [(data, ())]
    for value, prefix in selections:
        if value is None or value == [] or value == {}:
            continue
        _walk(value, prefix, blocks)
    if not blocks:
        if rules.select and all(v is None or v == [] or v == {} for v, _ in selections):
            raise SelectorNoMatch(
                "select expression" + ("s " if len(rules.select) > 1 else " ")
                + ", ".join(repr(s) for s in rules.select) + " selected nothing in the JSON document")
        raise NoText("the JSON document holds no values" if not rules.select else
                     "the selected part of the JSON document holds no text")
    return Extracted(blocks=blocks, encoding=encoding)


def _select(data: Any, expression: str) -> tuple[Any, tuple[str, ...]]:
    """The value an expression selects, and its key path when the expression is a plain one (a.b[0].c)."""
    import jmespath

    compiled = jmespath.compile(expression)
    return compiled.search(data), _key_path(compiled.parsed) or ()


def _key_path(node: dict[str, Any]) -> tuple[str, ...] | None:
    """The keys a plain field path names (None for projections, filters, functions...)."""
    kind = node.get("type")
    if kind == "field":
        return (str(node["value"]),)
    if kind == "subexpression":
        parts: list[str] = []
        for child in node["children"]:
            sub = _key_path(child)
            if sub is None:
                return None
            parts.extend(sub)
        return tuple(parts)
    if kind == "index_expression" and len(node["children"]) == 2 and node["children"][1].get("type") == "index":
        base = _key_path(node["children"][0])
        return None if base is None else (*base, f"#{int(node['children'][1]['value']) + 1}")
    return None


def _walk(value: Any, path: tuple[str, ...], blocks: list[Block], depth: int = 0) -> None:
    """Append value's leaves as blocks under path (objects in sorted key order)."""
    if depth > MAX_DEPTH:
        raise ExtractionError(f"the JSON nests more than {MAX_DEPTH} levels deep "
                              "(tracker.check.jsondoc.MAX_DEPTH): a broken or hostile document")
    if len(blocks) > MAX_VALUES:
        raise ExtractionError(f"the JSON selection holds more than {MAX_VALUES:,} values "
                              "(tracker.check.jsondoc.MAX_VALUES): narrow `select`")
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            _walk(value[key], (*path, _label(str(key))), blocks, depth + 1)
    elif isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value, 1):
                _walk(item, (*path, _item_name(item, i)), blocks, depth + 1)
        else:
            for item in value:
                if isinstance(item, dict | list):
                    _walk(item, path, blocks, depth + 1)
                elif (text := _scalar(item)):
                    blocks.append(Block("list_item", text, path))
    elif (text := _scalar(value)):
        blocks.append(Block("paragraph", text, path))


def _label(key: str) -> str:
    return normalise_text(key)[:200] or "(empty key)"


def _item_name(item: dict[str, Any], position: int) -> str:
    """How a list item is named in paths: its title, name or id, else its position."""
    for key in _ITEM_NAMES:
        v = item.get(key)
        if isinstance(v, str | int) and not isinstance(v, bool) and str(v).strip():
            return _label(str(v))
    return f"#{position}"


def _scalar(value: Any) -> str:
    """A leaf value's text: strings normalised, other values as JSON writes them."""
    if isinstance(value, str):
        return normalise_text(value)
    return json.dumps(value)

