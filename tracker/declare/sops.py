"""The SOP registry: teams and SOPs declared in a YAML file, validated, synced into rows, audited.

Removed teams and SOPs are disabled, never deleted: their impacts and audit history stay.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlmodel import Session, select

from tracker.audit.trail import SYSTEM, append_event
from tracker.declare.yamlfile import RegistryError, load_yaml, strip_lines
from tracker.impacts.mapping import glob_problem, keyword_problem
from tracker.store.db import utcnow
from tracker.store.models import Sop, Source, Team

SOP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")
TEAM_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,119}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(v: str) -> str:
    v = v.strip()
    if not EMAIL.match(v):
        raise ValueError(f"must be an email address, got {v!r}")
    return v


class TeamSpec(BaseModel):
    """One team as an SOP file declares it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    members: list[str] = Field(default_factory=list)
    # Where the team's messages go: Apprise URLs or `mailto:`, secrets as `${TRACKER_…}` (tracker.notify).
    notify: list[str] = Field(default_factory=list)
    enabled: bool = True

    @field_validator("notify")
    @classmethod
    def _notify(cls, v: list[str]) -> list[str]:
        from tracker.notify.secrets import template_problem

        for n, url in enumerate(v, 1):
            if (why := template_problem(url)) is not None:
                raise ValueError(f"notify[{n}]: {why}")
        return v

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not TEAM_ID.match(v):
            raise ValueError("must be a lowercase slug: letters, digits, '.', '_' or '-' (e.g. appeals)")
        return v

    @field_validator("members")
    @classmethod
    def _members(cls, v: list[str]) -> list[str]:
        return [_email(m) for m in v]


class WatchSpec(BaseModel):
    """What an SOP watches: a source, optionally narrowed by section globs and keywords."""

    model_config = ConfigDict(extra="forbid")

    source: str
    sections: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    alert: Literal["immediate", "digest"] | None = None
    # Federal Register filters: agency slugs or names, and document types (RULE, PRORULE, NOTICE
    # or "Proposed Rule"); a stream entry must match one of each given (tracker.impacts.mapping).
    agencies: list[str] = Field(default_factory=list)
    types: list[str] = Field(default_factory=list)
    # Cosmetic changes (punctuation, quotes, case, whitespace, link targets) open impacts for this watch too.
    include_cosmetic: bool = False

    def to_json(self) -> dict[str, Any]:
        """The watch as stored on the SOP (filters it does not use are left out)."""
        unused = {k for k in ("agencies", "types", "include_cosmetic") if not getattr(self, k)}
        return self.model_dump(exclude_none=True, exclude=unused)

    @field_validator("sections")
    @classmethod
    def _globs(cls, v: list[str]) -> list[str]:
        for glob in v:
            if (why := glob_problem(glob)) is not None:
                raise ValueError(f"bad section glob {glob!r}: {why}")
        return v

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, v: list[str]) -> list[str]:
        for kw in v:
            if (why := keyword_problem(kw)) is not None:
                raise ValueError(f"bad keyword {kw!r}: {why}")
        return v


