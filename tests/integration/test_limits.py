"""The bounds of tracker.check.limits, the path-table storage of versions (migration 0009) and the
change page, API answer and digest of a change too large to show at once (issue 11, items 1, 2, 13)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.integration.test_web import app_settings, client, login, seeded  # noqa: F401 (fixtures)
from tracker.check.blocks import Block, OverLimit, Rules, blocks_from_json, blocks_hash, blocks_to_json
from tracker.check.diff import diff_blocks
from tracker.check.extract import extract
from tracker.check.limits import MAX_HEADING_CHARS, Limits, strip_controls
from tracker.store.db import alembic_config, make_engine, session_scope, upgrade, utcnow
from tracker.store.models import Change, Source, Version
from tracker.web.diffview import PAGE_CHANGES


def test_escape_sequences_and_control_characters_are_stripped_from_page_text() -> None:
    page = ("<html><body><h1>Terms\x1b]0;pwned\x07</h1><p>Clear\x1b[2J the\x9b31m screen\x1b(B now"
            "\x01\x7f</p><p>em\x97dash</p></body></html>")
    blocks = extract(page, Rules()).blocks
    assert [b.text for b in blocks] == ["Terms", "Clear the\u203a31m screen now", "em\u2014dash"]
    assert blocks[1].path == ("Terms",)
    assert strip_controls("tab\tand\nnewline kept") == "tab\tand\nnewline kept"


def test_text_past_the_limit_is_refused_naming_the_setting() -> None:
    page = "<p>" + "word " * 300_000 + "</p>"
    with pytest.raises(OverLimit, match=r"larger than 1048576 bytes \(TRACKER_MAX_TEXT_BYTES\)"):
        extract(page, Rules(), limits=Limits(max_text_bytes=1 << 20))
    assert len(extract(page, Rules(), limits=Limits(max_text_bytes=2 << 20)).blocks) == 1
    # Multi-byte text counts in UTF-8 bytes: 400,000 characters of 3 bytes each.
    with pytest.raises(OverLimit, match="TRACKER_MAX_TEXT_BYTES"):
        extract("<p>" + "\u20ac" * 400_000 + "</p>", Rules(), limits=Limits(max_text_bytes=1 << 20))


def test_a_long_heading_enters_paths_clipped_and_each_path_is_stored_once() -> None:
    heading = "Terms " * 9_000
    page = f"<h1>{heading}</h1>" + "".join(f"<h2>Part {i}</h2><p>{i}</p>" for i in range(2_000))
    blocks = extract(page, Rules()).blocks
    assert blocks[0].text == heading.strip()  # the heading's own block keeps its whole text
    assert len(blocks[-1].path[0]) == MAX_HEADING_CHARS and blocks[-1].path[0].endswith("\u2026")
    stored = blocks_to_json(blocks)
    assert len(json.dumps(stored)) < 2 * len(page)  # linear in the page, not in paths x blocks (108 MB before)
    assert blocks_from_json(stored) == blocks
    assert blocks_hash(blocks_from_json(stored)) == blocks_hash(blocks)


def test_blocks_hash_is_the_hash_of_before() -> None:
    """Hashed in pieces now: the hash of a page is what it was, so no stored version looks changed."""
    blocks = [Block("heading", "A", ("A",)), Block("paragraph", "x " * 400_000, ("A",)), Block("table_row", "1 | 2")]
    import hashlib

    lines = "".join(json.dumps([b.kind, list(b.path), b.text], ensure_ascii=False) + "\n" for b in blocks)
    assert blocks_hash(blocks) == hashlib.sha256(lines.encode()).hexdigest()


def _legacy_version(engine: Engine, blocks: list[Block]) -> int:
    """A version written as before 0009: a list of blocks, each with its full path."""
    with engine.begin() as conn:
        # The source table as it was then (reflected: today's model has columns added since, e.g. managed_by).
        table = sa.Table("source", sa.MetaData(), autoload_with=conn)
        now = utcnow()
        conn.execute(table.insert().values(id="old", name="Old", url="http://127.0.0.1:9/old", kind="html",
                                           select=[], remove=[], tags=[], options={}, enabled=True,
                                           created_at=now, updated_at=now))
    with session_scope(engine) as s:
        v = Version(source_id="old", text_hash=blocks_hash(blocks), rules={}, rules_hash="0" * 64,
                    block_count=len(blocks))
        s.add(v)
        s.flush()
        vid = v.id or 0
    legacy = [{"kind": b.kind, "text": b.text, "path": list(b.path)} for b in blocks]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE version SET blocks = :b WHERE id = :i"), {"b": json.dumps(legacy), "i": vid})
    return vid


def test_migration_0009_stores_paths_once_and_rehashes_only_clipped_versions(database_url: str) -> None:
    from alembic import command

    upgrade(database_url)
    command.downgrade(alembic_config(database_url), "0008")
    eng = make_engine(database_url)
    try:
        long = "Terms " * 9_000
        page = f"<h1>{long}</h1>" + "".join(f"<p>{i}</p>" for i in range(500))
        unclipped = [Block("heading", long.strip(), (long.strip(),))] + [
            Block("paragraph", str(i), (long.strip(),)) for i in range(500)]
        short = [Block("heading", "Rules", ("Rules",)), Block("paragraph", "Be nice.", ("Rules",))]
        long_id, short_id = _legacy_version(eng, unclipped), None
        with session_scope(eng) as s:
            s.add(Version(source_id="old", text_hash=blocks_hash(short), rules={}, rules_hash="0" * 64))
        with eng.begin() as conn:
            short_id = conn.execute(sa.text("SELECT max(id) FROM version")).scalar()
            conn.execute(sa.text("UPDATE version SET blocks = :b WHERE id = :i"), {"i": short_id, "b": json.dumps(
                [{"kind": b.kind, "text": b.text, "path": list(b.path)} for b in short])})
        upgrade(database_url)
        with session_scope(eng) as s:
            migrated, kept = s.get(Version, long_id), s.get(Version, short_id)
            assert migrated is not None and kept is not None
            # The clipped version has the hash today's extraction gives the same page: no false change.
            assert migrated.text_hash == extract(page, Rules()).hash != blocks_hash(unclipped)
            assert kept.text_hash == blocks_hash(short) and blocks_from_json(kept.blocks) == short
            assert len(json.dumps(migrated.blocks)) < 70_000
        command.downgrade(alembic_config(database_url), "0008")
        with eng.connect() as conn:
            raw = conn.execute(sa.text("SELECT blocks FROM version WHERE id = :i"), {"i": short_id}).scalar()
        assert (json.loads(raw) if isinstance(raw, str) else raw)[1] == {
            "kind": "paragraph", "text": "Be nice.", "path": ["Rules"]}
        upgrade(database_url)
    finally:
        eng.dispose()


def _big_change(engine: Engine, n: int) -> int:
    old = [Block("paragraph", f"para {i}", ("Part",)) for i in range(n)]
    new = [Block("paragraph", f"para {i} amended", ("Part",)) for i in range(n)]
    with session_scope(engine) as s:
        s.add(Source(id="big", name="Big", url="http://127.0.0.1:9/big"))
        s.flush()
        ids = []
        for blocks in (old, new):
            v = Version(source_id="big", text_hash=blocks_hash(blocks), blocks=blocks_to_json(blocks),
                        block_count=n, rules={}, rules_hash="0" * 64)
            s.add(v)
            s.flush()
            ids.append(v.id or 0)
        d = diff_blocks(old, new)
        c = Change(source_id="big", from_version_id=ids[0], to_version_id=ids[1], sections=d.sections,
                   modified=d.modified, diff=d.to_json())
        s.add(c)
        s.flush()
        return c.id or 0


def test_a_large_change_is_shown_in_pages(client: TestClient, engine: Engine) -> None:  # noqa: F811
    n = PAGE_CHANGES * 2 + 7
    change_id = _big_change(engine, n)
    login(client, "viewer")
    first = client.get(f"/changes/{change_id}").text
    assert first.count('class="chg chg-modified"') == PAGE_CHANGES
    assert f"Showing block changes 1–{PAGE_CHANGES} of {n}" in first and "page=2" in first
    last = client.get(f"/changes/{change_id}?page=3&view=inline").text
    assert last.count("chg chg-modified") == 7 and 'rel="prev"' in last and 'rel="next"' not in last
    api = client.get(f"/api/changes/{change_id}").json()
    assert len(api["diff"]["changes"]) == PAGE_CHANGES and api["diff_pages"] == 3
    assert api["diff_next"] == f"/api/changes/{change_id}?page=2"
    assert client.get(f"/api/changes/{change_id}?page=3").json()["diff_next"] is None


def test_the_digest_lists_ten_sections_of_a_change_and_counts_the_rest() -> None:
    from datetime import UTC, datetime

    from tracker.notify.render import ChangeItem, DigestContent, render_digest

    now = datetime(2026, 1, 1, tzinfo=UTC)
    item = ChangeItem(7, "big", "Big", "https://big.example", now, [f"Part {i}" for i in range(5_000)],
                      0, 0, 5_000, [])
    r = render_digest(DigestContent("a@x", now, changes=[item], everything=True), base_url="https://t.example",
                      timezone="UTC")
    for out in (r.text, r.html):
        assert "Part 9;" not in out and "Part 9 (+4990 more)" in out and "Part 10" not in out


def test_the_quick_control_check_looks_for_exactly_the_stripped_characters() -> None:
    from tracker.check.limits import _ASCII_CONTROL_CHARS, _CONTROL_CHARS, _CONTROLS

    assert set(_CONTROL_CHARS) == {chr(i) for i in range(0x3000) if _CONTROLS.match(chr(i))}
    assert set(_ASCII_CONTROL_CHARS) == {c for c in _CONTROL_CHARS if c.isascii()}


def test_every_kind_is_held_to_the_block_and_text_limits() -> None:
    """json and pdf bound their own work; the block and text limits still apply to what they make."""
    import json

    import pytest

    from spiders import KINDS
    from tracker.check.blocks import OverLimit, Rules
    from tracker.check.kinds import extract_kind
    from tracker.check.limits import Limits

    body = json.dumps({"items": [f"value {i}" for i in range(50)]}).encode()
    rules = Rules(select=("items",), remove=(), kind="json")
    assert len(extract_kind(body, rules, "application/json", kind=KINDS["json"]).blocks) == 50
    with pytest.raises(OverLimit, match="TRACKER_MAX_BLOCKS"):
        extract_kind(body, rules, "application/json", kind=KINDS["json"], limits=Limits(max_blocks=10))
    with pytest.raises(OverLimit, match="TRACKER_MAX_TEXT_BYTES"):
        extract_kind(body, rules, "application/json", kind=KINDS["json"],
                     limits=Limits(max_text_bytes=100))
