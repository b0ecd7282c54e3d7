"""Trust in the signal, on real corpus versions served by the policy site (tests/support/policy_site.py).

No rules at all gives no change on re-fetches and the sections of `select: article.policy`; a
version pair differing only in quote style is one cosmetic change and no impact; A -> B -> A is
a marked revert, and with `flapping: quiet` leaves no impact open; ignore patterns take
volatile text out of comparison; migration 0017 goes up and down and finds earlier reverts.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from spiders import KINDS
from tests.conftest import FIXTURES, PolicySite, serve_policy_site
from tracker.audit.trail import verify
from tracker.check.blocks import Rules, blocks_from_json, blocks_hash, blocks_to_json
from tracker.check.extract import extract
from tracker.check.record import CHANGED, NEW, UNCHANGED, Fetch, record_check
from tracker.impacts.mapping import CrawlMapper
from tracker.store.models import AuditEvent, Change, Impact, ImpactNote, Sop, Source, Version

REDDIT = "reddit-community-guidelines"
X = "x-privacy-policy"
T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
REFETCHES = 20


def fetch(site: PolicySite, source: Source, at: datetime) -> Fetch:
    """One full fetch of a source's page from the policy site (every answer a 200)."""
    with urlopen(source.url, timeout=10) as r:
        return Fetch(source_id=source.id, url=source.url, status=r.status,
                     headers={"content-type": r.headers["Content-Type"]}, body=r.read(), fetched_at=at)


def add_source(session: Session, site: PolicySite, sid: str, slug: str, **fields: Any) -> Source:
    src = Source(id=sid, name=sid, url=site.url(slug), **fields)
    session.add(src)
    session.flush()
    return src


def check(session: Session, site: PolicySite, src: Source, at: datetime, on_change: Any = None) -> str:
    outcome = record_check(session=session, source=src, fetch=fetch(site, src, at), kinds=KINDS,
                           on_change=on_change)
    assert outcome.error is None, outcome.error
    return outcome.result


def latest_blocks(session: Session, source_id: str) -> list[Any]:
    v = session.exec(select(Version).where(Version.source_id == source_id).order_by(sa.desc(Version.id))).first()
    assert v is not None
    return blocks_from_json(v.blocks)


@pytest.mark.parametrize("slug", [REDDIT, X])
def test_no_rules_no_change_on_refetches_and_the_sections_of_article_policy(
        session: Session, policy_site_novalidators: PolicySite, slug: str) -> None:
    site = policy_site_novalidators
    bare = add_source(session, site, "bare", slug)
    policy = add_source(session, site, "policy", slug, select=["article.policy"])
    versions = site.control("state")[slug]["versions"]
    at = T0
    for v in range(versions):
        site.set(slug, v)
        results = []
        for _ in range(REFETCHES):
            at += timedelta(minutes=1)
            results.append(check(session, site, bare, at))
            check(session, site, policy, at)
        assert results[0] == (NEW if v == 0 else CHANGED), (v, results[0])
        assert results[1:] == [UNCHANGED] * (REFETCHES - 1), v
        assert latest_blocks(session, "bare") == latest_blocks(session, "policy")
    changes = {sid: [c.sections for c in session.exec(select(Change).where(Change.source_id == sid)
                                                      .order_by(Change.id))] for sid in ("bare", "policy")}
    assert len(changes["bare"]) == versions - 1
    assert changes["bare"] == changes["policy"]


@pytest.fixture
def quote_site(tmp_path: Path) -> Iterator[PolicySite]:
    """A corpus of one real document: version 0 of the X Privacy Policy, then the same text in straight quotes."""
    doc = tmp_path / "corpus" / X
    doc.mkdir(parents=True)
    src = FIXTURES / "pga" / X
    shutil.copy(src / "index.json", doc / "index.json")
    text = (src / "0000.md").read_text()
    straight = text.translate({0x2018: "'", 0x2019: "'", 0x201C: '"', 0x201D: '"'})
    assert straight != text
    (doc / "0000.md").write_text(text)
    (doc / "0001.md").write_text(straight)
    with serve_policy_site(tmp_path / "corpus", validators=False) as site:
        yield site


def add_sop(session: Session, sop_id: str, **watch: Any) -> Sop:
    sop = Sop(id=sop_id, title=sop_id, owner="alice@example.com", watches=[{"source": "x", **watch}])
    session.add(sop)
    session.flush()
    return sop


def test_quote_style_only_is_one_cosmetic_change_and_no_impact(session: Session, quote_site: PolicySite) -> None:
    src = add_source(session, quote_site, "x", X)
    add_sop(session, "all")
    add_sop(session, "cosmetic-too", include_cosmetic=True)
    mapper = CrawlMapper()
    assert check(session, quote_site, src, T0, mapper) == NEW
    quote_site.set(X, 1)
    assert check(session, quote_site, src, T0 + timedelta(hours=1), mapper) == CHANGED
    changes = session.exec(select(Change)).all()
    assert len(changes) == 1 and changes[0].cosmetic and not changes[0].technical
    assert [i.sop_id for i in session.exec(select(Impact)).all()] == ["cosmetic-too"]


