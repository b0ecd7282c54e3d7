"""Form fields <-> one entry of a sources or SOP file: what the browser's forms send, in the file's form.

A form is flat text: list fields are one item a line, `options` are fields of their own, `query` is
YAML or JSON text, a watch is a numbered group of fields (watch-1-source, watch-1-sections …). The
entry is then validated by the same code as a file sync (tracker.declare.manage), so a form shows
the sync's messages. Empty fields are left out, as a file would leave them out. Values are passed
as the text typed: the sync's validation converts "2.5" to a number and says what is wrong with
"soon", exactly as it would for a file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from tracker.declare.sources import SourceOptions

SOURCE_LISTS = ("select", "remove", "ignore", "tags")
SOURCE_TEXTS = ("id", "name", "kind", "schedule", "link_select", "render", "wait_for", "since", "flapping",
                "flapping_window", "queue")
OPTION_TEXTS = ("download_delay", "concurrency", "timeout", "obey_robots", "offhost_redirects")
WATCH_LISTS = ("sections", "keywords", "agencies", "types")
SOP_TEXTS = ("id", "title", "owner", "team", "url", "review_days", "alert")
TEAM_LISTS = ("members", "notify")
MAX_WATCHES = 50
MAX_QUERY_CHARS = 20_000


class _NoAliases(yaml.SafeLoader):
    """YAML without anchors and aliases: a query typed in a form has no use for them (nor for their blow-ups)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("anchors and aliases (*name) are not allowed in a query")
        return super().compose_node(parent, index)


def lines(text: str | None) -> list[str]:
    """A textarea's items: one a line, blank lines and surrounding spaces dropped."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _text(form: Mapping[str, Any], key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def parse_query(text: str) -> tuple[Any, str | None]:
    """A `query:` typed as JSON or YAML: (the value, None), or (None, the problem)."""
    if len(text) > MAX_QUERY_CHARS:
        return None, f"query: at most {MAX_QUERY_CHARS:,} characters"
    try:
        return json.loads(text), None
    except ValueError:
        pass
    try:
        return yaml.load(text, Loader=_NoAliases), None  # noqa: S506 (a SafeLoader without aliases)
    except yaml.YAMLError as exc:
        return None, f"query: not valid YAML or JSON: {getattr(exc, 'problem', None) or exc}"


def _headers(text: str) -> tuple[dict[str, str], list[str]]:
    headers, problems = {}, []
    for line in lines(text):
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            problems.append(f"options.headers: {line[:80]!r} is not `Name: value`")
            continue
        headers[name.strip()] = value.strip()
    return headers, problems


def source_entry(form: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The sources-file entry a source form describes, and the problems of fields that are not even text of
    the right shape (a query that does not parse, a header line without a colon)."""
    entry: dict[str, Any] = {}
    problems: list[str] = []
    for key in SOURCE_TEXTS:
        if value := _text(form, key):
            entry[key] = value
    urls = lines(form.get("url") if isinstance(form.get("url"), str) else "")
    if len(urls) == 1:
        entry["url"] = urls[0]
    elif urls:
        entry["urls"] = urls
    for key in SOURCE_LISTS:
        if items := lines(form.get(key) if isinstance(form.get(key), str) else ""):
            entry[key] = items
    if query_text := _text(form, "query"):
        entry["query"], problem = parse_query(query_text)
        if problem:
            problems.append(problem)
            entry.pop("query")
    options: dict[str, Any] = {k: v for k in OPTION_TEXTS if (v := _text(form, f"options.{k}"))}
    headers, header_problems = _headers(str(form.get("options.headers") or ""))
    problems += header_problems
    if headers:
        options["headers"] = headers
    if options:
        entry["options"] = options
    return entry, problems


def source_form(entry: Mapping[str, Any]) -> dict[str, str]:
    """The form fields of a sources-file entry (source_to_spec_dict's form): the inverse of source_entry."""
    form = {k: str(entry[k]) for k in SOURCE_TEXTS if entry.get(k) is not None}
    form["url"] = "\n".join(entry.get("urls") or ([entry["url"]] if entry.get("url") else []))
    for key in SOURCE_LISTS:
        items = entry.get(key) or []
        form[key] = "\n".join(str(x) for x in ([items] if isinstance(items, str) else items))
    if entry.get("query"):
        form["query"] = yaml.safe_dump(entry["query"], sort_keys=False, allow_unicode=True).strip()
    options = entry.get("options") or {}
    for key in OPTION_TEXTS:
        if options.get(key) is not None:
            value = options[key]
            form[f"options.{key}"] = str(value).lower() if isinstance(value, bool) else str(value)
    form["options.headers"] = "\n".join(f"{k}: {v}" for k, v in (options.get("headers") or {}).items())
    return form


def watch_entries(form: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The watches of an SOP form, in order: groups watch-N-… with a source (a group left blank is dropped)."""
    numbers = sorted({int(k.split("-")[1]) for k in form if k.startswith("watch-") and k.split("-")[1].isdigit()})
    out = []
    for n in numbers[:MAX_WATCHES]:
        prefix = f"watch-{n}-"
        source = _text(form, prefix + "source")
        items = {k: lines(str(form.get(prefix + k) or "")) for k in WATCH_LISTS}
        if not source and not any(items.values()):
            continue
        watch: dict[str, Any] = {"source": source, **{k: v for k, v in items.items() if v}}
        if alert := _text(form, prefix + "alert"):
            watch["alert"] = alert
        if form.get(prefix + "include_cosmetic"):
            watch["include_cosmetic"] = True
        out.append(watch)
    return out


def sop_entry(form: Mapping[str, Any]) -> dict[str, Any]:
    """The SOP-file entry an SOP form describes (its watches included)."""
    entry: dict[str, Any] = {k: v for k in SOP_TEXTS if (v := _text(form, k))}
    entry["watches"] = watch_entries(form)
    return entry


def sop_form(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The form fields of an SOP-file entry; watches as a list of field dicts."""
    form: dict[str, Any] = {k: str(entry[k]) for k in SOP_TEXTS if entry.get(k) is not None}
    form["watches"] = [{"source": w.get("source", ""), "alert": w.get("alert") or "",
                        "include_cosmetic": bool(w.get("include_cosmetic")),
                        **{k: "\n".join(w.get(k) or []) for k in WATCH_LISTS}} for w in entry.get("watches") or []]
    return form


def team_entry(form: Mapping[str, Any]) -> dict[str, Any]:
    """The SOP-file entry of a team form."""
    entry: dict[str, Any] = {k: v for k in ("id", "name") if (v := _text(form, k))}
    for key in TEAM_LISTS:
        if items := lines(str(form.get(key) or "")):
            entry[key] = items
    return entry


def option_names() -> tuple[str, ...]:
    """The per-source overrides a form offers (every SourceOptions field)."""
    return tuple(SourceOptions.model_fields)
