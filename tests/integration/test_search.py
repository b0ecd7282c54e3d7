"""Full-text search over changes and sources' current text (FTS5 / tsvector), kept in step by the crawl."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tests.support.web_seed import seed
from tracker.store.db import alembic_config, make_engine, session_scope, upgrade
from tracker.store.models import Change, SearchDoc, Version
from tracker.store.search import SearchFilters, change_text, search, terms, version_text


def inserted_phrase(session: Session) -> tuple[Change, str]:
    """Three words a corpus change inserted (taken from the stored diff, not from the index)."""
    for change in session.exec(select(Change).order_by(col(Change.id))).all():
        for c in change.diff.get("changes", []):
            runs = [c.get("new") or ""] if c["op"] == "added" else [
                run for op, run in c.get("words", []) if op == "insert"]
            for run in runs:
                words = run.split()
                for i in range(len(words) - 2):
                    if all(w.isalpha() for w in words[i:i + 3]):
                        return change, " ".join(words[i:i + 3])
    raise AssertionError("no corpus change inserted three words")


def current_only_phrase(session: Session) -> tuple[str, str]:
    """A phrase in some source's newest version that no change's inserted or deleted text holds."""
    changed = " ".join(change_text(c.diff) for c in session.exec(select(Change)).all())
    newest = session.exec(select(Version).order_by(col(Version.id).desc())).first()
    assert newest is not None
    for line in version_text(newest.blocks).splitlines():
        words = [w for w in line.split() if w.isalpha() and len(w) > 3]
        if len(words) >= 4 and words[0] not in changed and words[1] not in changed:
            return newest.source_id, " ".join(words[:2])
    raise AssertionError("every line of the newest version is in some change")


@pytest.fixture
def seeded(engine: Engine) -> None:
    with session_scope(engine) as s:
        seed(s, versions=4)


def test_search_finds_an_inserted_phrase_and_current_text(engine: Engine, seeded: None) -> None:
    with Session(engine) as s:
        change, phrase = inserted_phrase(s)
        hits = search(s, f'"{phrase}"')
        assert any(h.kind == "change" and h.ref == str(change.id) for h in hits), (phrase, hits)
        assert any("\x02" in h.snippet for h in hits)
        source_id, words = current_only_phrase(s)
        hits = search(s, words, filters=SearchFilters(kind="source"))
        assert [h.ref for h in hits] == [source_id] or source_id in [h.ref for h in hits], (words, hits)
        # Date ranges narrow the changes found.
        later = search(s, f'"{phrase}"', filters=SearchFilters(since=change.detected_at + timedelta(seconds=1),
                                                                kind="change"))
        assert str(change.id) not in [h.ref for h in later]
        assert search(s, "zzqqxx nothingmatches") == []


def test_hostile_queries_are_plain_words() -> None:
    assert terms('NEAR(a b) "unclosed') == ["NEAR a", "b", "unclosed"]  # never FTS5 syntax
    assert terms('"") OR * : -x') == ["OR", "x"]
    assert terms("") == []


def test_hostile_query_runs_on_the_database(engine: Engine, seeded: None) -> None:
    with Session(engine) as s:
        for q in ['NEAR(a b', '"', "title:x", "a* OR -b", "'; DROP TABLE change; --"]:
            search(s, q)  # no syntax error from either engine


def test_migration_0018_backfills_and_downgrades(database_url: str) -> None:
    upgrade(database_url)
    eng = make_engine(database_url)
    try:
        with session_scope(eng) as s:
            seed(s, versions=3)
        command.downgrade(alembic_config(database_url), "0017")
        with eng.connect() as conn:
            assert "search_doc" not in sa.inspect(conn).get_table_names()
        upgrade(database_url)
        with Session(eng) as s:
            changes = len(s.exec(select(Change)).all())
            docs = s.exec(select(SearchDoc)).all()
            assert sum(1 for d in docs if d.kind == "change") == changes
            assert {d.ref for d in docs if d.kind == "source"} == {v.source_id for v in s.exec(select(Version))}
            change, phrase = inserted_phrase(s)
            assert str(change.id) in [h.ref for h in search(s, f'"{phrase}"')]
    finally:
        eng.dispose()