def test_a_real_change_is_not_cosmetic(session: Session, policy_site_novalidators: PolicySite) -> None:
    site = policy_site_novalidators
    src = add_source(session, site, "x", X)
    check(session, site, src, T0)
    site.set(X, 1)
    check(session, site, src, T0 + timedelta(hours=1))
    change = session.exec(select(Change)).one()
    assert not change.cosmetic and change.reverts_to_version_id is None


def flap(session: Session, site: PolicySite, src: Source, mapper: Any) -> list[Change]:
    """Versions 0 -> 1 -> 0 of the X Privacy Policy, an hour apart."""
    for n, v in enumerate((0, 1, 0)):
        site.set(X, v)
        check(session, site, src, T0 + timedelta(hours=n), mapper)
    return list(session.exec(select(Change).order_by(Change.id)).all())


def test_a_revert_is_marked_and_reported_by_default(session: Session, policy_site_novalidators: PolicySite) -> None:
    src = add_source(session, policy_site_novalidators, "x", X)
    add_sop(session, "all")
    away, back = flap(session, policy_site_novalidators, src, CrawlMapper())
    first = session.exec(select(Version).order_by(Version.id)).first()
    assert first is not None
    assert away.reverts_to_version_id is None
    assert back.reverts_to_version_id == first.id and back.reverts_to_at == first.created_at
    assert not back.quiet
    assert sorted((i.change_id, i.status) for i in session.exec(select(Impact))) == [
        (away.id, "open"), (back.id, "open")]


def test_flapping_quiet_opens_nothing_and_closes_what_the_flap_opened(
        session: Session, policy_site_novalidators: PolicySite) -> None:
    src = add_source(session, policy_site_novalidators, "x", X, options={"flapping": "quiet"})
    add_sop(session, "all")
    away, back = flap(session, policy_site_novalidators, src, CrawlMapper())
    assert back.quiet and back.reverts_to_version_id is not None
    impacts = session.exec(select(Impact)).all()
    assert [(i.change_id, i.status, i.resolved_by) for i in impacts] == [(away.id, "dismissed", "system")]
    assert "reverted to the text of 2026-11-02" in (impacts[0].decision_note or "")
    assert session.exec(select(ImpactNote)).one().author == "system"
    actions = [e.action for e in session.exec(select(AuditEvent).order_by(AuditEvent.seq))]
    assert actions.count("impact.status") == 1 and actions.count("impact.note") == 1
    assert verify(session=session).ok


def test_a_flap_slower_than_the_window_is_reported(session: Session, policy_site_novalidators: PolicySite) -> None:
    src = add_source(session, policy_site_novalidators, "x", X,
                     options={"flapping": "quiet", "flapping_window": 1 / 48})  # half an hour
    add_sop(session, "all")
    away, back = flap(session, policy_site_novalidators, src, CrawlMapper())
    assert back.reverts_to_version_id is not None and not back.quiet
    assert {i.status for i in session.exec(select(Impact))} == {"open"}


def test_ignore_patterns_take_volatile_text_out_of_comparison_and_keep_the_block(
        session: Session, policy_site_novalidators: PolicySite) -> None:
    site = policy_site_novalidators
    noisy = add_source(session, site, "noisy", X, select=["main"])
    quiet = add_source(session, site, "quiet", X, select=["main"], options={"ignore": ["^Trending now: item .*"]})
    for n in range(5):
        check(session, site, noisy, T0 + timedelta(minutes=n))
        check(session, site, quiet, T0 + timedelta(minutes=n))
    assert session.exec(select(Change).where(Change.source_id == "noisy")).all()  # the aside changes
    assert not session.exec(select(Change).where(Change.source_id == "quiet")).all()
    assert any(b.text.startswith("Trending now: item ") for b in latest_blocks(session, "quiet"))


def test_default_main_content_is_a_rules_change_for_existing_sources(
        session: Session, policy_site_novalidators: PolicySite) -> None:
    """A version recorded by the whole-body extraction of before is re-extracted: a technical change."""
    site = policy_site_novalidators
    src = add_source(session, site, "x", X)
    check(session, site, src, T0)
    old = session.exec(select(Version)).one()
    # As the whole-body extraction recorded it: navigation, banner and footer in the text.
    body = extract(fetch(site, src, T0).body, Rules(select=("body",))).blocks
    old.blocks, old.text_hash = blocks_to_json(body), blocks_hash(body)
    old.rules = {"select": [], "remove": [], "extractor": "2"}
    old.rules_hash = Rules(select=("body",)).hash
    session.add(old)
    assert check(session, site, src, T0 + timedelta(hours=1)) == CHANGED
    assert session.exec(select(Version).order_by(Version.id)).all()[-1].rules.get("main") == "1"
    assert [c.technical for c in session.exec(select(Change))] == [True]


