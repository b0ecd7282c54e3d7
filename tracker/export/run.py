"""The compliance audit export: changes, impacts and audit events for a period, with a manifest.

Three tables, in CSV (a file per table, in a folder or a zip), JSON Lines (a file per table) or
XLSX (a sheet per table). Rows are read in keyset-paginated batches and streamed to disk, so an
export of a million audit events keeps memory flat. The manifest beside the export records the
query, row counts, the SHA-256 of every file and the audit chain head (verified before export);
`tracker.export.manifest.verify_export` re-hashes the files and checks the head is still in a valid chain.

What the period and the filters select (docs/export.md says the same):
- period: from 00:00 UTC on --from to 24:00 UTC on --to (both days included);
- changes: detected in the period; --source keeps those sources' changes; --sop/--team keep
  changes with an impact on one of the selected SOPs;
- impacts: with activity in the period (created, resolved, or any audit event on the impact);
  --source keeps impacts of those sources; --sop keeps those SOPs; --team keeps the team's SOPs;
- audit events: recorded in the period, up to the verified chain head. Without filters, every
  event in the period (a contiguous piece of the chain). With filters, only events on the
  exported changes and impacts, and on the selected sources, SOPs and team.
Filters of different kinds combine with AND; several values of one filter with OR.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

import tracker
from tracker.audit import trail as audit
from tracker.export.formats import FORMATS, Column, ExportWriter, Format, WrittenFile, iso_utc
from tracker.export.manifest import (
    GENERATOR,
    MANIFEST_VERSION,
    ChainNotVerified,
    ExportError,
    keyset,
    verify_chain,
)
from tracker.export.output import move_into_place, plan_output
from tracker.impacts.workflow import is_overdue
from tracker.store.db import utcnow
from tracker.store.models import AuditEvent, Change, Impact, Sop, Source, Team, Version

TABLES = ("changes", "impacts", "audit_events")


CHANGE_COLUMNS: tuple[Column, ...] = (
    Column("change_id", "int", 10, "the change's id"),
    Column("source_id", "text", 26, "the source's id (slug)"),
    Column("source_name", "text", 30, "the source's name"),
    Column("source_url", "text", 45, "the watched page"),
    Column("detected_at_utc", "datetime", 20, "when the change was detected (UTC)"),
    Column("technical", "bool", 10, "true: the extraction rules changed, not the policy (never mapped to SOPs)"),
    Column("sections", "lines", 50, "heading paths the change touched, one per line"),
    Column("added", "int", 8, "blocks added"),
    Column("removed", "int", 9, "blocks removed"),
    Column("modified", "int", 9, "blocks modified"),
    Column("from_version_id", "int", 10, "the stored version before the change"),
    Column("to_version_id", "int", 10, "the stored version after the change"),
    Column("from_version_sha256", "text", 20, "SHA-256 of the extracted text of the version before"),
    Column("to_version_sha256", "text", 20, "SHA-256 of the extracted text of the version after"),
    Column("change_url", "text", 40, "the change and its diff in the web UI: {base_url}/changes/{id}"),
)

IMPACT_COLUMNS: tuple[Column, ...] = (
    Column("impact_id", "int", 10, "the impact's id"),
    Column("sop_id", "text", 24, "the SOP affected"),
    Column("sop_title", "text", 32, "its title"),
    Column("sop_owner", "text", 26, "its owner"),
    Column("team_id", "text", 16, "the SOP's team"),
    Column("team_name", "text", 22, "the team's name"),
    Column("change_id", "int", 10, "the change that affects the SOP"),
    Column("change_detected_at_utc", "datetime", 20, "when that change was detected (UTC)"),
    Column("change_url", "text", 40, "the change in the web UI"),
    Column("source_id", "text", 26, "the source that changed"),
    Column("source_name", "text", 30, "its name"),
    Column("reasons", "text", 50, "why the change affects the SOP, one watch per line"),
    Column("reasons_json", "json", 30, "the same reasons as recorded (JSON)"),
    Column("status", "text", 13, "open, needs_update, in_progress, updated or dismissed (at export time)"),
    Column("assignee", "text", 26, "who acts on it"),
    Column("due_date", "date", 12, "the date it is due"),
    Column("created_at_utc", "datetime", 20, "when the impact was opened (UTC)"),
    Column("updated_at_utc", "datetime", 20, "its last update (UTC)"),
    Column("resolved_at_utc", "datetime", 20, "when it was decided: updated or dismissed (UTC)"),
    Column("resolved_by", "text", 26, "who decided"),
    Column("days_to_resolve", "float", 10, "resolved_at − created_at in days (2 decimals)"),
    Column("overdue_at_resolution", "bool", 12, "decided after its due date (empty while undecided)"),
    Column("overdue_at_export", "bool", 12, "undecided and past its due date when the export ran"),
    Column("decision_note", "text", 40, "the note given with the decision (the reason for a dismissal)"),
)

AUDIT_COLUMNS: tuple[Column, ...] = (
    Column("seq", "int", 9, "position in the hash chain (1, 2, 3 … without gaps)"),
    Column("at_utc", "datetime", 22, "when it happened (UTC)"),
    Column("at_utc_exact", "text", 33, "the same time exactly as hashed (ISO 8601, microseconds)"),
    Column("actor", "text", 26, "who acted: an email address or \"system\""),
    Column("action", "text", 18, "what was done, e.g. impact.status"),
    Column("entity_type", "text", 11, "what it was done to: source, change, sop, impact, …"),
    Column("entity_id", "text", 12, "its id"),
    Column("before", "json", 40, "the fields before (JSON)"),
    Column("after", "json", 40, "the fields after (JSON)"),
    Column("prev_hash", "text", 20, "the hash of the event before"),
    Column("hash", "text", 20, "SHA-256(prev_hash + canonical JSON of this event)"),
)

COLUMNS: dict[str, tuple[Column, ...]] = {
    "changes": CHANGE_COLUMNS, "impacts": IMPACT_COLUMNS, "audit_events": AUDIT_COLUMNS,
}


@dataclass
class ExportQuery:
    """What to export: the period (whole UTC days, both included), the format and the filters."""

    date_from: date
    date_to: date
    format: str
    sources: list[str] = field(default_factory=list)
    sops: list[str] = field(default_factory=list)
    team: str | None = None
    zip: bool = False

    @property
    def start(self) -> datetime:
        return datetime.combine(self.date_from, time(0), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the period."""
        return datetime.combine(self.date_to + timedelta(days=1), time(0), tzinfo=UTC)

    @property
    def filtered(self) -> bool:
        return bool(self.sources or self.sops or self.team)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["date_from"], data["date_to"] = self.date_from.isoformat(), self.date_to.isoformat()
        data["period_start_utc"], data["period_end_utc_exclusive"] = iso_utc(self.start), iso_utc(self.end)
        return data


