"""Full-text search over changes and the current text of every source, on SQLite and PostgreSQL.

A change is indexed in the transaction that records it (tracker.check.record calls index_change).
A source's current text is not: tokenising ~60 KB of text cost a first check more than a third of
its time, so the crawl only queues the source (queue_version: one row in search_pending) and
index_pending takes the queue in, run by the service after each crawl and by search() before it
reads. What a search finds is therefore exactly what is committed, as before; what waits is the
work, not the result. The text comes from the stored JSON forms (Version.blocks, Change.diff), read
here without the extractor so that migration 0018 can backfill with the same functions.

SQLite uses an FTS5 table (porter stemming) that triggers keep equal to search_doc; PostgreSQL a
generated tsvector ('english') with a GIN index. A query is words and "quoted phrases", all of
which must match; it is never passed to either engine's query syntax as is (an FTS5 query with a
stray quote or NEAR( is an error, so each term is quoted).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlmodel import Session, col, select

from tracker.store.db import UTCDateTime, conflict_insert, conflict_insert_for, hot_statement, table_of
from tracker.store.models import Change, SearchDoc, SearchPending, Version

# Text indexed per document; a bigger source's tail is not searchable (TRACKER_MAX_TEXT_BYTES bounds it anyway).
MAX_BODY_CHARS = 2_000_000
MAX_QUERY_CHARS = 500
MAX_TERMS = 20
KINDS = ("change", "source")
# Marks around matched words in snippets; control characters are stripped from indexed text.
HIT_START, HIT_END = "\x02", "\x03"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TERM = re.compile(r'"([^"]*)"|(\S+)')
_WORD = re.compile(r"\w+", re.UNICODE)


def _clean(text: str) -> str:
    return _CONTROL.sub(" ", text)[:MAX_BODY_CHARS]


def version_text(blocks: dict[str, Any] | list[Any]) -> str:
    """A version's text, block by block, from Version.blocks' stored form (either layout)."""
    if isinstance(blocks, list):
        return "\n".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict))
    return "\n".join(str(b[1]) for b in blocks.get("blocks", ()) if len(b) > 1)


def change_text(diff: Mapping[str, Any]) -> str:
    """The words a change inserted and deleted, from Change.diff's stored form."""
    parts: list[str] = []
    for c in diff.get("changes", ()):
        if c.get("op") == "added":
            parts.append(str(c.get("new") or ""))
        elif c.get("op") == "removed":
            parts.append(str(c.get("old") or ""))
        else:
            parts.extend(str(w[1]) for w in c.get("words", ()) if w and w[0] in ("insert", "delete"))
    return "\n".join(p for p in parts if p)


def _upsert(session: Session, *, kind: str, ref: str, source_id: str, at: datetime, title: str,
            body: str) -> None:
    insert = conflict_insert(session, SearchDoc)
    if insert is not None:
        # One INSERT ... ON CONFLICT DO UPDATE on (kind, ref) rather than a lookup (with the autoflush
        # before it) and then an INSERT or UPDATE: every new version of every source comes here.
        values = {"at": at, "title": _clean(title), "body": _clean(body)}
        session.execute(insert.values(kind=kind, ref=ref, source_id=source_id, **values)
                        .on_conflict_do_update(index_elements=["kind", "ref"], set_=values))
        return
    doc = session.exec(select(SearchDoc).where(SearchDoc.kind == kind, SearchDoc.ref == ref)).first()
    if doc is None:
        doc = SearchDoc(kind=kind, ref=ref, source_id=source_id, at=at)
    doc.at, doc.title, doc.body = at, _clean(title), _clean(body)
    session.add(doc)


def index_version(*, session: Session, version: Version) -> None:
    """Make a source's newest version its searchable current text (in the caller's transaction)."""
    _upsert(session, kind="source", ref=version.source_id, source_id=version.source_id, at=version.created_at,
            title=version.source_id, body=version_text(version.blocks))


