"""The compliance export: every format read back and checked against the database, filters,
the manifest, `tracker export verify`, and real Excel dates."""

from __future__ import annotations

import csv
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tests.conftest import run_tracker
from tracker.audit import trail as audit
from tracker.check.blocks import Block, blocks_hash
from tracker.check.diff import diff_blocks
from tracker.export.formats import sha256_file, undefuse
from tracker.export.manifest import verify_export
from tracker.export.run import (
    AUDIT_COLUMNS,
    CHANGE_COLUMNS,
    COLUMNS,
    IMPACT_COLUMNS,
    ExportQuery,
    readable_reasons,
    run_export,
)
from tracker.impacts.mapping import MappingContext, map_change
from tracker.impacts.workflow import mark_impact
from tracker.store.db import make_engine, session_scope, utcnow
from tracker.store.models import AuditEvent, Change, Impact, Sop, Source, Team, Version

BASE_URL = "https://tracker.example.com"
PM, LEAD = "ana@example.com", "bo@example.com"
HOSTILE_TITLE = '=HYPERLINK("http://evil.example/x","click")'
HOSTILE_NOTE = "=1+1 not relevant to our queue"


# --- a history with changes and impacts inside, before and after the period ----------------------

@dataclass
class History:
    now: datetime
    period: tuple[date, date]
    changes: dict[str, int] = field(default_factory=dict)
    impacts: dict[str, int] = field(default_factory=dict)

    @property
    def start(self) -> datetime:
        return datetime(*self.period[0].timetuple()[:3], tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime(*(self.period[1] + timedelta(days=1)).timetuple()[:3], tzinfo=UTC)


def _blocks(*texts: str, section: str = "Enforcement") -> list[Block]:
    return [Block(kind="p", text=t, path=("Policy", section)) for t in texts]


def _change(s: Session, source: str, at: datetime, old: list[Block], new: list[Block], *,
            technical: bool = False) -> Change:
    versions = []
    for blocks in (old, new):
        v = Version(source_id=source, created_at=at, text_hash=blocks_hash(blocks),
                    blocks=[b.to_json() for b in blocks], block_count=len(blocks), rules={}, rules_hash="r" * 64)
        s.add(v)
        s.flush()
        versions.append(v)
    diff = diff_blocks(old, new)
    change = Change(source_id=source, from_version_id=versions[0].id, to_version_id=versions[1].id,
                    detected_at=at, technical=technical, sections=diff.sections, added=diff.added,
                    removed=diff.removed, modified=diff.modified, diff=diff.to_json())
    s.add(change)
    s.flush()
    return change


def _direct_impact(s: Session, change: Change, sop: str, at: datetime) -> Impact:
    """An impact opened at a chosen time (the mapping stamps 'now'), audited at that time."""
    impact = Impact(change_id=change.id, sop_id=sop, source_id=change.source_id, status="open",
                    reasons=[{"watch": 0, "source": change.source_id, "sections": change.sections}],
                    assignee=PM, due_date=(at + timedelta(days=5)).date(), created_at=at, updated_at=at)
    s.add(impact)
    s.flush()
    audit.append_event(session=s, actor="system", action="impact.created", entity_type="impact",
                       entity_id=impact.id, after={"status": "open", "sop_id": sop}, at=at)
    return impact


def build_history(engine: Engine) -> History:
    """Changes and impacts 30 days ago, in the period (every status, via the real workflow), and after."""
    now = utcnow()
    h = History(now=now, period=(now.date() - timedelta(days=2), now.date()))
    old, future = now - timedelta(days=30), now + timedelta(days=5)
    watch_all = [{"source": "alpha", "sections": ["*"], "keywords": []},
                 {"source": "beta", "sections": ["*"], "keywords": []}]
    with session_scope(engine) as s:
        for sid, name in (("alpha", "Alpha Community Rules"), ("beta", "Beta Privacy Policy")):
            s.add(Source(id=sid, name=name, url=f"https://{sid}.example/policy"))
            audit.append_event(session=s, actor="system", action="source.added", entity_type="source",
                               entity_id=sid, after={"name": name}, at=old)
        s.add(Team(id="ts", name="Trust & Safety", members=[PM]))
        s.add(Team(id="cs", name="Customer Support", members=[LEAD]))
        s.flush()
        s.add(Sop(id="sop-enf", title="Enforcement appeals", owner=PM, team_id="ts", watches=watch_all,
                  review_days=3))
        s.add(Sop(id="sop-all", title=HOSTILE_TITLE, owner=LEAD, team_id="cs", watches=watch_all))
        s.flush()
        for sop in ("sop-enf", "sop-all"):
            audit.append_event(session=s, actor="system", action="sop.added", entity_type="sop",
                               entity_id=sop, after={"id": sop}, at=old)

        # 30 days ago: a change with two impacts; one decided then, one still open.
        c_old = _change(s, "alpha", old, _blocks("Old rule."), _blocks("Old rule, amended."))
        i_old_a = _direct_impact(s, c_old, "sop-enf", old)
        i_old_a.status, i_old_a.resolved_at, i_old_a.resolved_by = "updated", old + timedelta(days=1), PM
        audit.append_event(session=s, actor=PM, action="impact.status", entity_type="impact",
                           entity_id=i_old_a.id, before={"status": "open"}, after={"status": "updated"},
                           at=old + timedelta(days=1))
        i_old_b = _direct_impact(s, c_old, "sop-all", old)
        h.changes["old"] = c_old.id
        h.impacts |= {"old_a": i_old_a.id, "old_b": i_old_b.id}

        # In the period: three policy changes (mapped by the real mapping) and a technical one.
        ctx = MappingContext.load(s, default_review_days=5)
        specs = [("c1", "alpha", 60, _blocks("Appeals within 7 days."), _blocks("Appeals within 14 days.")),
                 ("c2", "beta", 40, _blocks("We keep data.", section="Privacy"),
                  _blocks("We keep data.", "We sell nothing.", section="Privacy")),
                 ("c3", "alpha", 30, _blocks("Same text."), _blocks("Same text.", "Rules changed.")),
                 ("c4", "beta", 20, _blocks("Cookies.", section="Privacy"), _blocks(section="Privacy"))]
        for key, source, minutes, a, b in specs:
            change = _change(s, source, now - timedelta(minutes=minutes), a, b, technical=key == "c3")
            h.changes[key] = change.id
            for impact in map_change(s, change, context=ctx):
                h.impacts[f"{key}_{'a' if impact.sop_id == 'sop-enf' else 'b'}"] = impact.id
        assert "c3_a" not in h.impacts  # technical changes are never mapped

        # After the period: a change and its impact.
        c_future = _change(s, "alpha", future, _blocks("Later."), _blocks("Later still."))
        h.changes["future"] = c_future.id
        h.impacts["future_a"] = _direct_impact(s, c_future, "sop-enf", future).id

    # The PM workflow, for real: every status, an assignee and a due date change, notes.
    with session_scope(engine) as s:
        i = h.impacts
        mark_impact(session=s, impact_id=i["c1_a"], by=PM, assignee=LEAD, due=now.date() + timedelta(days=9))
        mark_impact(session=s, impact_id=i["c1_b"], by=PM, status="needs_update")
        for status in ("needs_update", "in_progress"):
            mark_impact(session=s, impact_id=i["c2_a"], by=PM, status=status)
        for status in ("needs_update", "in_progress"):
            mark_impact(session=s, impact_id=i["c2_b"], by=LEAD, status=status)
        mark_impact(session=s, impact_id=i["c2_b"], by=LEAD, status="updated", note="SOP v3 published")
        mark_impact(session=s, impact_id=i["c4_a"], by=PM, status="dismissed", note=HOSTILE_NOTE)
        mark_impact(session=s, impact_id=i["old_b"], by=LEAD, status="dismissed", note="superseded")
    return h


# --- what the database says each table must hold ----------------------------------------------

def _in(h: History, t: datetime | None) -> bool:
    return t is not None and h.start <= t < h.end


def expected(session: Session, h: History, q: ExportQuery) -> dict[str, list[dict[str, Any]]]:
    """Each table's rows, computed in Python from the database (not by the export's SQL)."""
    events = list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())
    sops = {s.id: s for s in session.exec(select(Sop)).all()}
    teams = {t.id: t for t in session.exec(select(Team)).all()}
    sources = {s.id: s for s in session.exec(select(Source)).all()}
    changes = {c.id: c for c in session.exec(select(Change)).all()}
    versions = {v.id: v for v in session.exec(select(Version)).all()}
    impacts = list(session.exec(select(Impact).order_by(col(Impact.id))).all())
    scope = set(q.sops) if q.sops else set(sops)
    if q.team:
        scope &= {s.id for s in sops.values() if s.team_id == q.team}
    sop_filter = bool(q.sops or q.team)

    active = {int(e.entity_id) for e in events if e.entity_type == "impact" and _in(h, e.at)}
    impact_rows = [i for i in impacts
                   if (_in(h, i.created_at) or _in(h, i.resolved_at) or i.id in active)
                   and (not q.sources or i.source_id in q.sources) and (not sop_filter or i.sop_id in scope)]
    change_rows = [c for c in sorted(changes.values(), key=lambda c: c.id)
                   if _in(h, c.detected_at) and (not q.sources or c.source_id in q.sources)
                   and (not sop_filter or any(i.change_id == c.id and i.sop_id in scope for i in impacts))]
    wanted = ({("change", str(c.id)) for c in change_rows} | {("impact", str(i.id)) for i in impact_rows}
              | {("source", s) for s in q.sources} | {("sop", s) for s in (scope if sop_filter else ())}
              | ({("team", q.team)} if q.team else set()))
    event_rows = [e for e in events if _in(h, e.at) and (not q.filtered or (e.entity_type, e.entity_id) in wanted)]

    def change_row(c: Change) -> dict[str, Any]:
        src = sources[c.source_id]
        return {"change_id": c.id, "source_id": c.source_id, "source_name": src.name, "source_url": src.url,
                "detected_at_utc": c.detected_at, "technical": c.technical, "sections": c.sections,
                "added": c.added, "removed": c.removed, "modified": c.modified,
                "from_version_id": c.from_version_id, "to_version_id": c.to_version_id,
                "from_version_sha256": versions[c.from_version_id].text_hash,
                "to_version_sha256": versions[c.to_version_id].text_hash,
                "change_url": f"{BASE_URL}/changes/{c.id}"}

    def impact_row(i: Impact) -> dict[str, Any]:
        sop = sops[i.sop_id]
        resolved = i.resolved_at
        return {"impact_id": i.id, "sop_id": i.sop_id, "sop_title": sop.title, "sop_owner": sop.owner,
                "team_id": sop.team_id, "team_name": teams[sop.team_id].name if sop.team_id else None,
                "change_id": i.change_id, "change_detected_at_utc": changes[i.change_id].detected_at,
                "change_url": f"{BASE_URL}/changes/{i.change_id}", "source_id": i.source_id,
                "source_name": sources[i.source_id].name, "reasons": readable_reasons(i.reasons),
                "reasons_json": i.reasons, "status": i.status, "assignee": i.assignee, "due_date": i.due_date,
                "created_at_utc": i.created_at, "updated_at_utc": i.updated_at, "resolved_at_utc": resolved,
                "resolved_by": i.resolved_by,
                "days_to_resolve": round((resolved - i.created_at).total_seconds() / 86400, 2) if resolved else None,
                "overdue_at_resolution": (resolved.date() > i.due_date) if resolved and i.due_date else None,
                "overdue_at_export": None if resolved else bool(i.due_date and i.due_date < h.now.date()),
                "decision_note": i.decision_note}

    def event_row(e: AuditEvent) -> dict[str, Any]:
        return {"seq": e.seq, "at_utc": e.at, "at_utc_exact": e.at.isoformat(timespec="microseconds"),
                "actor": e.actor, "action": e.action, "entity_type": e.entity_type, "entity_id": e.entity_id,
                "before": e.before, "after": e.after, "prev_hash": e.prev_hash, "hash": e.hash}

    return {"changes": [change_row(c) for c in change_rows], "impacts": [impact_row(i) for i in impact_rows],
            "audit_events": [event_row(e) for e in event_rows]}