@dataclass
class ExportResult:
    """What an export wrote: the manifest (as written) and where."""

    manifest_path: Path
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


# --- selection ----------------------------------------------------------------------------------

@dataclass
class _Scope:
    query: ExportQuery
    sops: list[str] | None  # None: no SOP filter; else the SOP ids kept (may be empty)
    head_seq: int

    def change_where(self) -> list[Any]:
        q = self.query
        where: list[Any] = [col(Change.detected_at) >= q.start, col(Change.detected_at) < q.end]
        if q.sources:
            where.append(col(Change.source_id).in_(q.sources))
        if self.sops is not None:
            where.append(sa.exists().where(col(Impact.change_id) == col(Change.id), col(Impact.sop_id).in_(self.sops)))
        return where

    def impact_where(self) -> list[Any]:
        q = self.query
        in_period = sa.or_(
            sa.and_(col(Impact.created_at) >= q.start, col(Impact.created_at) < q.end),
            sa.and_(col(Impact.resolved_at) >= q.start, col(Impact.resolved_at) < q.end),
            sa.exists().where(col(AuditEvent.entity_type) == "impact",
                              col(AuditEvent.entity_id) == sa.cast(col(Impact.id), sa.String),
                              col(AuditEvent.at) >= q.start, col(AuditEvent.at) < q.end),
        )
        where: list[Any] = [in_period]
        if q.sources:
            where.append(col(Impact.source_id).in_(q.sources))
        if self.sops is not None:
            where.append(col(Impact.sop_id).in_(self.sops))
        return where

    def audit_where(self) -> list[Any]:
        q = self.query
        where: list[Any] = [col(AuditEvent.at) >= q.start, col(AuditEvent.at) < q.end,
                            col(AuditEvent.seq) <= self.head_seq]
        if not q.filtered:
            return where
        entity = col(AuditEvent.entity_id)
        kind = col(AuditEvent.entity_type)
        wanted = [
            sa.and_(kind == "change",
                    entity.in_(sa.select(sa.cast(col(Change.id), sa.String)).where(*self.change_where()))),
            sa.and_(kind == "impact",
                    entity.in_(sa.select(sa.cast(col(Impact.id), sa.String)).where(*self.impact_where()))),
        ]
        if q.sources:
            wanted.append(sa.and_(kind == "source", entity.in_(q.sources)))
        if self.sops:
            wanted.append(sa.and_(kind == "sop", entity.in_(self.sops)))
        if q.team:
            wanted.append(sa.and_(kind == "team", entity == q.team))
        where.append(sa.or_(*wanted))
        return where


