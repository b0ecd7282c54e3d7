"""Pure parts of the regulation kinds: dates in text, due dates, feed / eCFR / Federal Register
parsing of hostile input, and migration 0012 up and down on a database with data."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from spiders import KINDS
from tracker.check.dates import find_dates
from tracker.check.ecfr import MalformedEcfr, extract_part, latest_amendment
from tracker.check.fedreg import MalformedResults, ask_since, parse_documents, search_params
from tracker.check.feed import MalformedFeed, parse_feed
from tracker.impacts.workflow import due_date_for


@pytest.mark.parametrize(("text", "field", "on"), [
    ("These terms take effect on January 1, 2027. Read them.", "effective_on", date(2027, 1, 1)),
    ("This final rule is effective Sept. 21, 2004.", "effective_on", date(2004, 9, 21)),
    ("Last updated: March 3, 2025", "updated_on", date(2025, 3, 3)),
    ("Last updated: March 3, 2025, effective immediately", "updated_on", date(2025, 3, 3)),
    ("Comments must be received on or before 2026-02-10.", "comments_close_on", date(2026, 2, 10)),
])
def test_dates_found_with_their_sentence(text: str, field: str, on: date) -> None:
    found = find_dates(text)
    assert found[field].on == on
    assert found[field].sentence in text
    assert (field == "effective_on") or "effective_on" not in found


def test_no_cue_or_impossible_date_is_no_date() -> None:
    assert find_dates("Published February 30, 2025 and effective February 30, 2025.") == {}
    assert find_dates("We met on January 5, 2025.") == {}


DETECTED = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("effective", "due"), [
    (None, date(2027, 1, 1)),  # review days only
    (date(2026, 12, 26), date(2026, 12, 12)),  # 14 days before it takes effect, sooner than 30 days
    (date(2026, 12, 10), date(2026, 12, 10)),  # too close for the lead: due the day it applies
    (date(2020, 1, 1), date(2027, 1, 1)),  # long in force: review days
    (date(2027, 6, 1), date(2027, 1, 1)),  # far ahead: review days come first
])
def test_due_date_follows_the_effective_date(effective: date | None, due: date) -> None:
    assert due_date_for(detected_at=DETECTED, review_days=30, effective_on=effective, lead_days=14) == due


def test_feed_garbage_and_entities_are_refused_or_bounded() -> None:
    with pytest.raises(MalformedFeed):
        parse_feed(b"\x00\x01 not xml at all")
    with pytest.raises(MalformedFeed):
        parse_feed(b"<html><body><p>Maintenance</p></body></html>")
    rss = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
           b'<item><title>A\x01 <b>bold</b></title><description>&lt;script&gt;x&lt;/script&gt;Hi</description>'
           b'<link>https://e.x/a</link></item></channel></rss>')
    (entry,) = parse_feed(rss)
    assert entry.title == "A bold"
    assert entry.id == "https://e.x/a#A bold"  # no guid: link and title
    assert "\x01" not in entry.title


def test_ecfr_paths_and_malformed_answers() -> None:
    blocks = extract_part('<DIV5 N="312" TYPE="PART"><HEAD>PART 312—COPPA</HEAD><DIV8 N="312.5" TYPE="SECTION">'
                          '<HEAD>§ 312.5 Parental consent.</HEAD><P>(a) <I>General</I>.</P></DIV8></DIV5>'.encode())
    assert [(b.kind, b.section) for b in blocks] == [
        ("heading", "PART 312—COPPA"), ("heading", "PART 312—COPPA > § 312.5 Parental consent."),
        ("paragraph", "PART 312—COPPA > § 312.5 Parental consent.")]
    assert blocks[-1].text == "(a) General."
    with pytest.raises(MalformedEcfr):
        extract_part(b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><DIV5><HEAD>&e;</HEAD></DIV5>x')
    with pytest.raises(MalformedEcfr):
        latest_amendment(b'{"content_versions": [{"date": "yesterday"}]}')
    assert latest_amendment(b'{"content_versions": []}') is None


def test_federal_register_query_and_overlap() -> None:
    params = search_params({"term": "children", "agencies": ["federal-trade-commission"], "type": ["RULE"],
                            "cfr": {"title": 16, "part": "312"}}, since=date(2025, 1, 1), per_page=50)
    assert ("conditions[agencies][]", "federal-trade-commission") in params
    assert ("conditions[cfr][part]", "312") in params
    assert ("conditions[publication_date][gte]", "2025-01-01") in params
    assert ("order", "newest") in params and ("fields[]", "effective_on") in params
    assert ask_since(date(2025, 3, 10), None) == date(2025, 3, 7)
    assert ask_since(None, date(2024, 1, 1)) == date(2024, 1, 1)
    assert ask_since(None, None) is None
    with pytest.raises(MalformedResults):
        parse_documents(b'{"results": [{"title": "no number"}]}')
    with pytest.raises(MalformedResults):
        parse_documents(b'{"results": "nope"}')


def test_migration_0012_up_and_down(database_url: str) -> None:
    from alembic import command

    from tracker.store.db import alembic_config, make_engine, upgrade

    upgrade(database_url)
    eng = make_engine(database_url)
    try:
        with eng.begin() as conn:
            conn.execute(sa.text("INSERT INTO source (id, name, url, kind, \"select\", remove, tags, options, enabled,"
                                 " created_at, updated_at) VALUES ('s', 'S', 'https://e.x', 'html', '[]', '[]', '[]',"
                                 " '{}', true, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        command.downgrade(alembic_config(database_url), "0008")
        assert "stream_entry" not in sa.inspect(eng).get_table_names()
        assert "effective_on" not in {c["name"] for c in sa.inspect(eng).get_columns("change")}
        upgrade(database_url)
        insp = sa.inspect(eng)
        assert "stream_entry" in insp.get_table_names()
        assert {"effective_on", "updated_on", "comments_close_on", "dates_from", "entry"} <= {
            c["name"] for c in insp.get_columns("change")}
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM source")).scalar_one() == 1
    finally:
        eng.dispose()


def test_the_regulations_docs_sources_and_sops_are_valid(tmp_path: Path) -> None:
    """The ready sources file in docs/regulations.md passes `sources sync` validation as printed."""
    from tracker.declare.sources import load_sources_file

    text = (Path(__file__).resolve().parent.parent.parent / "docs" / "regulations.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    sources_yaml = next(b for b in blocks if b.startswith("sources:"))
    (tmp_path / "sources.yaml").write_text(sources_yaml)
    specs = load_sources_file(tmp_path / "sources.yaml", kinds=KINDS)
    assert {s.kind for s in specs} == {"federal_register", "ecfr", "feed"}
    assert next(s for s in specs if s.id == "ecfr-16-312").query == {"title": 16, "part": "312"}


def test_agency_and_type_filters() -> None:
    from tracker.check.entry import entry_filters_hold, type_name

    fields = {"type": "Proposed Rule", "agencies": ["Federal Trade Commission"],
              "agency_slugs": ["federal-trade-commission"]}
    assert entry_filters_hold(agencies=frozenset({"federal-trade-commission"}),
                              types=frozenset({type_name("PRORULE")}), fields=fields) == {
        "agencies": ["federal-trade-commission"], "types": ["Proposed Rule"]}
    assert entry_filters_hold(agencies=frozenset({"federal trade commission"}), types=frozenset(),
                              fields=fields) == {"agencies": ["Federal Trade Commission"]}
    assert entry_filters_hold(agencies=frozenset(), types=frozenset({type_name("RULE")}), fields=fields) is None
    assert entry_filters_hold(agencies=frozenset({"federal-communications-commission"}), types=frozenset(),
                              fields=fields) is None