# --- reading every format back ----------------------------------------------------------------

def _from_text(value: str, kind: str) -> Any:
    """A CSV cell back to a Python value."""
    if value == "":
        return [] if kind == "lines" else None
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        return {"true": True, "false": False}[value]
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "lines":
        return undefuse(value).split("\n")
    if kind == "json":
        return json.loads(undefuse(value))
    return undefuse(value)


def read_csv(path: Path, table: str) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    kinds = {c.name: c.kind for c in COLUMNS[table]}
    assert rows[0] == [c.name for c in COLUMNS[table]]
    return [{n: _from_text(v, kinds[n]) for n, v in zip(rows[0], r, strict=True)} for r in rows[1:]]


def read_jsonl(path: Path, table: str) -> list[dict[str, Any]]:
    kinds = {c.name: c.kind for c in COLUMNS[table]}
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        assert list(obj) == [c.name for c in COLUMNS[table]]
        out.append({k: (_from_text(v, kinds[k]) if kinds[k] in ("datetime", "date") and v is not None else v)
                    for k, v in obj.items()})
    return out


def read_xlsx(path: Path) -> dict[str, list[dict[str, Any]]]:
    from openpyxl import load_workbook

    wb = load_workbook(path)
    assert wb.sheetnames == ["changes", "impacts", "audit_events", "metrics"]
    assert [c.value for c in next(wb["metrics"].iter_rows())][:3] == ["table", "c0", "c1"]
    assert {r[0].value for r in list(wb["metrics"].iter_rows())[1:]} == {"teams", "sops", "sources", "weeks"}
    tables = {}
    for table in wb.sheetnames[:3]:
        ws = wb[table]
        columns = COLUMNS[table]
        rows = list(ws.iter_rows())
        assert [c.value for c in rows[0]] == [c.name for c in columns]
        assert ws.freeze_panes == "A2"
        assert ws.auto_filter.ref == f"A1:{rows[0][-1].column_letter}{len(rows)}"
        for c in columns:
            assert ws.column_dimensions[rows[0][columns.index(c)].column_letter].width == c.width
        out = []
        for r in rows[1:]:
            row: dict[str, Any] = {}
            for c, cell in zip(columns, r, strict=True):
                v = cell.value
                if c.kind in ("datetime", "date") and v is not None:
                    # Real Excel dates: a number with a date format, read back as datetime.
                    assert cell.is_date and isinstance(v, datetime), (table, c.name, v)
                    v = v.replace(tzinfo=UTC) if c.kind == "datetime" else v.date()
                elif c.kind == "text" and v is not None:
                    assert cell.data_type == "s", (table, c.name, v)  # never a formula
                elif c.kind == "lines":
                    v = v.split("\n") if v else []
                elif c.kind == "json" and v is not None:
                    v = json.loads(v)
                row[c.name] = v
            out.append(row)
        tables[table] = out
    return tables


