"""The export against hostile text and careless operators: the CSV formula guard on every text cell
and line (and exactly reversible, so `export verify --rows` passes), `--force` replacing only an
earlier export's own files, and manifests that list nothing or hold malformed entries."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.conftest import run_tracker
from tests.e2e.test_export import _change, _direct_impact
from tracker.audit import trail as audit
from tracker.check.blocks import Block
from tracker.export.formats import defuse, undefuse
from tracker.impacts.workflow import mark_impact
from tracker.store.db import session_scope, utcnow
from tracker.store.models import Sop, Source

HEADING = '=HYPERLINK("http://evil.example/x","click")'
ACTORS = ("'=evil@example.com", "-2+3@example.com", "'plain@example.com")
NOTE = "first line is fine\n=cmd|' /C calc'!A0\n'quoted line"


def hostile_history(engine: Engine) -> None:
    at = utcnow() - timedelta(hours=1)
    with session_scope(engine) as s:
        s.add(Source(id="evil", name="@SUM(1+1)", url="https://evil.example/policy"))
        s.add(Sop(id="sop-x", title="'quoted title", owner="ana@example.com",
                  watches=[{"source": "evil", "sections": ["*"], "keywords": []}]))
        s.flush()
        old = [Block(kind="p", text="Old.", path=(HEADING,)), Block(kind="p", text="Same.", path=("+Fees",))]
        new = [Block(kind="p", text="New.", path=(HEADING,)), Block(kind="p", text="Other.", path=("+Fees",))]
        change = _change(s, "evil", at, old, new)
        impact = _direct_impact(s, change, "sop-x", at)
        for actor in ACTORS:
            audit.append_event(session=s, actor=actor, action="source.note", entity_type="source",
                               entity_id="evil", after={"note": "=1+1", "n": -5}, at=at)
    with session_scope(engine) as s:
        mark_impact(session=s, impact_id=impact.id, by=ACTORS[0], status="dismissed", note=NOTE)


def period() -> list[str]:
    today = utcnow().date()
    return ["--from", (today - timedelta(days=1)).isoformat(), "--to", today.isoformat()]


def export_csv(db_url: str, out: Path, *args: str) -> None:
    r = run_tracker(db_url, "export", *period(), "--format", "csv", "--output", str(out), *args)
    assert r.returncode == 0, r.stderr


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("text", ["", "plain", "=1", "'", "''=x", "a\n=b\n'c\n+d", "\t=x", "-", "\n=\n"])
def test_the_guard_is_exactly_reversible(text: str) -> None:
    guarded = defuse(text)
    assert undefuse(guarded) == text
    assert not any(line.startswith(("=", "+", "-", "@", "\t", "\r")) for line in guarded.split("\n"))


def test_every_text_cell_and_line_is_guarded_and_rows_still_verify(db_url: str, engine: Engine,
                                                                     tmp_path: Path) -> None:
    hostile_history(engine)
    out = tmp_path / "csv"
    export_csv(db_url, out)
    changes, impacts, events = (rows(out / f"{t}.csv") for t in ("changes", "impacts", "audit_events"))
    assert changes[0]["sections"] == f"'{HEADING}\n'+Fees"
    assert changes[0]["source_name"] == "'@SUM(1+1)"
    note = impacts[0]["decision_note"]
    assert note == "first line is fine\n'=cmd|' /C calc'!A0\n''quoted line"
    assert impacts[0]["sop_title"] == "''quoted title"
    assert {e["actor"] for e in events} >= {"''=evil@example.com", "'-2+3@example.com", "''plain@example.com"}
    for table in (changes, impacts, events):
        for row in table:
            for cell in row.values():
                assert not any(line.startswith(("=", "+", "-", "@")) for line in cell.split("\n")), cell
    r = run_tracker(db_url, "export", "verify", "--rows", str(out / "manifest.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok     audit rows: all" in r.stdout


def _export(db_url: str, out: Path, fmt: str = "csv", *args: str) -> tuple[int, str]:
    r = run_tracker(db_url, "export", *period(), "--format", fmt, "--output", str(out), *args)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stderr


def test_force_never_wipes_a_folder_that_merely_holds_a_manifest(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"my": "own file"}')
    (folder / "thesis.docx").write_text("years of work")
    code, err = _export(db_url, folder, "csv", "--force")
    assert code == 2 and "is not a policy-tracker export manifest" in err and "refusing to replace" in err, err
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "thesis.docx"]
    assert (folder / "thesis.docx").read_text() == "years of work"


def test_force_replaces_only_the_earlier_exports_files(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    assert _export(db_url, folder, "jsonl")[0] == 0
    (folder / "notes.txt").write_text("mine")
    code, err = _export(db_url, folder, "csv")
    assert code == 2 and "pass --force" in err
    code, err = _export(db_url, folder, "csv", "--force")
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == [
        "audit_events.csv", "changes.csv", "impacts.csv", "manifest.json", "notes.txt"]
    assert (folder / "notes.txt").read_text() == "mine"
    r = run_tracker(db_url, "export", "verify", str(folder / "manifest.json"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_force_refuses_to_overwrite_a_file_the_earlier_export_did_not_write(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    assert _export(db_url, folder, "jsonl")[0] == 0
    (folder / "changes.csv").write_text("my own spreadsheet")
    code, err = _export(db_url, folder, "csv", "--force")
    assert code == 2 and f"{folder / 'changes.csv'} is not a file of the earlier export" in err, err
    assert (folder / "changes.csv").read_text() == "my own spreadsheet"
    assert (folder / "changes.jsonl").is_file()


def test_force_on_a_workbook_needs_its_manifest(db_url: str, tmp_path: Path) -> None:
    book = tmp_path / "budget.xlsx"
    book.write_text("someone's workbook")
    code, err = _export(db_url, book, "xlsx", "--force")
    assert code == 2 and "is not an earlier export (no budget.manifest.json" in err, err
    assert book.read_text() == "someone's workbook"
    book.unlink()
    assert _export(db_url, book, "xlsx")[0] == 0
    assert _export(db_url, book, "xlsx", "--force")[0] == 0


def test_a_symlink_as_output_is_refused(db_url: str, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    code, err = _export(db_url, tmp_path / "link", "csv")
    assert code == 2 and "is a symbolic link" in err, err
    assert list(real.iterdir()) == []


@pytest.mark.parametrize(("files", "expected"), [
    ([], "it lists no files, so there is nothing to verify"),
    ("changes.csv", "`files` is not a list"),
    (["changes.csv"], "files[0] is not an object"),
    ([{"path": 3, "sha256": "x", "bytes": 1}], "files[0].path is missing or not a string"),
    ([{"path": "a.zip", "sha256": "x", "bytes": 1, "members": [{"path": "m"}]}],
     "files[0].members[0].sha256 is missing"),
])
def test_verify_fails_a_manifest_with_no_or_malformed_files(sqlite_url: str, tmp_path: Path, files: object,
                                                             expected: str) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"generator": {"name": "policy-tracker"}, "files": files}))
    r = run_tracker(sqlite_url, "export", "verify", "--files-only", str(manifest))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert expected in r.stderr and "verified" not in r.stdout