def test_migration_0017_up_and_down_finds_recorded_reverts(database_url: str) -> None:
    from alembic import command

    from tracker.store.db import alembic_config, make_engine, upgrade

    upgrade(database_url)
    eng = make_engine(database_url)
    cfg = alembic_config(database_url)
    try:
        command.downgrade(cfg, "0016")
        assert "reverts_to_version_id" not in {c["name"] for c in sa.inspect(eng).get_columns("change")}
        with eng.begin() as conn:
            conn.execute(sa.text("INSERT INTO source (id, name, url, kind, \"select\", remove, tags, options, enabled,"
                                 " created_at, updated_at) VALUES ('s', 'S', 'https://e.x', 'html', '[]', '[]', '[]',"
                                 " '{}', true, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
            for vid, h in ((1, "a"), (2, "b"), (3, "a")):
                conn.execute(sa.text("INSERT INTO version (id, source_id, created_at, text_hash, blocks, block_count,"
                                     " rules, rules_hash) VALUES (:id, 's', :at, :h, '{}', 0, '{}', 'r')"),
                             {"id": vid, "h": h, "at": f"2026-01-0{vid} 00:00:00"})
            for cid, (a, b) in enumerate(((1, 2), (2, 3)), 1):
                conn.execute(sa.text("INSERT INTO change (id, source_id, from_version_id, to_version_id, detected_at,"
                                     " technical, sections, added, removed, modified, diff) VALUES (:id, 's', :a, :b,"
                                     " '2026-01-05 00:00:00', false, '[]', 0, 0, 1, '{}')"),
                             {"id": cid, "a": a, "b": b})
        upgrade(database_url)
        with eng.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, reverts_to_version_id, cosmetic, quiet FROM change ORDER BY id"))
            assert [tuple(r) for r in rows] == [(1, None, False, False), (2, 1, False, False)]
    finally:
        eng.dispose()


def test_the_digest_lists_cosmetic_changes_in_one_line_per_source(session: Session, quote_site: PolicySite) -> None:
    from tracker.config import Settings
    from tracker.notify.digest import build_digests
    from tracker.notify.render import render_digest

    src = add_source(session, quote_site, "x", X)
    add_sop(session, "all")
    check(session, quote_site, src, T0, CrawlMapper())
    quote_site.set(X, 1)
    check(session, quote_site, src, T0 + timedelta(hours=1), CrawlMapper())
    settings = Settings(timezone="UTC")
    (content,) = build_digests(session=session, settings=settings, now=T0 + timedelta(hours=2))
    assert content.changes == [] and [(c.source_id, len(c.change_ids)) for c in content.cosmetic] == [("x", 1)]
    rendered = render_digest(content, base_url="http://tracker.example", timezone="UTC")
    assert "- x: 1 cosmetic change, latest 2026-11-02 10:30" in rendered.text
    assert "Cosmetic changes" in rendered.html


def test_migration_0017_downgrades_with_impacts_referencing_changes(database_url: str) -> None:
    """SQLite rebuilds `change` to drop 0017's columns; rows of other tables that reference it (impacts) must not
    stop that, and nothing is lost."""
    from alembic import command

    from tracker.store.db import alembic_config, make_engine, upgrade

    upgrade(database_url)
    eng = make_engine(database_url)
    try:
        with eng.begin() as conn:
            conn.execute(sa.text("INSERT INTO source (id, name, url, kind, \"select\", remove, tags, options, enabled,"
                                 " created_at, updated_at) VALUES ('s', 'S', 'https://e.x', 'html', '[]', '[]', '[]',"
                                 " '{}', true, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
            for vid in (1, 2):
                conn.execute(sa.text("INSERT INTO version (id, source_id, created_at, text_hash, blocks, block_count,"
                                     " rules, rules_hash) VALUES (:id, 's', '2026-01-01 00:00:00', :h, '{}', 0, '{}',"
                                     " 'r')"), {"id": vid, "h": str(vid)})
            conn.execute(sa.text("INSERT INTO change (id, source_id, from_version_id, to_version_id, detected_at,"
                                 " technical, cosmetic, quiet, sections, added, removed, modified, diff) VALUES (1,"
                                 " 's', 1, 2, '2026-01-05 00:00:00', false, false, false, '[]', 0, 0, 1, '{}')"))
            conn.execute(sa.text("INSERT INTO sop (id, title, owner, watches, enabled, created_at, updated_at) VALUES"
                                 " ('p', 'P', 'o@example.com', '[]', true, '2026-01-01 00:00:00',"
                                 " '2026-01-01 00:00:00')"))
            conn.execute(sa.text("INSERT INTO impact (id, change_id, sop_id, source_id, status, reasons, created_at,"
                                 " updated_at) VALUES (1, 1, 'p', 's', 'open', '[]', '2026-01-05 00:00:00',"
                                 " '2026-01-05 00:00:00')"))
        command.downgrade(alembic_config(database_url), "0016")
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT change_id FROM impact")).scalars().all() == [1]
            assert conn.execute(sa.text("SELECT to_version_id FROM change")).scalars().all() == [2]
        upgrade(database_url)
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT id, cosmetic FROM change")).all() == [(1, False)]
            if eng.dialect.name == "sqlite":
                assert conn.execute(sa.text("PRAGMA foreign_keys")).scalar_one() == 1
                assert conn.execute(sa.text("PRAGMA foreign_key_check")).all() == []
    finally:
        eng.dispose()