def assert_rows(got: list[dict[str, Any]], want: list[dict[str, Any]], table: str, *, xlsx: bool = False) -> None:
    assert len(got) == len(want), f"{table}: {len(got)} rows exported, {len(want)} expected"
    for g, w in zip(got, want, strict=True):
        assert list(g) == list(w), table
        for key in w:
            if xlsx and isinstance(w[key], datetime):
                # Excel keeps milliseconds; the exact time is in at_utc_exact.
                assert abs(g[key] - w[key]) <= timedelta(milliseconds=1), (table, key, g[key], w[key])
            else:
                assert g[key] == w[key], (table, w.get("change_id") or w.get("impact_id") or w.get("seq"), key)


def export(db_url: str, h: History, fmt: str, out: Path, *args: str) -> dict[str, Any]:
    r = run_tracker(db_url, "export", "--from", h.period[0].isoformat(), "--to", h.period[1].isoformat(),
                    "--format", fmt, "--output", str(out), *args, TRACKER_BASE_URL=BASE_URL)
    assert r.returncode == 0, r.stderr
    assert "audit chain verified" in r.stdout
    manifest = out.with_name(out.stem + ".manifest.json") if fmt == "xlsx" or "--zip" in args else out / "manifest.json"
    return json.loads(manifest.read_text())