def _sop_scope(session: Session, query: ExportQuery) -> list[str] | None:
    if not query.sops and not query.team:
        return None
    ids = set(query.sops) if query.sops else None
    if query.team:
        team_sops = set(session.exec(select(Sop.id).where(Sop.team_id == query.team)).all())
        ids = team_sops if ids is None else ids & team_sops
    return sorted(ids or ())


def check_query(*, session: Session, query: ExportQuery) -> None:
    """Raise ExportError for a bad period, format or an unknown source, SOP or team id."""
    fmt = FORMATS.get(query.format)
    if fmt is None:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, not {query.format!r}")
    if query.date_to < query.date_from:
        raise ExportError(f"the period is empty: --to {query.date_to} is before --from {query.date_from}")
    if query.zip and not fmt.zippable:
        zippable = " and ".join(f.name for f in FORMATS.values() if f.zippable)
        raise ExportError(f"--zip is for {zippable} (an .{fmt.name} export is already one file)")
    for model, ids, what, hint in ((Source, query.sources, "source", "tracker sources list"),
                                   (Sop, query.sops, "SOP", "tracker sops list")):
        known = set(session.exec(select(model.id).where(col(model.id).in_(ids))).all()) if ids else set()
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise ExportError(f"unknown {what} id(s): {', '.join(unknown)} (see `{hint}`)")
    if query.team and session.get(Team, query.team) is None:
        raise ExportError(f"unknown team id {query.team!r} (see the teams in your SOPs file)")


# --- rows ---------------------------------------------------------------------------------------

def _cols(model: Any, *names: str) -> list[Any]:
    """A model's columns, by attribute name, for Core selects."""
    return [col(getattr(model, name)) for name in names]


def change_url(base_url: str, change_id: int) -> str:
    """The web UI link of a change."""
    return f"{base_url.rstrip('/')}/changes/{change_id}"


def change_rows(session: Session, scope: _Scope, base_url: str) -> Iterator[tuple[Any, ...]]:
    """The changes table, in id order."""
    v_from, v_to = aliased(Version), aliased(Version)
    stmt = (
        sa.select(*_cols(Change, "id", "source_id"), *_cols(Source, "name", "url"),
                  *_cols(Change, "detected_at", "technical", "sections", "added", "removed", "modified",
                         "from_version_id", "to_version_id"),
                  col(v_from.text_hash), col(v_to.text_hash))
        .join(Source, col(Source.id) == col(Change.source_id))
        .outerjoin(v_from, col(v_from.id) == col(Change.from_version_id))
        .outerjoin(v_to, col(v_to.id) == col(Change.to_version_id))
        .where(*scope.change_where())
    )
    for row in keyset(session, stmt, col(Change.id)):
        yield (*row, change_url(base_url, row[0]))


