"""Reading an export back: the manifest, re-hashing its files, checking the audit chain head, and
(--rows) checking every exported audit event against the database.

Also the pieces the export shares with its verification: the error type, keyset pagination
and a fast full verification of the audit chain.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from tracker.audit import trail as audit
from tracker.export.formats import sha256_file, undefuse
from tracker.store.models import AuditEvent

GENERATOR = "policy-tracker"
MANIFEST_VERSION = 1
BATCH = 5000


class ExportError(ValueError):
    """The export was refused; the message says why and what to do."""


class ChainNotVerified(ExportError):
    """The audit chain does not verify, so the export was refused."""


def keyset(session: Session, stmt: Any, key: Any, *, batch: int = BATCH) -> Iterator[Any]:
    """Rows of stmt in key order, fetched batch by batch (key must be unique and first in the row)."""
    last: Any = None
    while True:
        page = stmt if last is None else stmt.where(key > last)
        rows = session.execute(page.order_by(key).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1][0]


def verify_chain(session: Session, *, expect_head: str | None = None) -> audit.Verification:
    """The audit chain check an export records and re-checks (tracker.audit.trail.verify)."""
    return audit.verify(session, expect_head=expect_head)


@dataclass
class FileCheck:
    """One file of an export, re-hashed: ok, or what is wrong with it."""

    path: str
    ok: bool
    problem: str | None = None


@dataclass
class ExportVerification:
    """The outcome of `tracker export verify`."""

    files: list[FileCheck]
    chain_ok: bool | None  # None: not checked (no database)
    chain_message: str
    rows_ok: bool | None = None  # None: not checked (no --rows)
    rows_message: str = "audit rows not checked against the database (--rows)"

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files) and self.chain_ok is not False and self.rows_ok is not False


def load_manifest(path: Path) -> dict[str, Any]:
    """Read a manifest, raising ExportError when it is missing or not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"no manifest at {path}") from None
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path} is not a readable JSON manifest: {exc}") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path} is not a {GENERATOR} export manifest (not a JSON object)")
    generator = data.get("generator")
    if not isinstance(generator, dict) or generator.get("name") != GENERATOR or "files" not in data:
        raise ExportError(f"{path} is not a {GENERATOR} export manifest (no generator/files)")
    problem = _files_problem(data["files"])
    if problem:
        raise ExportError(f"{path} is not a usable {GENERATOR} export manifest: {problem}")
    return data


def _entry_problem(entry: Any, where: str) -> str | None:
    if not isinstance(entry, dict):
        return f"{where} is not an object with path, sha256 and bytes"
    for key, kind in (("path", str), ("sha256", str), ("bytes", int)):
        value = entry.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or value == "":
            return f"{where}.{key} is missing or not a {'number' if kind is int else 'string'}"
    return None


def _files_problem(files: Any) -> str | None:
    """What is wrong with a manifest's `files` list (None: every entry is well formed)."""
    if not isinstance(files, list):
        return "`files` is not a list"
    if not files:
        return "it lists no files, so there is nothing to verify"
    for n, entry in enumerate(files):
        problem = _entry_problem(entry, f"files[{n}]")
        members = entry.get("members") if isinstance(entry, dict) else None
        if problem is None and members is not None:
            if not isinstance(members, list):
                problem = f"files[{n}].members is not a list"
            else:
                problem = next((p for m, member in enumerate(members)
                                if (p := _entry_problem(member, f"files[{n}].members[{m}]"))), None)
        if problem:
            return problem
    return None


def check_files(manifest: dict[str, Any], base: Path) -> list[FileCheck]:
    """Re-hash every file (and zip member) the manifest lists."""
    results: list[FileCheck] = []
    for entry in manifest["files"]:
        rel = str(entry.get("path", ""))
        path = (base / rel).resolve()
        if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
            results.append(FileCheck(rel, False, "the manifest names a path outside the export folder"))
            continue
        if not path.is_file():
            results.append(FileCheck(rel, False, "missing: the file is not there"))
            continue
        sha, size = sha256_file(path)
        if sha != entry.get("sha256"):
            results.append(FileCheck(rel, False, f"changed since export: SHA-256 is {sha}, the manifest says "
                                                 f"{entry.get('sha256')} ({size} bytes, was {entry.get('bytes')})"))
            continue
        results.append(FileCheck(rel, True))
        for member in entry.get("members") or []:
            name = f"{rel}!{member['path']}"
            try:
                with zipfile.ZipFile(path) as zf, zf.open(member["path"]) as f:
                    h = hashlib.sha256()
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
            except (KeyError, zipfile.BadZipFile) as exc:
                results.append(FileCheck(name, False, f"unreadable zip member: {exc}"))
                continue
            good = h.hexdigest() == member.get("sha256")
            results.append(FileCheck(name, good, None if good else "zip member changed since export"))
    return results