# --- the tests --------------------------------------------------------------------------------

def test_every_format_matches_the_database(db_url: str, engine: Engine, tmp_path: Path) -> None:
    h = build_history(engine)
    q = ExportQuery(date_from=h.period[0], date_to=h.period[1], format="csv")
    with Session(engine) as s:
        want = expected(s, h, q)
        head = audit.head(s)
        statuses = {i.status for i in s.exec(select(Impact).where(col(Impact.id).in_(
            [r["impact_id"] for r in want["impacts"]]))).all()}
    assert statuses == {"open", "needs_update", "in_progress", "updated", "dismissed"}
    # The period holds some of everything, and leaves out what came before and after it.
    exported_changes = {r["change_id"] for r in want["changes"]}
    assert exported_changes == {h.changes[k] for k in ("c1", "c2", "c3", "c4")}
    exported_impacts = {r["impact_id"] for r in want["impacts"]}
    assert h.impacts["old_b"] in exported_impacts  # opened before, decided in the period
    assert not exported_impacts & {h.impacts["old_a"], h.impacts["future_a"]}
    assert len(want["audit_events"]) >= 15

    results = {}
    for fmt, extra in (("csv", ()), ("jsonl", ()), ("xlsx", ()), ("csv", ("--zip",))):
        out = tmp_path / (f"{fmt}-export" + (".xlsx" if fmt == "xlsx" else ".zip" if extra else ""))
        manifest = export(db_url, h, fmt, out, *extra)
        assert manifest["row_counts"] == {t: len(want[t]) for t in want}
        assert manifest["audit_chain"] == {"verified": True, "events": head.seq, "head_seq": head.seq,
                                           "head_hash": head.hash, "problem": None,
                                           "expect_head": f"{head.seq}:{head.hash}"}
        assert manifest["query"]["date_from"] == h.period[0].isoformat() and manifest["query"]["format"] == fmt
        assert manifest["generator"]["name"] == "policy-tracker" and manifest["generator"]["version"]
        results[(fmt, bool(extra))] = (out, manifest)

    out, manifest = results[("csv", False)]
    assert sorted(f["path"] for f in manifest["files"]) == ["audit_events.csv", "changes.csv", "impacts.csv"]
    for table in want:
        assert_rows(read_csv(out / f"{table}.csv", table), want[table], table)
    out, manifest = results[("jsonl", False)]
    for table in want:
        assert_rows(read_jsonl(out / f"{table}.jsonl", table), want[table], table)
    out, manifest = results[("xlsx", False)]
    assert [f["path"] for f in manifest["files"]] == [out.name]
    for table, rows in read_xlsx(out).items():
        assert_rows(rows, want[table], table, xlsx=True)
    out, manifest = results[("csv", True)]
    assert [f["path"] for f in manifest["files"]] == [out.name]
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["audit_events.csv", "changes.csv", "impacts.csv"]
        zf.extractall(tmp_path / "unzipped")
    for table in want:
        assert_rows(read_csv(tmp_path / "unzipped" / f"{table}.csv", table), want[table], table)

    # Each exported audit row recomputes to its own hash, and consecutive rows link.
    rows = read_jsonl(results[("jsonl", False)][0] / "audit_events.jsonl", "audit_events")
    for prev, row in zip([None, *rows], rows, strict=False):
        body = audit.canonical(seq=row["seq"], at=datetime.fromisoformat(row["at_utc_exact"]), actor=row["actor"],
                               action=row["action"], entity_type=row["entity_type"], entity_id=row["entity_id"],
                               before=row["before"], after=row["after"], prev_hash=row["prev_hash"])
        assert audit.hashlib.sha256(row["prev_hash"].encode() + body).hexdigest() == row["hash"]
        if prev is not None and row["seq"] == prev["seq"] + 1:  # (the future-dated event sits between)
            assert row["prev_hash"] == prev["hash"]

    # Every export verifies.
    for out, _manifest in results.values():
        path = out / "manifest.json" if out.is_dir() else out.with_name(out.stem + ".manifest.json")
        r = run_tracker(db_url, "export", "verify", "--rows", str(path))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "export verified" in r.stdout
        assert f"ok     audit rows: all {len(want['audit_events'])} exported audit events" in r.stdout