def readable_reasons(reasons: Sequence[dict[str, Any]] | None) -> str:
    """Impact reasons as text, one per line, worded like `tracker impacts show`:
    "watch 1 on alpha: sections A > B; C (globs: *), keywords appeal"."""
    lines = []
    for reason in reasons or []:
        parts = []
        if reason.get("sections"):
            globs = f" (globs: {', '.join(map(str, reason['globs']))})" if reason.get("globs") else ""
            parts.append("sections " + "; ".join(map(str, reason["sections"])) + globs)
        if reason.get("keywords"):
            parts.append("keywords " + ", ".join(map(str, reason["keywords"])))
        known = {"watch", "source", "sections", "globs", "keywords"}
        parts += [f"{k} {json.dumps(v, ensure_ascii=False, sort_keys=True)}"
                  for k, v in reason.items() if k not in known and v not in (None, "", [], {})]
        lines.append(f"watch {reason.get('watch')} on {reason.get('source')}: " + (", ".join(parts) or "any change"))
    return "\n".join(lines)


class _Due(NamedTuple):
    """What workflow.is_overdue reads of an impact (cheaper than building an Impact per row)."""

    status: str
    due_date: date | None


def impact_rows(session: Session, scope: _Scope, base_url: str, today: date) -> Iterator[tuple[Any, ...]]:
    """The impacts table, in id order."""
    stmt = (
        sa.select(*_cols(Impact, "id", "sop_id"), *_cols(Sop, "title", "owner", "team_id"), col(Team.name),
                  col(Impact.change_id), col(Change.detected_at), col(Impact.source_id), col(Source.name),
                  *_cols(Impact, "reasons", "status", "assignee", "due_date", "created_at", "updated_at",
                         "resolved_at", "resolved_by", "decision_note"))
        .join(Sop, col(Sop.id) == col(Impact.sop_id))
        .outerjoin(Team, col(Team.id) == col(Sop.team_id))
        .join(Change, col(Change.id) == col(Impact.change_id))
        .join(Source, col(Source.id) == col(Impact.source_id))
        .where(*scope.impact_where())
    )
    for r in keyset(session, stmt, col(Impact.id)):
        (iid, sop_id, title, owner, team_id, team_name, change_id, detected, source_id, source_name, reasons,
         status, assignee, due, created, updated, resolved, resolved_by, note) = r
        days = round((resolved - created).total_seconds() / 86400, 2) if resolved and created else None
        late = (resolved.astimezone(UTC).date() > due) if resolved and due else None
        overdue_now = None if resolved else is_overdue(cast(Impact, _Due(status, due)), today=today)
        yield (iid, sop_id, title, owner, team_id, team_name, change_id, detected, change_url(base_url, change_id),
               source_id, source_name, readable_reasons(reasons), reasons, status, assignee, due, created,
               updated, resolved, resolved_by, days, late, overdue_now, note)


def audit_rows(session: Session, scope: _Scope) -> Iterator[tuple[Any, ...]]:
    """The audit events table, in chain order."""
    stmt = sa.select(*_cols(AuditEvent, "seq", "at", "actor", "action", "entity_type", "entity_id", "before",
                            "after", "prev_hash", "hash")).where(*scope.audit_where())
    for seq, at, *rest in keyset(session, stmt, col(AuditEvent.seq)):
        yield (seq, at, iso_utc(at), *rest)


# --- running an export --------------------------------------------------------------------------

def output_paths(output: Path, query: ExportQuery) -> tuple[Path, Path, bool]:
    """(data path, manifest path, data path is a directory) for an --output path."""
    fmt = FORMATS[query.format]
    if fmt.one_file or query.zip:
        if not output.suffix:
            # `--output q3-audit` means q3-audit.xlsx (or .zip): a file named without its type would
            # not open in a spreadsheet program or an archive tool by a double click.
            output = output.with_name(output.name + fmt.suffix(zip=query.zip))
        return output, output.with_name(output.stem + ".manifest.json"), False
    return output, output / "manifest.json", True


