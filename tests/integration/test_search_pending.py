"""The crawl queues a source's new text for the search index (search_pending) instead of indexing it while it
checks; a search, the service after each crawl, and a downgrade take the queue in, so what a search finds is
still exactly what is committed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from spiders import KINDS
from tests.support.web_seed import _document, page, seed
from tracker.check.record import record_check
from tracker.check.state import Fetch
from tracker.config import Settings
from tracker.service.crawler import CrawlResult
from tracker.service.jobs import Service
from tracker.store.db import alembic_config, make_engine, session_scope, upgrade
from tracker.store.models import SearchDoc, SearchPending, Source, Version
from tracker.store.search import index_pending, pending_count, search, version_text


def source_docs(session: Session) -> dict[str, str]:
    return {d.ref: d.body for d in session.exec(select(SearchDoc).where(SearchDoc.kind == "source"))}


def newest(session: Session, source_id: str) -> Version:
    v = session.exec(select(Version).where(Version.source_id == source_id).order_by(col(Version.id).desc())).first()
    assert v is not None
    return v


def a_phrase(version: Version) -> str:
    for line in version_text(version.blocks).splitlines():
        words = line.split()
        for i in range(len(words) - 2):
            if all(w.isalpha() and len(w) > 3 for w in words[i:i + 3]):
                return " ".join(words[i:i + 3])
    raise AssertionError("no line of three long words")


def test_the_crawl_queues_current_texts_and_a_search_takes_them_in(engine: Engine) -> None:
    with session_scope(engine) as s:
        seed(s, versions=3)
    with Session(engine) as s:
        queued = {r.source_id: r.version_id for r in s.exec(select(SearchPending))}
        # One row per source, holding its newest version (each new version replaced the one before).
        assert queued == {sid: newest(s, sid).id for sid in ("reddit-community-guidelines", "x-privacy-policy")}
        assert source_docs(s) == {}  # nothing tokenised while checking
        phrase = a_phrase(newest(s, "x-privacy-policy"))
        hits = search(s, f'"{phrase}"')
        assert "x-privacy-policy" in [h.ref for h in hits if h.kind == "source"], (phrase, hits)
    with Session(engine) as s:  # committed by the search: the queue is empty and the index holds the texts
        assert pending_count(s) == 0
        docs = source_docs(s)
        assert set(docs) == {"reddit-community-guidelines", "x-privacy-policy"}
        assert docs["x-privacy-policy"] == version_text(newest(s, "x-privacy-policy").blocks)


def test_a_newer_version_replaces_the_queued_one_and_the_index_follows(engine: Engine) -> None:
    with session_scope(engine) as s:
        seed(s, versions=2)
    with session_scope(engine) as s:
        assert index_pending(s) == 2
    with session_scope(engine) as s:  # a third version of one source: queued again, the index still the old text
        src = s.get(Source, "x-privacy-policy")
        assert src is not None
        record_check(kinds=KINDS, session=s, source=src, fetch=Fetch(
            source_id=src.id, url=src.url, status=200, headers={"Content-Type": "text/html; charset=utf-8"},
            body=page(_document(src.id), 2).encode(), fetched_at=datetime.now(UTC)))
    with Session(engine) as s:
        assert [(r.source_id, r.version_id) for r in s.exec(select(SearchPending))] == [
            ("x-privacy-policy", newest(s, "x-privacy-policy").id)]
        before = source_docs(s)["x-privacy-policy"]
        assert before != version_text(newest(s, "x-privacy-policy").blocks)
        assert index_pending(s, commit=True) == 1
        assert source_docs(s)["x-privacy-policy"] == version_text(newest(s, "x-privacy-policy").blocks)
        assert pending_count(s) == 0


def test_a_queue_row_replaced_meanwhile_stays_for_its_newer_version(engine: Engine,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import tracker.store.search as search_module

    with session_scope(engine) as s:
        seed(s, versions=2)
    real = search_module.index_version
    indexed: list[int | None] = []

    def meanwhile(*, session: Session, version: Version) -> None:
        real(session=session, version=version)
        indexed.append(version.id)
        if version.source_id == "x-privacy-policy" and len(indexed) <= 2:
            # The crawl queues a newer version of this source while the indexer works on the old one.
            session.execute(sa.update(SearchPending).where(col(SearchPending.source_id) == "x-privacy-policy")
                            .values(version_id=(version.id or 0) + 1000))

    monkeypatch.setattr(search_module, "index_version", meanwhile)
    with Session(engine) as s:
        # The delete is of (source, the version indexed) only, so the newer row survives it and is taken
        # in the next round; a queued version that no longer exists is dropped, not retried for ever.
        assert index_pending(s, commit=True) == 3
        assert len(indexed) == 2
        assert pending_count(s) == 0


def test_the_service_indexes_after_each_crawl(engine: Engine, db_url: str) -> None:
    with session_scope(engine) as s:
        seed(s, versions=2)

    class NoCrawl:
        def run(self, source_ids: list[str], *, timeout: float, abandon: threading.Event) -> CrawlResult:
            return CrawlResult(exit_code=0, seconds=0.0, output="checked")

    svc = Service(settings=Settings(database_url=db_url), engine=engine, crawler=NoCrawl())
    svc.run_batch(["x-privacy-policy"])
    with Session(engine) as s:
        assert pending_count(s) == 0
        assert set(source_docs(s)) == {"reddit-community-guidelines", "x-privacy-policy"}


def test_downgrading_past_0022_indexes_the_queue_first(database_url: str) -> None:
    upgrade(database_url)
    eng = make_engine(database_url)
    try:
        with session_scope(eng) as s:
            seed(s, versions=2)
        command.downgrade(alembic_config(database_url), "0021")
        with eng.connect() as conn:
            assert "search_pending" not in sa.inspect(conn).get_table_names()
            refs = {r[0] for r in conn.execute(sa.text("SELECT ref FROM search_doc WHERE kind = 'source'"))}
        assert refs == {"reddit-community-guidelines", "x-privacy-policy"}
        upgrade(database_url)
        with Session(eng) as s:
            assert pending_count(s) == 0
    finally:
        eng.dispose()