def test_hostile_text_stays_text(db_url: str, engine: Engine, tmp_path: Path) -> None:
    h = build_history(engine)
    q = ExportQuery(date_from=h.period[0], date_to=h.period[1], format="xlsx")
    with Session(engine) as s:
        run_export(session=s, query=q, output=tmp_path / "x.xlsx", base_url=BASE_URL)
        q.format = "csv"
        run_export(session=s, query=q, output=tmp_path / "c", base_url=BASE_URL)
    from openpyxl import load_workbook

    ws = load_workbook(tmp_path / "x.xlsx")["impacts"]
    titles = [c for c in ws["C"] if c.value == HOSTILE_TITLE]
    notes = [c for c in ws["X"] if c.value == HOSTILE_NOTE]
    assert titles and notes and all(c.data_type == "s" for c in titles + notes)
    raw = (tmp_path / "c" / "impacts.csv").read_text(encoding="utf-8-sig")
    assert "'" + HOSTILE_NOTE in raw and "'" + HOSTILE_TITLE.replace('"', '""') in raw


@pytest.mark.parametrize("filters", [
    {"sources": ["beta"]},
    {"sops": ["sop-enf"]},
    {"team": "cs"},
    {"sources": ["alpha"], "team": "cs"},
    {"sops": ["sop-enf", "sop-all"], "sources": ["alpha", "beta"]},
])
def test_filters_narrow_the_rows(db_url: str, engine: Engine, tmp_path: Path, filters: dict[str, Any]) -> None:
    h = build_history(engine)
    q = ExportQuery(date_from=h.period[0], date_to=h.period[1], format="jsonl", **filters)
    everything = ExportQuery(date_from=h.period[0], date_to=h.period[1], format="jsonl")
    with Session(engine) as s:
        want, unfiltered = expected(s, h, q), expected(s, h, everything)
        result = run_export(session=s, query=q, output=tmp_path / "out", base_url=BASE_URL)
    for table in want:
        got = read_jsonl(tmp_path / "out" / f"{table}.jsonl", table)
        assert_rows(got, want[table], table)
        assert len(got) <= len(unfiltered[table])
    assert result.manifest["query"]["sources"] == filters.get("sources", [])
    assert result.manifest["query"]["team"] == filters.get("team")
    # Narrowed, but consistent: every exported impact is on a kept SOP and source; events are on kept rows.
    for row in want["impacts"]:
        if "sources" in filters:
            assert row["source_id"] in filters["sources"]
        if "team" in filters:
            assert row["team_id"] == filters["team"]
        if "sops" in filters:
            assert row["sop_id"] in filters["sops"]
    if filters == {"sources": ["beta"]}:
        assert {r["change_id"] for r in want["changes"]} == {h.changes["c2"], h.changes["c4"]}
        assert {r["entity_id"] for r in want["audit_events"]} <= {str(h.impacts[k]) for k in
                                                                 ("c2_a", "c2_b", "c4_a", "c4_b")}
    if filters == {"sops": ["sop-enf"]}:
        assert {r["change_id"] for r in want["changes"]} == {h.changes[k] for k in ("c1", "c2", "c4")}
        assert {r["impact_id"] for r in want["impacts"]} == {h.impacts[k] for k in ("c1_a", "c2_a", "c4_a")}
    if filters == {"sources": ["alpha"], "team": "cs"}:
        assert {r["change_id"] for r in want["changes"]} == {h.changes["c1"]}
        assert {r["impact_id"] for r in want["impacts"]} == {h.impacts["c1_b"], h.impacts["old_b"]}
    if filters.get("sops") == ["sop-enf", "sop-all"]:
        # Every SOP and source selected: all but the technical change, which touches no SOP.
        assert len(want["changes"]) == len(unfiltered["changes"]) - 1
        assert want["impacts"] == unfiltered["impacts"]