def _begin_snapshot(session: Session) -> None:
    # One consistent view of the database for the whole export on PostgreSQL; on every backend the
    # audit rows are bounded by the verified head, so events appended meanwhile are not exported.
    # (A caller's session that is already in a transaction keeps its own isolation.)
    if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def run_export(*, session: Session, query: ExportQuery, output: Path, base_url: str,
               force: bool = False, allow_broken_chain: bool = False,
               now: datetime | None = None) -> ExportResult:
    """Verify the audit chain, write the three tables and the manifest; returns the manifest."""
    _begin_snapshot(session)
    check_query(session=session, query=query)
    generated_at = (now or utcnow()).astimezone(UTC)
    check = verify_chain(session)
    warnings: list[str] = list(check.warnings)
    if not check.ok:
        message = (f"the audit chain does NOT verify: {check.problem} (event #{check.bad_seq}); "
                   "the audit trail may have been tampered with")
        if not allow_broken_chain:
            raise ChainNotVerified(message + "; investigate before exporting, or pass --allow-broken-chain to "
                              "export anyway (the manifest then records the failure)")
        warnings.append(message)
    head_seq = check.head_seq or 0
    if not check.ok:
        last = audit.head(session)
        head_seq = last.seq if last else 0
    scope = _Scope(query=query, sops=_sop_scope(session, query), head_seq=head_seq)

    target, manifest_path, is_dir = output_paths(output, query)
    names = [f"{t}.{query.format}" for t in TABLES] if is_dir else [target.name]
    plan = plan_output(target, manifest_path, is_dir=is_dir, names=names, force=force)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        data = staging / target.name
        fmt: Format = FORMATS[query.format]
        writer: ExportWriter = fmt.open(data, target.name, query.zip)
        counts: dict[str, int] = {}
        tables: list[tuple[str, Iterator[tuple[Any, ...]]]] = [
            ("changes", change_rows(session, scope, base_url)),
            ("impacts", impact_rows(session, scope, base_url, generated_at.date())),
            ("audit_events", audit_rows(session, scope)),
        ]
        for name, rows in tables:
            sink = writer.table(name, COLUMNS[name])
            n = 0
            for row in rows:
                sink.write(row)
                n += 1
            sink.close()
            counts[name] = n
        if query.format == "xlsx":
            from tracker.export.metrics_sheet import write_metrics_sheet

            write_metrics_sheet(writer=writer, session=session, start=query.start, end=query.end, team=query.team)
        files = writer.finish()
        manifest = _manifest(query=query, generated_at=generated_at, base_url=base_url, counts=counts,
                             files=files, check=check, head_seq=head_seq, session=session,
                             warnings=warnings)
        tmp_manifest = staging / "manifest.json.tmp"
        tmp_manifest.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        move_into_place(plan, data, tmp_manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(manifest_path=manifest_path, manifest=manifest, warnings=warnings)


def _manifest(*, query: ExportQuery, generated_at: datetime, base_url: str, counts: dict[str, int],
              files: list[WrittenFile], check: audit.Verification, head_seq: int, session: Session,
              warnings: list[str]) -> dict[str, Any]:
    head_hash = check.head_hash
    if not check.ok:
        ev = session.exec(select(AuditEvent).where(AuditEvent.seq == head_seq)).first()
        head_hash = ev.hash if ev else None
    return {
        "manifest_version": MANIFEST_VERSION,
        "generator": {"name": GENERATOR, "version": tracker.__version__},
        "generated_at_utc": iso_utc(generated_at),
        "query": query.to_json(),
        "base_url": base_url,
        "database_backend": session.get_bind().dialect.name,
        "row_counts": counts,
        # Paths are relative to the manifest's folder.
        "files": [f.to_json() for f in files],
        "audit_chain": {
            "verified": check.ok,
            "events": check.count if check.ok else None,
            "head_seq": head_seq or None,
            "head_hash": head_hash,
            "problem": check.problem,
            # For `tracker audit verify --expect-head …`.
            "expect_head": f"{head_seq}:{head_hash}" if head_seq and head_hash else None,
        },
        "warnings": warnings,
    }


