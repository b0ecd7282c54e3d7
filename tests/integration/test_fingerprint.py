"""The fast path of an unchanged page sent without validators: a page whose selected part is what it was
when its text was the baseline's is unchanged without its blocks being built, and never hides a change.

Driven through record_check with real pages of the test policy site (fresh noise on every request)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.request import urlopen

import pytest
from sqlmodel import Session, select

import tracker.check.extract as extract_module
from spiders import KINDS
from tests.conftest import PolicySite
from tracker.check.blocks import Rules
from tracker.check.extract import extract
from tracker.check.record import CHANGED, NEW, UNCHANGED, Fetch, record_check
from tracker.store.models import Change, CheckState, Source, Version

X = "x-privacy-policy"
T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def fetch(source: Source, at: datetime) -> Fetch:
    with urlopen(source.url, timeout=10) as r:
        return Fetch(source_id=source.id, url=source.url, status=r.status,
                     headers={"content-type": r.headers["Content-Type"]}, body=r.read(), fetched_at=at)


def check(session: Session, src: Source, at: datetime) -> str:
    outcome = record_check(session=session, source=src, fetch=fetch(src, at), kinds=KINDS)
    assert outcome.error is None, outcome.error
    return outcome.result


def add_x(session: Session, site: PolicySite) -> Source:
    src = Source(id="x", name="x", url=site.url(X), select=["article.policy"])
    session.add(src)
    session.flush()
    return src


class BlocksBuilt:
    """Counts how often extraction built blocks (the XSLT pass), to see the fast path taken."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = extract_module.blocks_by_xslt

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(extract_module, "blocks_by_xslt", counting)


def test_the_same_selected_text_with_fresh_noise_has_one_fingerprint(policy_site_novalidators: PolicySite) -> None:
    url = policy_site_novalidators.url(X)
    rules = Rules(select=("article.policy",))
    bodies = []
    for _ in range(2):
        with urlopen(url, timeout=10) as r:
            bodies.append(r.read())
    assert bodies[0] != bodies[1]  # the noise differs
    first, second = (extract(b, rules, content_type="text/html; charset=utf-8") for b in bodies)
    assert first.fingerprint and first.fingerprint == second.fingerprint
    assert first.blocks == second.blocks
    # Given as unless, it spares the blocks; other rules or limits make another fingerprint.
    again = extract(bodies[1], rules, content_type="text/html; charset=utf-8", unless=first.fingerprint)
    assert again.same_as_before and again.blocks == []
    other = extract(bodies[1], Rules(select=("article.policy",), remove=("h2",)),
                    content_type="text/html; charset=utf-8", unless=first.fingerprint)
    assert not other.same_as_before and other.blocks and other.fingerprint != first.fingerprint
    policy_site_novalidators.next(X)
    with urlopen(url, timeout=10) as r:
        moved = extract(r.read(), rules, content_type="text/html; charset=utf-8", unless=first.fingerprint)
    assert not moved.same_as_before and moved.blocks != first.blocks


def test_an_unchanged_page_is_told_without_building_blocks_and_a_change_is_still_seen(
        session: Session, policy_site_novalidators: PolicySite, monkeypatch: pytest.MonkeyPatch) -> None:
    site = policy_site_novalidators
    src = add_x(session, site)
    built = BlocksBuilt(monkeypatch)
    assert check(session, src, T0) == NEW
    state = session.get(CheckState, "x")
    assert state is not None and state.fingerprint
    first_version = session.exec(select(Version)).one()
    assert state.fingerprint.startswith(f"{first_version.id}:{first_version.text_hash[:16]}:")
    assert built.calls == 1
    for hours in (1, 2, 3):
        assert check(session, src, T0 + timedelta(hours=hours)) == UNCHANGED
    assert built.calls == 1  # three fresh pages, no blocks built
    site.next(X)
    assert check(session, src, T0 + timedelta(hours=4)) == CHANGED
    assert built.calls == 2
    versions = session.exec(select(Version).order_by(Version.id)).all()
    assert len(versions) == 2 and len(session.exec(select(Change)).all()) == 1
    assert state.fingerprint.startswith(f"{versions[-1].id}:")
    assert check(session, src, T0 + timedelta(hours=5)) == UNCHANGED
    assert built.calls == 2


def test_a_baseline_recorded_or_rewritten_since_is_never_vouched_for(
        session: Session, policy_site_novalidators: PolicySite, monkeypatch: pytest.MonkeyPatch) -> None:
    site = policy_site_novalidators
    src = add_x(session, site)
    assert check(session, src, T0) == NEW
    built = BlocksBuilt(monkeypatch)
    # The baseline's text hash rewritten in place (as a migration might): the fingerprint no longer
    # holds, the page is read in full and compared block by block (same blocks: no change, and a
    # version with today's hash becomes the baseline).
    version = session.exec(select(Version)).one()
    version.text_hash = "0" * 64
    session.add(version)
    session.flush()
    assert check(session, src, T0 + timedelta(hours=1)) == UNCHANGED
    assert built.calls == 1
    assert len(session.exec(select(Version)).all()) == 2
    # A fingerprint left by a page of another version (stale) is not taken either.
    state = session.get(CheckState, "x")
    assert state is not None and state.fingerprint
    state.fingerprint = "999:" + state.fingerprint.split(":", 1)[1]
    session.add(state)
    assert check(session, src, T0 + timedelta(hours=2)) == UNCHANGED
    assert built.calls == 2
    assert state.fingerprint.split(":")[0] == str(session.exec(select(Version).order_by(Version.id.desc())).first().id)  # type: ignore[union-attr,attr-defined]


def test_changed_rules_read_the_page_in_full(
        session: Session, policy_site_novalidators: PolicySite, monkeypatch: pytest.MonkeyPatch) -> None:
    site = policy_site_novalidators
    src = add_x(session, site)
    assert check(session, src, T0) == NEW
    built = BlocksBuilt(monkeypatch)
    src.remove = ["h2"]
    session.add(src)
    session.flush()
    result = check(session, src, T0 + timedelta(hours=1))
    assert built.calls >= 1
    assert result in (CHANGED, UNCHANGED)
    changes = session.exec(select(Change)).all()
    # What only the rules changed is technical, never a policy change.
    assert all(c.technical for c in changes)


def test_migration_0021_up_and_down_keeps_the_check_states(database_url: str) -> None:
    import sqlalchemy as sa
    from alembic import command

    from tracker.store.db import alembic_config, make_engine, upgrade

    upgrade(database_url)
    eng = make_engine(database_url)
    try:
        with Session(eng) as s:
            s.add(Source(id="m", name="m", url="https://example.invalid/p"))
            s.flush()
            s.add(CheckState(source_id="m", checks=3, fingerprint="1:abc:def"))
            s.commit()
        command.downgrade(alembic_config(database_url), "0020")
        assert "fingerprint" not in {c["name"] for c in sa.inspect(eng).get_columns("check_state")}
        upgrade(database_url)
        with Session(eng) as s:
            state = s.get(CheckState, "m")
            assert state is not None and state.checks == 3 and state.fingerprint is None
    finally:
        eng.dispose()