def test_a_changed_file_fails_verify(db_url: str, engine: Engine, tmp_path: Path) -> None:
    h = build_history(engine)
    csv_manifest = export(db_url, h, "csv", tmp_path / "csv")
    export(db_url, h, "xlsx", tmp_path / "book.xlsx")
    export(db_url, h, "jsonl", tmp_path / "j.zip", "--zip")
    assert csv_manifest["files"]

    # One edited cell in impacts.csv: that file fails, the others still pass, exit 1.
    path = tmp_path / "csv" / "impacts.csv"
    path.write_text(path.read_text(encoding="utf-8-sig").replace("dismissed", "updated", 1), encoding="utf-8-sig")
    r = run_tracker(db_url, "export", "verify", str(tmp_path / "csv" / "manifest.json"))
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert any(line.startswith("FAILED impacts.csv: changed since export") for line in lines), r.stdout
    assert "ok     changes.csv" in lines and "ok     audit_events.csv" in lines
    assert "export verification FAILED" in r.stdout

    # A forger who edits an audit row and rewrites the manifest to match passes the file check;
    # --rows catches it, whether the row's hash is left alone or recomputed to match.
    jsonl = tmp_path / "forged"
    export(db_url, h, "jsonl", jsonl)
    manifest_path = jsonl / "manifest.json"
    events = jsonl / "audit_events.jsonl"
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    victim = next(r for r in rows if r["action"] == "impact.status" and r["after"].get("status") == "dismissed")
    victim["actor"] = "someone-else@example.com"
    for recompute in (False, True):
        if recompute:
            body = audit.canonical(seq=victim["seq"], at=datetime.fromisoformat(victim["at_utc_exact"]),
                                   actor=victim["actor"], action=victim["action"], entity_type=victim["entity_type"],
                                   entity_id=victim["entity_id"], before=victim["before"], after=victim["after"],
                                   prev_hash=victim["prev_hash"])
            victim["hash"] = audit.hashlib.sha256(victim["prev_hash"].encode() + body).hexdigest()
        events.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        m = json.loads(manifest_path.read_text())
        entry = next(f for f in m["files"] if f["path"] == "audit_events.jsonl")
        entry["sha256"], entry["bytes"] = sha256_file(events)
        manifest_path.write_text(json.dumps(m))
        assert run_tracker(db_url, "export", "verify", str(manifest_path)).returncode == 0
        r = run_tracker(db_url, "export", "verify", "--rows", str(manifest_path))
        assert r.returncode == 1, r.stdout
        why = "database's event" if recompute else "no longer matches its hash"
        assert f"FAILED audit rows: exported audit event #{victim['seq']}" in r.stdout and why in r.stdout, r.stdout

    # A removed file, an edited workbook and an edited zip fail too.
    (tmp_path / "csv" / "changes.csv").unlink()
    r = run_tracker(db_url, "export", "verify", str(tmp_path / "csv" / "manifest.json"))
    assert r.returncode == 1 and "FAILED changes.csv: missing" in r.stdout
    for name in ("book.xlsx", "j.zip"):
        with (tmp_path / name).open("ab") as f:
            f.write(b"\0")
        r = run_tracker(db_url, "export", "verify", str(tmp_path / name.replace(name.split(".")[1], "manifest.json")))
        assert r.returncode == 1 and f"FAILED {name}: changed since export" in r.stdout, r.stdout