class SopSpec(BaseModel):
    """One SOP as an SOP file declares it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    owner: str
    team: str | None = None
    url: str | None = None
    review_days: int | None = Field(None, ge=0, le=3650)
    watches: list[WatchSpec] = Field(default_factory=list)
    # "immediate": every new impact on this SOP is sent to its team's channels at once.
    alert: Literal["immediate", "digest"] | None = None
    enabled: bool = True

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not SOP_ID.match(v):
            raise ValueError("must be letters, digits, '.', '_' or '-' (e.g. SOP-CS-014)")
        return v

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str) -> str:
        return _email(v)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None:
            u = urlparse(v)
            if u.scheme not in ("http", "https") or not u.netloc:
                raise ValueError(f"must be an absolute http(s) URL, got {v!r}")
        return v


@dataclass
class SopFile:
    """A validated SOP file: its teams and SOPs."""

    teams: list[TeamSpec]
    sops: list[SopSpec]


def _line_of(raw: dict[str, Any], loc: tuple[Any, ...]) -> Any:
    """The line of the innermost mapping a pydantic error location points into."""
    line: Any = raw.get("__line__", "?")
    node: Any = raw
    for part in loc:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            break
        if isinstance(node, dict) and "__line__" in node:
            line = node["__line__"]
    return line


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    """A pydantic error location as a reader counts: watches[2].sections (1-based)."""
    out = ""
    for part in loc:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "entry"


def _validate(data: dict[str, Any], key: str, model: type[BaseModel], label: str,
              problems: list[str]) -> list[tuple[dict[str, Any], BaseModel | None]]:
    """Each entry under key with its model (None when invalid); errors name the line and the id."""
    entries = data.get(key)
    if entries is None:
        return []
    if not isinstance(entries, list):
        problems.append(f"line {data.get('__line__', 1)}: `{key}` must be a list")
        return []
    out: list[tuple[dict[str, Any], BaseModel | None]] = []
    for n, raw in enumerate(entries, 1):
        if not isinstance(raw, dict):
            problems.append(f"{key}[{n}]: each {label} must be a mapping (`- id: ...`)")
            continue
        name = f"{label} {raw.get('id', f'#{n}')!s}"
        def where(loc: tuple[Any, ...], raw: dict[str, Any] = raw, name: str = name) -> str:
            return f"line {_line_of(raw, loc)} ({name})"

        out.append((raw, validate_sop_entry(raw, model, problems, where=where)))
    return out


def validate_sop_entry(raw: dict[str, Any], model: type[BaseModel], problems: list[str], *,
                       where: Callable[[tuple[Any, ...]], str]) -> BaseModel | None:
    """One team or SOP entry validated, or None with its errors added to problems as "{where(loc)}: loc: msg"
    (a file sync and an edit in the browser give the same messages after their `where`)."""
    try:
        return model.model_validate(strip_lines(raw))
    except ValidationError as exc:
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{where(tuple(err['loc']))}: {_loc(err['loc'])}: {msg}")
        return None


def unknown_team_problem(team: str, declared: Collection[str]) -> str:
    """What is wrong with an SOP naming a team that does not exist (a file sync and the browser say the same)."""
    return f"unknown team {team!r} (declare it under `teams:`; declared: {', '.join(sorted(declared)) or 'none'})"


def unknown_source_problem(n: int, source: str) -> str:
    """What is wrong with watch n (1-based) naming a source that does not exist."""
    return (f"watches[{n}].source: unknown source {source!r} "
            "(sync it with `tracker sources sync` first, or fix the id)")


def load_sops_file(path: str | Path, *, known_sources: Collection[str] | None = None,
                   known_teams: Collection[str] = ()) -> SopFile:
    """Read and validate an SOP file; a RegistryError lists every problem by line and SOP/team id.

    known_sources: the source ids a watch may name (unknown ones are reported); None skips that check.
    known_teams: teams an SOP may name besides those the file declares (those managed in the browser).
    """
    data = load_yaml(path)
    problems: list[str] = []
    unknown = sorted(k for k in data if k not in ("teams", "sops", "__line__"))
    if unknown:
        problems.append(f"line 1: unknown top-level key(s) {', '.join(unknown)} (expected `teams:` and `sops:`)")
    if "sops" not in data and "teams" not in data:
        problems.append("line 1: no `sops:` (or `teams:`) list in the file")
    teams = _validate(data, "teams", TeamSpec, "team", problems)
    sops = _validate(data, "sops", SopSpec, "SOP", problems)

    # Cross-references are checked on the raw entries, so an entry with other errors is still checked.
    team_lines: dict[str, Any] = {}
    for raw, _ in teams:
        tid, line = raw.get("id"), raw.get("__line__", "?")
        if isinstance(tid, str) and tid in team_lines:
            problems.append(f"line {line} (team {tid}): duplicate id, first declared on line {team_lines[tid]}")
        elif isinstance(tid, str):
            team_lines[tid] = line
    sop_lines: dict[str, Any] = {}
    for raw, _ in sops:
        sid, line = raw.get("id"), raw.get("__line__", "?")
        where = f"line {line} (SOP {sid})"
        if isinstance(sid, str) and sid in sop_lines:
            problems.append(f"{where}: duplicate id, first declared on line {sop_lines[sid]}")
        elif isinstance(sid, str):
            sop_lines[sid] = line
        team = raw.get("team")
        if isinstance(team, str) and team not in team_lines and team not in known_teams:
            problems.append(f"{where}: {unknown_team_problem(team, {*team_lines, *known_teams})}")
        watches = raw.get("watches")
        if known_sources is None or not isinstance(watches, list):
            continue
        for n, watch in enumerate(watches, 1):
            source = watch.get("source") if isinstance(watch, dict) else None
            if isinstance(source, str) and source not in known_sources:
                wline = watch.get("__line__", line) if isinstance(watch, dict) else line
                problems.append(f"line {wline} (SOP {sid}): {unknown_source_problem(n, source)}")
    if problems:
        raise RegistryError(str(path), problems)
    return SopFile(teams=[t for _, t in teams if isinstance(t, TeamSpec)],
                   sops=[s for _, s in sops if isinstance(s, SopSpec)])


@dataclass
class SopSyncReport:
    """What a sync did to teams and SOPs, with before/after values of changed fields."""

    added: list[str] = field(default_factory=list)
    updated: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)
    disabled: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    teams_added: list[str] = field(default_factory=list)
    teams_updated: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)
    teams_disabled: list[str] = field(default_factory=list)
    # In the file, but managed in the browser (managed_by `ui`): not touched.
    skipped_ui: list[str] = field(default_factory=list)
    teams_skipped_ui: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: what happened to SOPs and teams."""
        line = (f"SOPs: {len(self.added)} added, {len(self.updated)} updated, {len(self.disabled)} disabled, "
                f"{len(self.unchanged)} unchanged; teams: {len(self.teams_added)} added, "
                f"{len(self.teams_updated)} updated, {len(self.teams_disabled)} disabled")
        skipped = len(self.skipped_ui) + len(self.teams_skipped_ui)
        return line + (f"; {skipped} managed in the UI" if skipped else "")