def queue_version(*, session: Session, source_id: str, version_id: int) -> None:
    """Queue a source's newest version for the index (in the caller's transaction): one small row,
    replaced by a newer version of the same source before it is taken in."""
    insert = hot_statement(session, "queue version", _queue_insert)
    if insert is not None:
        session.connection().execute(insert, {"source_id": source_id, "version_id": version_id})
        return
    row = session.get(SearchPending, source_id) or SearchPending(source_id=source_id, version_id=0)
    row.version_id = version_id
    session.add(row)


def _queue_insert(dialect: str) -> Any:
    insert = conflict_insert_for(dialect, table_of(SearchPending))
    if insert is None:
        return None
    return insert.on_conflict_do_update(index_elements=["source_id"],
                                        set_={"version_id": insert.excluded.version_id})


def pending_count(session: Session) -> int:
    """How many sources' current texts wait for the index."""
    return int(session.exec(select(sa.func.count()).select_from(SearchPending)).one())


def index_pending(session: Session, *, batch: int = 50, commit: bool = False) -> int:
    """Take the queued current texts into the index, oldest queue first, in the caller's session;
    with commit=True each batch is committed, so a long backlog never holds a write lock for long.
    A queue row replaced by a newer version meanwhile stays queued for it. Returns how many were indexed."""
    done = 0
    while True:
        rows = session.exec(select(SearchPending.source_id, SearchPending.version_id)
                            .order_by(col(SearchPending.version_id)).limit(batch)).all()
        if not rows:
            return done
        for version in session.exec(select(Version).where(col(Version.id).in_([vid for _, vid in rows]))):
            index_version(session=session, version=version)
        # Only (source, the version indexed): a row the crawl replaced meanwhile stays for its newer version;
        # a queued version that no longer exists is dropped with the rest.
        session.execute(sa.delete(SearchPending).where(
            sa.tuple_(col(SearchPending.source_id), col(SearchPending.version_id)).in_([tuple(r) for r in rows])))
        done += len(rows)
        if commit:
            session.commit()
        else:
            session.flush()


def index_change(*, session: Session, change: Change) -> None:
    """Make a change's inserted and deleted words and its sections searchable."""
    _upsert(session, kind="change", ref=str(change.id), source_id=change.source_id, at=change.detected_at,
            title="; ".join(change.sections), body=change_text(change.diff))


def terms(query: str) -> list[str]:
    """The words and quoted phrases of a query, each as plain words (at most MAX_TERMS)."""
    out: list[str] = []
    for phrase, word in _TERM.findall(query[:MAX_QUERY_CHARS]):
        words = _WORD.findall(phrase or word)
        if words:
            out.append(" ".join(words))
    return out[:MAX_TERMS]


@dataclass
class Hit:
    """One search result: what it is, when, and a snippet with matches between HIT_START and HIT_END."""

    kind: str
    ref: str
    source_id: str
    at: datetime
    title: str
    snippet: str

    @property
    def url(self) -> str:
        return f"/changes/{self.ref}" if self.kind == "change" else f"/sources/{quote(self.ref, safe='')}"

    def snippet_parts(self) -> list[tuple[bool, str]]:
        """The snippet as (matched, text) runs, for templates that escape each run."""
        parts: list[tuple[bool, str]] = []
        for i, chunk in enumerate(re.split(f"[{HIT_START}{HIT_END}]", self.snippet)):
            if chunk:
                parts.append((i % 2 == 1, chunk))
        return parts

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "source_id": self.source_id, "at": self.at.isoformat(),
                "title": self.title, "url": self.url,
                "snippet": self.snippet.replace(HIT_START, "[").replace(HIT_END, "]")}


@dataclass
class SearchFilters:
    """What narrows a search: kind (change | source), a source id, and a date range on `at`."""

    kind: str = ""
    source: str = ""
    since: datetime | None = None
    until: datetime | None = None