def test_verify_checks_the_chain_head_against_the_database(sqlite_url: str, tmp_path: Path) -> None:
    from tracker.store.db import upgrade

    upgrade(sqlite_url)
    eng = make_engine(sqlite_url)
    h = build_history(eng)
    export(sqlite_url, h, "jsonl", tmp_path / "j")
    manifest = tmp_path / "j" / "manifest.json"
    with Session(eng) as s:
        assert verify_export(manifest_path=manifest, session=s).ok
        # New events after the export are fine: the recorded head is still in the chain.
        audit.append_event(session=s, actor=PM, action="impact.note", entity_type="impact",
                           entity_id=h.impacts["c1_a"], after={"text": "later"})
        s.commit()
    assert run_tracker(sqlite_url, "export", "verify", str(manifest)).returncode == 0

    # Another database (where the head is not) fails; --files-only skips the database.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    upgrade(other)
    r = run_tracker(other, "export", "verify", str(manifest))
    assert r.returncode == 1 and "FAILED audit chain" in r.stdout and "no longer in the chain" in r.stdout
    assert run_tracker(other, "export", "verify", "--files-only", str(manifest)).returncode == 0

    # A rewritten event breaks the chain: verify fails, and a new export is refused. The edit goes
    # past the append-only trigger the way anyone with the database file can (drop it, edit, put it
    # back): the trigger stops accidents and casual edits, the hash chain catches the rest.
    with eng.begin() as conn:
        trigger = conn.execute(sa.text(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'audit_event_no_update'")).scalar_one()
        conn.execute(sa.text("DROP TRIGGER audit_event_no_update"))
        conn.execute(sa.text("UPDATE audit_event SET actor = 'mallory@example.com' WHERE seq = 3"))
        conn.execute(sa.text(trigger))
    r = run_tracker(sqlite_url, "export", "verify", str(manifest))
    assert r.returncode == 1 and "does not verify" in r.stdout and "#3" in r.stdout
    args = ["export", "--from", h.period[0].isoformat(), "--to", h.period[1].isoformat(), "--format", "csv"]
    r = run_tracker(sqlite_url, *args, "--output", str(tmp_path / "refused"))
    assert r.returncode == 1 and "does NOT verify" in r.stderr and not (tmp_path / "refused").exists()
    r = run_tracker(sqlite_url, *args, "--output", str(tmp_path / "forced"), "--allow-broken-chain")
    assert r.returncode == 0 and "WARNING" in r.stderr
    forced = json.loads((tmp_path / "forced" / "manifest.json").read_text())
    assert forced["audit_chain"]["verified"] is False and "#3" in forced["audit_chain"]["problem"]
    assert run_tracker(sqlite_url, "export", "verify", str(tmp_path / "forced" / "manifest.json")).returncode == 1
    eng.dispose()


def test_empty_period_and_usage_errors(db_url: str, engine: Engine, tmp_path: Path) -> None:
    h = build_history(engine)
    r = run_tracker(db_url, "export", "--from", "2001-01-01", "--to", "2001-01-31", "--format", "xlsx",
                    "--output", str(tmp_path / "empty.xlsx"))
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "empty.manifest.json").read_text())
    assert m["row_counts"] == {"changes": 0, "impacts": 0, "audit_events": 0}
    from openpyxl import load_workbook

    wb = load_workbook(tmp_path / "empty.xlsx")
    assert [[c.value for c in wb[t][1]] for t in COLUMNS] == [[c.name for c in cols] for cols in
                                                             (CHANGE_COLUMNS, IMPACT_COLUMNS, AUDIT_COLUMNS)]
    period = ["--from", h.period[0].isoformat(), "--to", h.period[1].isoformat()]
    cases = [
        ([*period, "--format", "csv", "--output", str(tmp_path / "a"), "--source", "nope"], "unknown source"),
        ([*period, "--format", "csv", "--output", str(tmp_path / "a"), "--sop", "nope"], "unknown SOP"),
        ([*period, "--format", "csv", "--output", str(tmp_path / "a"), "--team", "nope"], "unknown team"),
        (["--from", "2026-02-01", "--to", "2026-01-01", "--format", "csv", "--output", str(tmp_path / "a")],
         "period is empty"),
        (["--from", "2026-13-01", "--to", "2026-01-01", "--format", "csv", "--output", str(tmp_path / "a")],
         "not a date"),
        ([*period, "--format", "pdf", "--output", str(tmp_path / "a")], "--format must be one of"),
        ([*period, "--format", "xlsx", "--zip", "--output", str(tmp_path / "a.xlsx")], "--zip is for csv"),
        ([*period, "--format", "xlsx", "--output", str(tmp_path / "empty.xlsx")], "already exists"),
    ]
    for args, message in cases:
        r = run_tracker(db_url, "export", *args)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
    assert not (tmp_path / "a").exists()
    r = run_tracker(db_url, "export", *period, "--format", "xlsx", "--output", str(tmp_path / "empty.xlsx"), "--force")
    assert r.returncode == 0, r.stderr
    r = run_tracker(db_url, "export", "verify", str(tmp_path / "nothing.json"))
    assert r.returncode == 1 and "no manifest" in r.stderr


def test_a_file_output_without_a_suffix_gets_its_format_s(db_url: str, engine: Engine, tmp_path: Path) -> None:
    h = build_history(engine)
    period = ["--from", h.period[0].isoformat(), "--to", h.period[1].isoformat()]
    for args, data, manifest in ((["--format", "xlsx"], "book.xlsx", "book.manifest.json"),
                                 (["--format", "csv", "--zip"], "bundle.zip", "bundle.manifest.json")):
        stem = data.split(".")[0]
        r = run_tracker(db_url, "export", *period, *args, "--output", str(tmp_path / stem))
        assert r.returncode == 0, r.stderr
        assert not (tmp_path / stem).exists() and (tmp_path / data).is_file()
        assert f"  {data}  sha256 " in r.stdout
        assert json.loads((tmp_path / manifest).read_text())["row_counts"]["changes"] > 0
        v = run_tracker(db_url, "export", "verify", str(tmp_path / manifest))
        assert v.returncode == 0, v.stdout + v.stderr