def team_fields(spec: TeamSpec) -> dict[str, Any]:
    """The columns of a Team row a spec sets."""
    return {"name": spec.name, "members": list(spec.members), "notify": list(spec.notify),
            "enabled": spec.enabled}


def sop_fields(spec: SopSpec) -> dict[str, Any]:
    """The columns of a Sop row a spec sets."""
    return {"title": spec.title, "owner": spec.owner, "team_id": spec.team, "url": spec.url,
            "review_days": spec.review_days,
            "watches": [w.to_json() for w in spec.watches],
            "alert": spec.alert, "enabled": spec.enabled}


def _diff(row: Any, wanted: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (getattr(row, k), v) for k, v in wanted.items() if getattr(row, k) != v}


def audit_row(session: Session, actor: str, action: str, kind: str, entity_id: str,
           changes: dict[str, tuple[Any, Any]] | None = None, after: dict[str, Any] | None = None) -> None:
    before = {k: b for k, (b, _) in changes.items()} if changes else None
    if changes:
        after = {k: a for k, (_, a) in changes.items()}
    if kind == "team":
        # A channel URL written inline (not as `${TRACKER_…}`) may hold a token: the trail keeps it masked.
        from tracker.notify.secrets import mask_templates

        before, after = mask_templates(before), mask_templates(after)
    append_event(session=session, actor=actor, action=action, entity_type=kind, entity_id=entity_id,
                 before=before, after=after)


