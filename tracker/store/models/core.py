"""Sources, their check state, raw snapshots, extracted versions and changes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tracker.store.db import UTCDateTime, utcnow


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


def _json(default: Any = None) -> Any:
    factory = (lambda: list(default)) if isinstance(default, list) else (lambda: dict(default or {}))
    return Field(default_factory=factory, sa_column=sa.Column(sa.JSON(), nullable=False))


class SourceBase(SQLModel):
    """What a sources file declares about one source."""

    name: str
    url: str
    kind: str = "html"
    schedule: str | None = None


class Source(SourceBase, table=True):
    """A watched policy page, synced from the sources file; disabled, never deleted."""

    id: str = Field(primary_key=True, max_length=120)
    select: list[str] = _json([])
    remove: list[str] = _json([])
    tags: list[str] = _json([])
    # Per-source overrides: download_delay, concurrency, timeout, headers.
    options: dict[str, Any] = _json({})
    enabled: bool = True
    final_url: str | None = None
    # Where the source is declared: `file` (sources sync manages it) or `ui` (edited in the browser;
    # file syncs leave it alone).
    managed_by: str = Field(default="file", sa_column=sa.Column(sa.String(8), nullable=False,
                                                                server_default="file"))
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))


class CheckState(SQLModel, table=True):
    """The last check of a source: validators for conditional GET, errors, failure streak."""

    __tablename__ = "check_state"

    source_id: str = Field(foreign_key="source.id", primary_key=True)
    last_checked_at: datetime | None = _ts()
    last_success_at: datetime | None = _ts()
    last_result: str | None = None  # new | changed | unchanged | not_modified | failed
    last_status: int | None = None
    last_error: str | None = None
    error_since: datetime | None = _ts()
    consecutive_failures: int = 0
    checks: int = 0
    etag: str | None = None
    last_modified: str | None = None
    # What a kind remembers between checks beyond validators (eCFR: the newest edition recorded).
    cursor: str | None = None
    # "<version id>:<its text hash, 16 hex>:<digest>": the fingerprint of the selected part of the last
    # page read, pinned to the version its text was; the next fetch with the same digest against that
    # same baseline is unchanged without being read in full (tracker.check.record; kinds whose
    # extractor computes one, html today).
    fingerprint: str | None = Field(default=None, max_length=80)


class Blob(SQLModel, table=True):
    """Raw bytes, compressed (Zstandard; zlib before 2026-12), addressed by the SHA-256 of the raw content."""

    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    data: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))


class Snapshot(SQLModel, table=True):
    """One fetched response worth keeping: the raw page behind a new version, or a failed one."""

    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(foreign_key="source.id", index=True)
    fetched_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    url: str
    http_status: int | None = None
    headers: dict[str, str] = _json({})
    content_sha256: str | None = Field(default=None, foreign_key="blob.sha256")
    purpose: str = "version"  # version | error (the first of a failing streak) | recovery (its end)
    error: str | None = None


class Version(SQLModel, table=True):
    """Extracted policy text: normalised blocks with heading paths, and the rules that made them.

    blocks is tracker.check.blocks.blocks_to_json's form: {"paths": [[parent, heading], ...],
    "blocks": [[kind, text, path], ...]}, each heading path stored once (migration 0009).
    """

    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(foreign_key="source.id", index=True)
    snapshot_id: int | None = Field(default=None, foreign_key="snapshot.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    text_hash: str = Field(max_length=64, index=True)
    blocks: dict[str, Any] = _json({})
    block_count: int = 0
    rules: dict[str, Any] = _json({})
    rules_hash: str = Field(max_length=64)


class Change(SQLModel, table=True):
    """A real difference between two consecutive versions of a source."""

    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(foreign_key="source.id", index=True)
    from_version_id: int = Field(foreign_key="version.id")
    to_version_id: int = Field(foreign_key="version.id", unique=True)
    detected_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False, index=True)
    )
    # technical: the extraction rules changed, not the policy (never mapped to SOPs).
    technical: bool = False
    # cosmetic: only whitespace, punctuation, quote and dash styles, letter case or link targets changed
    # (tracker.check.cosmetic; mapped only to watches with include_cosmetic).
    cosmetic: bool = Field(default=False, sa_column=sa.Column(sa.Boolean(), nullable=False,
                                                              server_default=sa.false()))
    # The text is an earlier version's again (tracker.check.reverts): that version and when it was made.
    reverts_to_version_id: int | None = Field(default=None, foreign_key="version.id")
    reverts_to_at: datetime | None = _ts()
    # quiet: a revert within the source's flapping window under `flapping: quiet` (never mapped to SOPs).
    quiet: bool = Field(default=False, sa_column=sa.Column(sa.Boolean(), nullable=False,
                                                           server_default=sa.false()))
    sections: list[str] = _json([])
    added: int = 0
    removed: int = 0
    modified: int = 0
    diff: dict[str, Any] = _json({})
    # When the change takes effect, when its text says it was updated, when comments close (when
    # known: from the Federal Register, the eCFR edition, or a sentence of the text), and the
    # sentence or source each came from.
    effective_on: date | None = None
    updated_on: date | None = None
    comments_close_on: date | None = None
    dates_from: dict[str, str] | None = Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))
    # A stream's entry this change adds or updates: {id, title, url, published, fields}; None for documents.
    entry: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))


class StreamEntryRecord(SQLModel, table=True):
    """An entry a stream (feed, Federal Register query) has listed: known ids are not news again."""

    __tablename__ = "stream_entry"
    __table_args__ = (sa.UniqueConstraint("source_id", "entry_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(foreign_key="source.id", index=True)
    entry_id: str = Field(max_length=500)
    title: str
    url: str | None = None
    published: str | None = Field(default=None, max_length=64, index=True)
    content_hash: str = Field(max_length=64)
    version_id: int | None = Field(default=None, foreign_key="version.id")
    first_seen_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    last_seen_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
