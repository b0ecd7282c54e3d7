"""YAML registry files read with line numbers, so that every error can say where it is.

The files are hostile input (anyone who can edit them can try to take the service down), so the
reading is bounded: nesting depth, the number of nodes the document expands to once anchors and
aliases are followed (a "billion laughs" file is a few lines that expand to millions of nodes),
recursive aliases and the digits of an integer are all refused with the line they are on, before
anything is built from the document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import BaseModel, ValidationError
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, SequenceNode

# Far beyond any real sources or SOPs file (300 sources are about 10,000 nodes), far below harm.
MAX_DEPTH = 64
MAX_NODES = 200_000
MAX_INT_DIGITS = 30


class RegistryError(Exception):
    """A registry file is invalid; .problems lists every error, each with its place."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s)\n" + "\n".join(f"  {p}" for p in problems))


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that records each mapping's line as the key '__line__', and duplicate keys,
    and that bounds nesting depth while composing (the composer recurses once per level)."""

    duplicates: list[str]
    depth: int = 0
    aliases: list[tuple[str, Node, yaml.Mark]]

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            node = super().compose_node(parent, index)
            if node is not None:
                self.aliases.append((str(event.anchor), node, event.start_mark))
            return node
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                    self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(ch.isalnum() for ch in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise ConstructorError(None, None, f"an integer of {digits} digits (at most {MAX_INT_DIGITS})",
                                   node.start_mark)
        return super().construct_yaml_int(node)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = getattr(key_node, "value", None)
        line = key_node.start_mark.line + 1
        if isinstance(key, str) and key in seen:
            # YAML would silently keep the last value: say so instead.
            loader.duplicates.append(f"line {line}: duplicate key `{key}` (first on line {seen[key]})")
        seen.setdefault(key, line)
    mapping = cast(dict[str, Any], yaml.SafeLoader.construct_mapping(loader, node, deep=True))
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:int", _LineLoader.construct_yaml_int)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _expanded_sizes(root: Node) -> dict[int, int]:
    """How many nodes each node stands for once aliases are followed (shared nodes counted once per
    use), computed once per distinct node; raises ValueError on a recursive alias."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise ValueError(node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes


def _check_expansion(loader: _LineLoader, root: Node) -> str | None:
    """A problem when the document refers to itself or expands past MAX_NODES nodes, else None."""
    try:
        sizes = _expanded_sizes(root)
    except ValueError as exc:
        mark = exc.args[0]
        return f"line {mark.line + 1}: a recursive alias (an anchor used inside itself) is not allowed"
    total = sizes[id(root)]
    if total <= MAX_NODES:
        return None
    if loader.aliases:
        name, _, mark = max(loader.aliases, key=lambda a: sizes.get(id(a[1]), 0))
        return (f"line {mark.line + 1}: the alias `*{name}` makes the file expand to "
                f"{total:,} values (at most {MAX_NODES:,}): anchors and aliases must not multiply the document")
    return f"line 1: the file holds {total:,} values (at most {MAX_NODES:,}): split it"



def load_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a registry file; syntax errors become a RegistryError naming the line."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise RegistryError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RegistryError(str(path), [f"line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}): "
                                        "save the file as UTF-8"]) from None
    loader = _LineLoader(text)
    loader.duplicates, loader.aliases = [], []
    try:
        node = loader.get_single_node()
        problem = _check_expansion(loader, node) if node is not None else None
        if problem:
            raise RegistryError(str(path), [problem])
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise RegistryError(str(path), [f"{where}not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    finally:
        loader.dispose()
    if loader.duplicates:
        raise RegistryError(str(path), loader.duplicates)
    if data is None:
        data = {"__line__": 1}
    if not isinstance(data, dict):
        raise RegistryError(str(path), ["line 1: the file must be a mapping (e.g. `sources:` at the top)"])
    return data


def strip_lines(value: Any) -> Any:
    """The parsed value without the '__line__' bookkeeping."""
    if isinstance(value, dict):
        return {k: strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [strip_lines(v) for v in value]
    return value


def validate_entries(
    data: dict[str, Any], key: str, model: type[BaseModel], problems: list[str], *, label: str,
    context: dict[str, Any] | None = None,
) -> list[tuple[int, BaseModel]]:
    """Validate each entry under `key` with a pydantic model; errors name the line and the id."""
    entries = data.get(key)
    if entries is None:
        return []
    if not isinstance(entries, list):
        problems.append(f"line {data.get('__line__', 1)}: `{key}` must be a list")
        return []
    out: list[tuple[int, BaseModel]] = []
    for n, raw in enumerate(entries, 1):
        if not isinstance(raw, dict):
            problems.append(f"{key}[{n}]: each {label} must be a mapping")
            continue
        line = raw.get("__line__", "?")
        where = f"line {line} ({label} {raw.get('id', f'#{n}')!s})"
        valid = validate_entry(raw, model, problems, where=where, context=context)
        if valid is not None:
            out.append((int(line) if isinstance(line, int) else 0, valid))
    return out


def validate_entry(raw: dict[str, Any], model: type[BaseModel], problems: list[str], *, where: str,
                   context: dict[str, Any] | None = None) -> BaseModel | None:
    """One entry validated with its model, or None with its errors added to problems, each "{where}: …"
    (a file sync and an edit in the browser give the same messages after their `where`)."""
    try:
        return model.model_validate(strip_lines(raw), context=context)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "entry"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown key (known keys: {', '.join(_known_keys(model, err['loc'][:-1]))})"
            # A whole-entry check (several fields together) names its fields in its message.
            problems.append(f"{where}: {msg}" if not err["loc"] else f"{where}: {loc}: {msg}")
        return None


def _known_keys(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The field names allowed at a place in a model (for "unknown key" errors)."""
    for part in path:
        field = model.model_fields.get(str(part))
        sub = getattr(field.annotation, "model_fields", None) if field is not None else None
        if sub is None or field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    return list(model.model_fields)