def sync_sops(*, session: Session, sop_file: SopFile, actor: str = SYSTEM) -> SopSyncReport:
    """Make the file-managed Team and Sop rows match the file; file-managed ones missing from it are
    disabled. Rows managed in the browser (managed_by `ui`) are left alone and reported. Audited."""
    report = SopSyncReport()
    now = utcnow()
    teams = {t.id: t for t in session.exec(select(Team)).all()}
    for tspec in sop_file.teams:
        trow = teams.pop(tspec.id, None)
        if trow is not None and trow.managed_by != "file":
            report.teams_skipped_ui.append(tspec.id)
            continue
        what, changes = save_team_row(session, trow, tspec, actor)
        if what == "added":
            report.teams_added.append(tspec.id)
        elif what == "updated":
            report.teams_updated[tspec.id] = changes
    for trow in teams.values():
        if trow.enabled and trow.managed_by == "file":
            trow.enabled = False
            session.add(trow)
            report.teams_disabled.append(trow.id)
            audit_row(session, actor, "team.disabled", "team", trow.id, {"enabled": (True, False)})
    session.flush()  # teams exist before SOPs refer to them

    sops = {s.id: s for s in session.exec(select(Sop)).all()}
    for spec in sop_file.sops:
        row = sops.pop(spec.id, None)
        if row is not None and row.managed_by != "file":
            report.skipped_ui.append(spec.id)
            continue
        what, changes = save_sop_row(session, row, spec, actor)
        if what == "added":
            report.added.append(spec.id)
        elif what == "updated":
            report.updated[spec.id] = changes
        else:
            report.unchanged.append(spec.id)
    for row in sops.values():
        if row.enabled and row.managed_by == "file":
            row.enabled = False
            row.updated_at = now
            session.add(row)
            report.disabled.append(row.id)
            audit_row(session, actor, "sop.disabled", "sop", row.id, {"enabled": (True, False)})
    session.flush()
    return report


def save_team_row(session: Session, row: Team | None, spec: TeamSpec, actor: str, *,
                  managed_by: str = "file") -> tuple[str, dict[str, tuple[Any, Any]]]:
    """Add (with managed_by) or update one Team row from its spec, audited; ("added"|"updated"|"unchanged", changes)."""
    wanted = team_fields(spec)
    if row is None:
        session.add(Team(id=spec.id, managed_by=managed_by, **wanted))
        audit_row(session, actor, "team.added", "team", spec.id, after={"id": spec.id, **wanted})
        return "added", {}
    changes = _diff(row, wanted)
    if not changes:
        return "unchanged", {}
    for k, (_, v) in changes.items():
        setattr(row, k, v)
    session.add(row)
    audit_row(session, actor, "team.updated", "team", spec.id, changes)
    return "updated", changes


def save_sop_row(session: Session, row: Sop | None, spec: SopSpec, actor: str, *,
          managed_by: str = "file") -> tuple[str, dict[str, tuple[Any, Any]]]:
    wanted = sop_fields(spec)
    now = utcnow()
    if row is None:
        session.add(Sop(id=spec.id, created_at=now, updated_at=now, managed_by=managed_by, **wanted))
        audit_row(session, actor, "sop.added", "sop", spec.id, after={"id": spec.id, **wanted})
        return "added", {}
    changes = _diff(row, wanted)
    if not changes:
        return "unchanged", {}
    for k, (_, v) in changes.items():
        setattr(row, k, v)
    row.updated_at = now
    session.add(row)
    audit_row(session, actor, "sop.updated", "sop", spec.id, changes)
    return "updated", changes


def save_sop(*, session: Session, spec: SopSpec, actor: str) -> tuple[str, dict[str, tuple[Any, Any]]]:
    """Add or update one SOP (e.g. edited in the web UI), audited; ("added"|"updated"|"unchanged", changes).

    Its team and watched sources must exist; raises RegistryError naming what is unknown.
    """
    problems: list[str] = []
    if spec.team is not None and session.get(Team, spec.team) is None:
        problems.append(f"SOP {spec.id}: unknown team {spec.team!r}")
    known = set(session.exec(select(Source.id)).all())
    for n, watch in enumerate(spec.watches, 1):
        if watch.source not in known:
            problems.append(f"SOP {spec.id}: watches[{n}].source: unknown source {watch.source!r}")
    if problems:
        raise RegistryError(f"SOP {spec.id}", problems)
    result = save_sop_row(session, session.get(Sop, spec.id), spec, actor)
    session.flush()
    return result