def _where(f: SearchFilters, params: dict[str, Any]) -> str:
    clauses: list[str] = []
    if f.kind:
        clauses.append("d.kind = :kind")
        params["kind"] = f.kind
    if f.source:
        clauses.append("d.source_id = :source")
        params["source"] = f.source
    if f.since is not None:
        clauses.append("d.at >= :since")
        params["since"] = f.since
    if f.until is not None:
        clauses.append("d.at < :until")
        params["until"] = f.until
    return "".join(f" AND {c}" for c in clauses)


def _sqlite_sql(words: list[str], f: SearchFilters, limit: int) -> tuple[str, dict[str, Any]]:
    match = " ".join('"' + t.replace('"', '""') + '"' for t in words)
    params: dict[str, Any] = {"match": match, "limit": limit, "s": HIT_START, "e": HIT_END}
    sql = ("SELECT d.kind, d.ref, d.source_id, d.at, d.title, snippet(search_fts, 1, :s, :e, '…', 24) "
           "FROM search_fts JOIN search_doc d ON d.id = search_fts.rowid WHERE search_fts MATCH :match"
           + _where(f, params) + " ORDER BY bm25(search_fts, 5.0, 1.0), d.at DESC LIMIT :limit")
    return sql, params


def _postgres_sql(words: list[str], f: SearchFilters, limit: int) -> tuple[str, dict[str, Any]]:
    # Each term as a phrase (<-> between its words), all ANDed: the same meaning as the FTS5 query.
    params: dict[str, Any] = {"limit": limit, "opts": f"StartSel={HIT_START}, StopSel={HIT_END}, MaxWords=30, "
                              "MinWords=10, MaxFragments=2, FragmentDelimiter= … "}
    parts = []
    for i, t in enumerate(words):
        params[f"t{i}"] = t
        parts.append(f"phraseto_tsquery('english', :t{i})")
    query = " && ".join(parts)
    sql = (f"WITH q AS (SELECT {query} AS q) SELECT d.kind, d.ref, d.source_id, d.at, d.title, "
           "ts_headline('english', left(d.body, 200000), q.q, :opts) "
           "FROM search_doc d, q WHERE d.tsv @@ q.q" + _where(f, params)
           + " ORDER BY ts_rank(d.tsv, q.q) DESC, d.at DESC LIMIT :limit")
    return sql, params


def catch_up(session: Session) -> int:
    """index_pending for a reader: commits what it indexed; when the database is busy (SQLite's one
    writer held past its timeout) it leaves the queue for the next reader and the search reads the
    index as it is. Returns how many texts were indexed."""
    try:
        done = index_pending(session, commit=True)
    except sa.exc.OperationalError as exc:
        session.rollback()
        logging.getLogger(__name__).warning("search: could not index the queued texts now (%s); "
                                            "searching the index as it is", str(exc).splitlines()[0])
        return 0
    return done


def search(session: Session, query: str, *, filters: SearchFilters | None = None, limit: int = 50) -> list[Hit]:
    """Documents matching every word and phrase of the query, best first (none for an empty query).
    Queued current texts are indexed first (catch_up), and that is committed."""
    words = terms(query)
    if not words:
        return []
    catch_up(session)
    f = filters or SearchFilters()
    dialect = session.get_bind().dialect.name
    build = _sqlite_sql if dialect == "sqlite" else _postgres_sql
    sql, params = build(words, f, limit)
    # The dates bind as the tracker's UTC type, so SQLite compares them in its stored (naive UTC) form.
    stmt = sa.text(sql).bindparams(*(sa.bindparam(k, type_=UTCDateTime()) for k in ("since", "until")
                                     if k in params))
    rows: Iterable[Any] = session.connection().execute(stmt, params).all()
    return [Hit(r[0], r[1], r[2], _as_datetime(r[3]), r[4], r[5] or "") for r in rows]


def _as_datetime(value: Any) -> datetime:
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(at, datetime):
        raise TypeError(f"search_doc.at is {type(value).__name__}, not a timestamp")
    return at if at.tzinfo else at.replace(tzinfo=UTC)
