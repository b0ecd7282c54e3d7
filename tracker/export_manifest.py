"""Reading an export back: the manifest, re-hashing its files, and checking the audit chain head.

Also the pieces the export shares with its verification: the error type, keyset pagination
and a fast full verification of the audit chain.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from tracker import audit
from tracker.export_writers import sha256_file
from tracker.models import AuditEvent

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
    """tracker.audit.verify, with a fast first pass over Core rows for long chains.

    The fast pass recomputes every hash and link with tracker.audit.canonical (no ORM objects:
    ~20x faster on a million events). When it finds anything wrong, or the expected head is not
    where it should be, the answer (and its message) comes from tracker.audit.verify itself.
    """
    want_seq, want_hash = audit.parse_expected_head(expect_head) if expect_head else (None, None)
    t = AuditEvent.__table__  # type: ignore[attr-defined]
    stmt = sa.select(t.c.seq, t.c.at, t.c.actor, t.c.action, t.c.entity_type, t.c.entity_id, t.c.before,
                     t.c.after, t.c.prev_hash, t.c.hash)
    prev_hash, prev_seq, found = audit.GENESIS, 0, want_hash is None or want_hash == audit.GENESIS
    sha256, canonical = hashlib.sha256, audit.canonical
    for seq, at, actor, action, entity_type, entity_id, before, after, prev, digest in keyset(
            session, stmt, t.c.seq, batch=10_000):
        body = canonical(seq=seq, at=at, actor=actor, action=action, entity_type=entity_type,
                         entity_id=entity_id, before=before, after=after, prev_hash=prev)
        if seq != prev_seq + 1 or prev != prev_hash or sha256(prev.encode() + body).hexdigest() != digest:
            return audit.verify(session, expect_head=expect_head)
        if digest == want_hash:
            found = want_seq is None or want_seq == seq
        prev_hash, prev_seq = digest, seq
    if not found:
        return audit.verify(session, expect_head=expect_head)
    warnings = audit._warnings(session)  # a disabled append-only trigger weakens the evidence
    return audit.Verification(True, prev_seq, head_seq=prev_seq or None,
                              head_hash=prev_hash if prev_seq else None, warnings=warnings)


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

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files) and self.chain_ok is not False


def load_manifest(path: Path) -> dict[str, Any]:
    """Read a manifest, raising ExportError when it is missing or not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"no manifest at {path}") from None
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path} is not a readable JSON manifest: {exc}") from None
    if not isinstance(data, dict) or data.get("generator", {}).get("name") != GENERATOR or "files" not in data:
        raise ExportError(f"{path} is not a {GENERATOR} export manifest (no generator/files)")
    return data


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


def verify_export(*, manifest_path: Path, session: Session | None) -> ExportVerification:
    """Re-hash an export's files and (given a session) check its chain head against the database."""
    manifest = load_manifest(manifest_path)
    files = check_files(manifest, manifest_path.parent)
    if session is None:
        return ExportVerification(files, None, "audit chain not checked (no database)")
    ok, message = check_chain(session=session, manifest=manifest)
    return ExportVerification(files, ok, message)
