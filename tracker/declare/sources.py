"""The source registry: a YAML file is the source of truth, synced into Source rows.

What a kind accepts (its name, `query:` schema, select/remove/link_select) is checked against the
registry of kinds the caller hands over (spiders.KINDS, as `load_sources_file(kinds=...)` or the
pydantic context {"kinds": ...}); a SourceSpec built in code without that context is checked for
everything else only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from sqlmodel import Session, select

from tracker.audit.trail import SYSTEM, append_event
from tracker.check.kinds import Kinds, rule_problems
from tracker.check.shapes import validate_query
from tracker.check.volatile import patterns_problem
from tracker.declare.schedules import parse_schedule
from tracker.declare.yamlfile import RegistryError, load_yaml, validate_entries
from tracker.store.db import utcnow
from tracker.store.models import CheckState, Source

QUEUE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,119}$")
# Whitespace (any Unicode space, CR/LF, tab) and control characters (C0, DEL, C1) have no place in a
# URL: an HTTP client would send a mangled request line or a different URL than the one declared.
_URL_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Fields whose change means the stored versions were extracted under other rules.
RULE_FIELDS = ("select", "remove")


class SourceOptions(BaseModel):
    """Per-source politeness and fetching overrides."""

    model_config = ConfigDict(extra="forbid")

    download_delay: float | None = Field(default=None, ge=0)
    concurrency: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    obey_robots: bool | None = None
    # A redirect to another host: `record` (the default) follows it and flags the host change on the
    # source; `refuse` records a failed check instead, so another site's page never becomes the policy.
    offhost_redirects: Literal["record", "refuse"] | None = None


class SourceSpec(BaseModel):
    """One source as a sources file declares it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    url: str
    kind: str = "html"
    select: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    schedule: str | None = None
    tags: list[str] = Field(default_factory=list)
    options: SourceOptions = Field(default_factory=lambda: SourceOptions())
    enabled: bool = True
    # kind pdf: the CSS selector of the link to the current PDF on the page at `url`.
    link_select: str | None = None
    # A document of several pages, fetched together and combined in order (instead of `url`,
    # which then holds the first page).
    urls: list[str] = Field(default_factory=list)
    # kind html: `browser` loads the page in headless Chromium (tracker.check.render), optionally
    # waiting for the CSS selector `wait_for` to appear before the page is extracted.
    render: str | None = None
    wait_for: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _url_or_urls(cls, data: Any) -> Any:
        if isinstance(data, dict) and "urls" in data:
            if "url" in data:
                raise ValueError("give `url` (one page) or `urls` (several pages), not both")
            urls = data["urls"]
            if not isinstance(urls, list) or len(urls) < 2:
                raise ValueError("urls: must list two or more pages (use `url` for one)")
            data = {**data, "url": urls[0]}
        return data
    # What an ecfr or federal_register source asks for (its schema: the kind's Extraction.query).
    query: dict[str, Any] = Field(default_factory=dict)
    # A stream's first check records what it lists as the baseline, unless it backfills from here.
    since: date | None = None
    # TRACKER_EXECUTOR=celery: the worker queue it must be fetched from (`tracker worker --queues eu`).
    queue: str | None = None

    @field_validator("queue")
    @classmethod
    def _queue(cls, v: str | None) -> str | None:
        if v is not None and not QUEUE.match(v):
            raise ValueError("must be a worker queue name: lowercase letters, digits, '-' or '_', at most 40 "
                             "(e.g. eu); workers fetch it with `tracker worker --queues NAME`")
        return v

    # Regular expressions over block text taken out of comparison (tracker.check.volatile).
    ignore: list[str] = Field(default_factory=list)
    # quiet: an A -> B -> A within flapping_window days opens no impacts (tracker.check.reverts).
    flapping: Literal["report", "quiet"] | None = None
    flapping_window: float | None = Field(default=None, gt=0, le=366)

    @field_validator("ignore", mode="before")
    @classmethod
    def _ignore(cls, v: Any) -> Any:
        v = [v] if isinstance(v, str) else v
        if isinstance(v, list) and all(isinstance(p, str) for p in v):
            if (why := patterns_problem(v)) is not None:
                raise ValueError(why)
        return v

    @model_validator(mode="after")
    def _kind_query(self, info: ValidationInfo) -> SourceSpec:
        kinds = _kinds(info)
        if kinds is not None and self.kind in kinds:
            self.query = validate_query(kinds[self.kind].query, self.query)
        return self

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SLUG.match(v):
            raise ValueError("must be a lowercase slug: letters, digits, '.', '_' or '-' (e.g. tiktok-privacy)")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)

    @field_validator("urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        return [_http_url(u) for u in v]

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str, info: ValidationInfo) -> str:
        kinds = _kinds(info)
        if kinds is not None and v not in kinds:
            raise ValueError(f"unknown kind {v!r}; known kinds: {', '.join(kinds)}")
        return v

    @field_validator("select", "remove", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _rules_fit_kind(self, info: ValidationInfo) -> SourceSpec:
        kinds = _kinds(info)
        kind = kinds.get(self.kind) if kinds is not None else None
        problems = [] if kinds is None or kind is None else rule_problems(
            kind, select=self.select, remove=self.remove, link_select=self.link_select, kinds=kinds,
            render=self.render, wait_for=self.wait_for)
        if self.urls and self.link_select is not None:
            problems.append("link_select: cannot be combined with urls (one index page, one PDF)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        if v is not None:
            parse_schedule(v)
        return v


def _kinds(info: ValidationInfo) -> Kinds | None:
    """The registry of kinds the validation was given (None when built in code without one)."""
    context = info.context
    return context.get("kinds") if isinstance(context, dict) else None


def _http_url(v: str) -> str:
    if (bad := _URL_UNSAFE.search(v)) is not None:
        raise ValueError(f"contains {_describe_char(bad.group())} at position {bad.start() + 1}: a URL may not "
                         "hold spaces, line breaks or control characters (percent-encode a space as %20)")
    u = urlparse(v)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ValueError(f"must be an absolute http(s) URL, got {v!r}")
    return v


def _describe_char(char: str) -> str:
    """A character named safely for an error message (never the raw control character)."""
    names = {" ": "a space", "\n": "a line feed (LF)", "\r": "a carriage return (CR)", "\t": "a tab"}
    return names.get(char, f"the character U+{ord(char):04X}")


@dataclass
class SyncReport:
    """What a sync did, source by source, with before/after values for the audit trail."""

    added: list[str] = field(default_factory=list)
    updated: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)
    disabled: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # In the file, but managed in the browser (managed_by `ui`): not touched.
    skipped_ui: list[str] = field(default_factory=list)

    def summary(self) -> str:
        line = (f"{len(self.added)} added, {len(self.updated)} updated, "
                f"{len(self.disabled)} disabled, {len(self.unchanged)} unchanged")
        return line + (f", {len(self.skipped_ui)} managed in the UI" if self.skipped_ui else "")


def load_sources_file(path: str | Path, *, kinds: Kinds) -> list[SourceSpec]:
    """Read and validate a sources file against the kinds (spiders.KINDS); a RegistryError lists every
    problem with its line or id."""
    data = load_yaml(path)
    problems: list[str] = []
    unknown = sorted(k for k in data if k not in ("sources", "__line__"))
    if unknown:
        problems.append(f"line 1: unknown top-level key(s) {', '.join(unknown)} (expected `sources:`)")
    if "sources" not in data:
        problems.append("line 1: no `sources:` list in the file")
    specs = validate_entries(data, "sources", SourceSpec, problems, label="source", context={"kinds": kinds})
    seen: dict[str, int] = {}
    for line, spec in specs:
        assert isinstance(spec, SourceSpec)
        if spec.id in seen:
            problems.append(f"line {line} (source {spec.id}): duplicate id, first declared on line {seen[spec.id]}")
        seen.setdefault(spec.id, line)
    if problems:
        raise RegistryError(str(path), problems)
    return [s for _, s in specs if isinstance(s, SourceSpec)]


def _fields(spec: SourceSpec) -> dict[str, Any]:
    return {"name": spec.name, "url": spec.url, "kind": spec.kind, "select": list(spec.select),
            "remove": list(spec.remove), "schedule": spec.schedule, "tags": list(spec.tags),
            "options": _options(spec), "enabled": spec.enabled}


def _options(spec: SourceSpec) -> dict[str, Any]:
    """The Source row's options: the declared overrides, link_select, urls, render, wait_for, query and since
    when given."""
    options = spec.options.model_dump(exclude_none=True, exclude_defaults=True)
    if spec.link_select is not None:
        options["link_select"] = spec.link_select
    if spec.urls:
        options["urls"] = list(spec.urls)
    options |= {k: v for k, v in (("render", spec.render), ("wait_for", spec.wait_for)) if v is not None}
    if spec.query:
        options["query"] = spec.query
    if spec.since:
        options["since"] = spec.since.isoformat()
    if spec.ignore:
        options["ignore"] = list(spec.ignore)
    if spec.flapping is not None:
        options["flapping"] = spec.flapping
    if spec.flapping_window is not None:
        options["flapping_window"] = spec.flapping_window
    if spec.queue:
        options["queue"] = spec.queue
    return options


def sync_sources(*, session: Session, specs: list[SourceSpec], actor: str = SYSTEM) -> SyncReport:
    """Make the file-managed Source rows match the declared specs; file-managed sources missing from the
    file are disabled. Rows managed in the browser (managed_by `ui`) are left alone and reported. Audited."""
    report = SyncReport()
    existing = {s.id: s for s in session.exec(select(Source)).all()}
    now = utcnow()
    for spec in specs:
        row = existing.pop(spec.id, None)
        if row is None:
            add_source(session=session, spec=spec, actor=actor, managed_by="file", now=now)
            report.added.append(spec.id)
            continue
        if row.managed_by != "file":
            report.skipped_ui.append(spec.id)
            continue
        changes = apply_source_spec(session=session, row=row, spec=spec, actor=actor, now=now)
        if changes:
            report.updated[spec.id] = changes
        else:
            report.unchanged.append(spec.id)
    for row in existing.values():
        if row.enabled and row.managed_by == "file":
            row.enabled = False
            row.updated_at = now
            report.disabled.append(row.id)
            append_event(session=session, actor=actor, action="source.disabled", entity_type="source",
                         entity_id=row.id, before={"enabled": True}, after={"enabled": False})
    session.flush()
    return report


def add_source(*, session: Session, spec: SourceSpec, actor: str, managed_by: str,
               now: datetime | None = None) -> Source:
    """Add the Source row a spec declares, audited as source.added."""
    now = now or utcnow()
    wanted = _fields(spec)
    row = Source(id=spec.id, created_at=now, updated_at=now, managed_by=managed_by, **wanted)
    session.add(row)
    append_event(session=session, actor=actor, action="source.added", entity_type="source",
                 entity_id=spec.id, after={"id": spec.id, **wanted})
    return row


def apply_source_spec(*, session: Session, row: Source, spec: SourceSpec, actor: str,
                      now: datetime | None = None) -> dict[str, tuple[Any, Any]]:
    """Make one Source row match its spec; returns the changes (field: (before, after)), audited as
    source.updated. New URLs or rules drop the stored validators, so the next check fetches in full."""
    wanted = _fields(spec)
    changes = {k: (getattr(row, k), v) for k, v in wanted.items() if getattr(row, k) != v}
    if not changes:
        return changes
    for k, (_, v) in changes.items():
        setattr(row, k, v)
    row.updated_at = now or utcnow()
    if "url" in changes:
        row.final_url = None
    before, after = changes.get("options", ({}, {}))
    link_moved = any((before or {}).get(k) != (after or {}).get(k) for k in ("link_select", "urls", "ignore",
                                                                              "render"))
    if link_moved or any(k in changes for k in (*RULE_FIELDS, "url", "kind")):
        # Validators belong to the old URL or rules: fetch the page in full next time.
        state = session.get(CheckState, spec.id)
        if state is not None:
            state.etag = state.last_modified = None
    session.add(row)
    append_event(session=session, actor=actor, action="source.updated", entity_type="source",
                 entity_id=spec.id, before={k: b for k, (b, _) in changes.items()},
                 after={k: a for k, (_, a) in changes.items()})
    return changes