def check_chain(*, session: Session, manifest: dict[str, Any]) -> tuple[bool, str]:
    """The recorded head must still be in the chain (same seq, same hash) and the chain must verify."""
    recorded = manifest.get("audit_chain") or {}
    head_seq, head_hash = recorded.get("head_seq"), recorded.get("head_hash")
    expect = f"{head_seq}:{head_hash}" if head_seq and head_hash else None
    result = verify_chain(session, expect_head=expect)
    notes = "".join(f"; WARNING: {w}" for w in result.warnings)
    if not result.ok:
        return False, f"the audit chain in the database does not verify: {result.problem}{notes}"
    if recorded.get("verified") is False:
        return False, "the chain verifies now, but it did not verify when the export was taken (see the manifest)"
    if expect is None:
        return True, f"the chain verifies ({result.count} events); the export was taken from an empty chain{notes}"
    return True, (f"head #{head_seq} {head_hash} is still in the chain, and the chain verifies "
                  f"({result.count} events, head now #{result.head_seq}){notes}")


_AUDIT_TEXT = ("actor", "action", "entity_type", "entity_id", "prev_hash", "hash", "at_utc_exact")


def _audit_file_rows(manifest: dict[str, Any], base: Path) -> Iterator[dict[str, Any]]:
    """The exported audit events, whatever the format, as dicts with JSON values decoded."""
    fmt = manifest.get("query", {}).get("format")
    for entry in manifest["files"]:
        path = base / entry["path"]
        if fmt == "xlsx":
            from openpyxl import load_workbook

            wb = load_workbook(path, read_only=True)
            rows = wb["audit_events"].iter_rows(values_only=True)
            names = [str(n) for n in next(rows)]
            for values in rows:
                row = dict(zip(names, values, strict=True))
                for key in ("before", "after"):
                    row[key] = json.loads(row[key]) if row[key] else None
                yield row
            wb.close()
            continue
        members = [m["path"] for m in entry.get("members") or []] or [entry["path"]]
        for member in members:
            if not member.startswith("audit_events."):
                continue
            with contextlib.ExitStack() as stack:
                if entry.get("members") is not None:
                    raw = stack.enter_context(stack.enter_context(zipfile.ZipFile(path)).open(member))
                else:
                    raw = stack.enter_context(path.open("rb"))
                text = stack.enter_context(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
                if member.endswith(".jsonl"):
                    for line in text:
                        yield json.loads(line)
                    continue
                for row in csv.DictReader(text):
                    out: dict[str, Any] = {k: undefuse(v) for k, v in row.items() if k in _AUDIT_TEXT}
                    out["seq"] = int(row["seq"])
                    for key in ("before", "after"):
                        out[key] = json.loads(undefuse(row[key])) if row[key] else None
                    yield out


def check_audit_rows(*, session: Session, manifest: dict[str, Any], base: Path) -> tuple[bool, str]:
    """Every exported audit event must recompute to its own hash and be, hash for hash, the database's event."""
    t = AuditEvent.__table__  # type: ignore[attr-defined]
    count = 0
    batch: list[tuple[int, str]] = []

    def flush() -> str | None:
        query = sa.select(t.c.seq, t.c.hash).where(t.c.seq.in_([seq for seq, _ in batch]))
        stored: dict[int, str] = {row[0]: row[1] for row in session.execute(query)}
        for seq, digest in batch:
            if seq not in stored:
                return f"exported audit event #{seq} is not in the database's chain"
            if stored[seq] != digest:
                return f"exported audit event #{seq} has hash {digest}, the database's event #{seq} has {stored[seq]}"
        batch.clear()
        return None

    for row in _audit_file_rows(manifest, base):
        try:
            at = datetime.fromisoformat(row["at_utc_exact"])
            body = audit.canonical(seq=row["seq"], at=at, actor=row["actor"], action=row["action"],
                                   entity_type=row["entity_type"], entity_id=row["entity_id"],
                                   before=row["before"], after=row["after"], prev_hash=row["prev_hash"])
        except (KeyError, TypeError, ValueError) as exc:
            return False, f"exported audit event #{row.get('seq')} cannot be read: {exc}"
        if hashlib.sha256(row["prev_hash"].encode() + body).hexdigest() != row["hash"]:
            return False, (f"exported audit event #{row['seq']} no longer matches its hash: the row was edited "
                           "(or, in XLSX, cut at Excel's 32,767-character limit: check the CSV/JSONL export)")
        batch.append((row["seq"], row["hash"]))
        count += 1
        if len(batch) >= 1000 and (problem := flush()):
            return False, problem
    if batch and (problem := flush()):
        return False, problem
    expected = (manifest.get("row_counts") or {}).get("audit_events")
    if expected is not None and expected != count:
        return False, f"the export holds {count} audit events, the manifest says {expected}"
    return True, f"all {count} exported audit events recompute to their hashes and are the database's events"


def verify_export(*, manifest_path: Path, session: Session | None, rows: bool = False) -> ExportVerification:
    """Re-hash an export's files and (given a session) check its chain head against the database.

    rows=True also recomputes every exported audit event's hash and compares it with the database.
    """
    manifest = load_manifest(manifest_path)
    files = check_files(manifest, manifest_path.parent)
    if session is None:
        return ExportVerification(files, None, "audit chain not checked (no database)")
    ok, message = check_chain(session=session, manifest=manifest)
    result = ExportVerification(files, ok, message)
    if rows:
        if all(f.ok for f in files):
            result.rows_ok, result.rows_message = check_audit_rows(session=session, manifest=manifest,
                                                                   base=manifest_path.parent)
        else:
            result.rows_message = "audit rows not checked: a file failed its SHA-256 check"
    return result
