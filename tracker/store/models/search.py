"""The search index's rows: one per change and one per source (its current text).

The full-text part is dialect-specific and lives in migration 0018: on SQLite an FTS5 table
`search_fts` kept in step with this table by triggers, on PostgreSQL a generated `tsv` tsvector
column with a GIN index. tracker.store.search writes and queries both.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tracker.store.db import UTCDateTime


class SearchDoc(SQLModel, table=True):
    """Searchable text: a change's inserted and deleted words and sections, or a source's current text."""

    __tablename__ = "search_doc"
    __table_args__ = (sa.UniqueConstraint("kind", "ref", name="uq_search_doc_kind_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=10)  # change | source
    ref: str = Field(max_length=120)  # the change id, or the source id
    source_id: str = Field(max_length=120, index=True)
    at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))
    title: str = ""
    body: str = ""


class SearchPending(SQLModel, table=True):
    """A source whose newest version is not in the search index yet: the crawl queues it (one small row
    instead of tokenising the whole text while it checks), and tracker.store.search.index_pending
    indexes it, run by the service after each crawl and by every search before it reads."""

    __tablename__ = "search_pending"

    source_id: str = Field(max_length=120, primary_key=True)
    version_id: int
