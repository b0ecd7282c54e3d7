"""YAML registry files read with line numbers, so that every error can say where it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import BaseModel, ValidationError


class RegistryError(Exception):
    """A registry file is invalid; .problems lists every error, each with its place."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s)\n" + "\n".join(f"  {p}" for p in problems))


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that records each mapping's line as the key '__line__', and duplicate keys."""

    duplicates: list[str]


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


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a registry file; syntax errors become a RegistryError naming the line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    loader = _LineLoader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
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
    data: dict[str, Any], key: str, model: type[BaseModel], problems: list[str], *, label: str
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
        try:
            out.append((int(line) if isinstance(line, int) else 0, model.model_validate(strip_lines(raw))))
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(x) for x in err["loc"]) or "entry"
                msg = err["msg"].removeprefix("Value error, ")
                if err["type"] == "extra_forbidden":
                    msg = f"unknown key (known keys: {', '.join(_known_keys(model, err['loc'][:-1]))})"
                # A whole-entry check (several fields together) names its fields in its message.
                problems.append(f"{where}: {msg}" if not err["loc"] else f"{where}: {loc}: {msg}")
    return out


def _known_keys(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The field names allowed at a place in a model (for "unknown key" errors)."""
    for part in path:
        field = model.model_fields.get(str(part))
        sub = getattr(field.annotation, "model_fields", None) if field is not None else None
        if sub is None or field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    return list(model.model_fields)
