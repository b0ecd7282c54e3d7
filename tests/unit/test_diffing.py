"""The section-aware, word-level diff, on real consecutive versions of the fixture corpus."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from tests.support.policy_site import Document, page
from tracker.check.blocks import Block, Rules
from tracker.check.diff import Diff, diff_blocks, render_text, section_path, word_diff
from tracker.check.extract import extract

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pga"
RULES = Rules(select=("article.policy",), remove=(".cookie-banner", "nav"))
REDDIT, X = "reddit-community-guidelines", "x-privacy-policy"
TRANSITIONS = [(slug, v) for slug in (REDDIT, X) for v in range(4)]


@cache
def html(slug: str, v: int) -> str:
    return page(Document(FIXTURES / slug), v)


@cache
def blocks(slug: str, v: int) -> tuple[Block, ...]:
    return tuple(extract(html(slug, v).encode(), RULES).blocks)


def words_of(runs: list[tuple[str, str]], keep: str) -> list[str]:
    return " ".join(t for op, t in runs if op in ("equal", keep)).split()


# -- real transitions, checked against the markdown sources ----------------------------------


def test_reddit_v2_to_v3_touches_only_enforcement() -> None:
    # 0002.md -> 0003.md changes lines 111, 123 and 149, all below the "Enforcement" heading
    # (line 51) under "Reddit Content Policy": three reworded paragraphs.
    d = diff_blocks(blocks(REDDIT, 2), blocks(REDDIT, 3))
    assert (d.added, d.removed, d.modified) == (0, 0, 3)
    assert d.sections == ["Reddit Content Policy > Enforcement"]
    spam, examples, votes = d.changes
    assert spam.deleted_text == "account suspension termination."  # "or" is kept
    assert spam.inserted_text == "temporary permanent banning of your Reddit account."
    assert examples.words[-2:] == [("delete", "removal/suspension:"), ("insert", "removal/ban:")]
    assert votes.deleted_text == "the suspension"
    assert votes.inserted_text == "temporary permanent"
    assert all(c.kind == "paragraph" for c in d.changes)


def test_x_v2_to_v3_touches_two_sections() -> None:
    # 0002.md -> 0003.md: line 26 changes a link target only (not text); line 239 is under
    # "6. Your Rights and Ours" (line 224) and line 261 under "10. How To Contact X" (line 258).
    d = diff_blocks(blocks(X, 2), blocks(X, 3))
    assert (d.added, d.removed, d.modified) == (0, 0, 2)
    assert d.sections == ["X Privacy Policy > 6. Your Rights and Ours", "X Privacy Policy > 10. How To Contact X"]
    dpf, contact = d.changes
    assert (dpf.deleted_text, dpf.inserted_text) == ("Protection", "Privacy")
    assert contact.deleted_text == ""
    assert contact.inserted_text.startswith("Information about our handling of “Consumer Health Data”")


def test_x_v1_to_v2_a_changed_date_line_is_one_modified_block() -> None:
    # Only line 4, "**Effective: March 13, 2024**" -> "**Effective: September 29, 2023**".
    d = diff_blocks(blocks(X, 1), blocks(X, 2))
    assert (d.added, d.removed, d.modified) == (0, 0, 1)
    assert d.sections == ["X Privacy Policy"]
    (c,) = d.changes
    assert (c.old, c.new) == ("Effective: March 13, 2024", "Effective: September 29, 2023")
    assert c.words == [("equal", "Effective:"), ("delete", "March 13, 2024"), ("insert", "September 29, 2023")]


def test_x_v3_to_v4_adds_blocks_in_one_section() -> None:
    # 0003.md -> 0004.md only inserts lines 92-125, inside "1. Information We Collect" (line 66).
    d = diff_blocks(blocks(X, 3), blocks(X, 4))
    assert d.removed == d.modified == 0
    assert d.added == 21
    assert d.sections == ["X Privacy Policy > 1. Information We Collect"]
    added = [c.new for c in d.changes]
    assert added[0].startswith("Usage Information. We collect information about your activity on X")
    assert sum(1 for c in d.changes if c.kind == "list_item") >= 10


def test_reddit_v3_to_v4_removed_title_is_reported() -> None:
    # 0004.md drops the "Reddit Content Policy" title; the rest moves up a level.
    d = diff_blocks(blocks(REDDIT, 3), blocks(REDDIT, 4))
    removed = [c for c in d.changes if c.op == "removed"]
    assert [(c.kind, c.old) for c in removed] == [("heading", "Reddit Content Policy")]
    hate = [c for c in d.changes if c.op == "modified" and "mocking people" in (c.new or "")]
    assert hate and hate[0].words[0] == ("delete", "Subreddit community") and hate[0].words[1][0] == "insert"
    assert "A comment denying or minimizing the scale of a hate-based violent event." in [c.new for c in d.changes]


@pytest.mark.parametrize(("slug", "v"), TRANSITIONS)
def test_every_transition_is_consistent(slug: str, v: int) -> None:
    old, new = blocks(slug, v), blocks(slug, v + 1)
    d = diff_blocks(old, new)
    assert d, "every fixture version differs in text from the one before"
    # Every old block is kept, modified or removed; every new block kept, modified or added.
    assert len(old) - d.removed == len(new) - d.added
    old_texts, new_texts = [b.text for b in old], [b.text for b in new]
    new_sections = {b.section for b in new}
    for c in d.changes:
        if c.op == "added":
            assert c.new in new_texts and c.section in new_sections
        elif c.op == "removed":
            assert c.old in old_texts
        else:
            assert c.op == "modified" and c.old in old_texts and c.new in new_texts
            # The word runs rebuild both texts exactly.
            assert words_of(c.words, "delete") == (c.old or "").split()
            assert words_of(c.words, "insert") == (c.new or "").split()
    assert d.sections == list(dict.fromkeys(c.section for c in d.changes))
    assert d.by_section().keys() == set(d.sections)
    assert Diff.from_json(d.to_json()).to_json() == d.to_json()


@pytest.mark.parametrize(("slug", "v"), [(REDDIT, 0), (X, 4)])
def test_identical_versions_give_an_empty_diff(slug: str, v: int) -> None:
    d = diff_blocks(blocks(slug, v), blocks(slug, v))
    assert not d
    assert (d.added, d.removed, d.modified, d.sections) == (0, 0, 0, [])
    # Fresh page noise around the same version: still nothing.
    again = extract(page(Document(FIXTURES / slug), v).encode(), RULES).blocks
    assert not diff_blocks(blocks(slug, v), again)


@pytest.mark.parametrize("new_title", ["Consequences", "Enforcement and Appeals"])
def test_a_renamed_heading_is_one_modified_heading_block(new_title: str) -> None:
    renamed = html(REDDIT, 3).replace("<h2>Enforcement</h2>", f"<h2>{new_title}</h2>")
    assert renamed != html(REDDIT, 3)
    new = extract(renamed.encode(), RULES).blocks
    d = diff_blocks(blocks(REDDIT, 3), new)
    assert (d.added, d.removed, d.modified) == (0, 0, 1)
    (c,) = d.changes
    assert (c.kind, c.old, c.new) == ("heading", "Enforcement", new_title)
    assert c.section == f"Reddit Content Policy > {new_title}"
    # The blocks beneath now carry the new path, yet none of them is reported.
    assert sum(1 for b in new if b.section.startswith(f"Reddit Content Policy > {new_title}")) > 20


def test_a_moved_section_keeps_its_words() -> None:
    old = [Block("heading", "A", ("A",)), Block("paragraph", "alpha text", ("A",)),
           Block("heading", "B", ("B",)), Block("paragraph", "beta text", ("B",))]
    new = [Block("heading", "B", ("B",)), Block("paragraph", "beta text", ("B",)),
           Block("heading", "A", ("A",)), Block("paragraph", "alpha text", ("A",))]
    d = diff_blocks(old, new)
    assert d.added == d.removed == 2 and d.modified == 0


def test_word_diff_runs() -> None:
    assert word_diff("we keep data for 30 days", "we keep your data for 90 days") == [
        ("equal", "we keep"), ("insert", "your"), ("equal", "data for"), ("delete", "30"), ("insert", "90"),
        ("equal", "days")]
    assert word_diff("same words", "same   words") == [("equal", "same words")]


def test_render_text_shows_sections_and_words() -> None:
    text = render_text(diff_blocks(blocks(REDDIT, 2), blocks(REDDIT, 3)))
    assert text.startswith("## Reddit Content Policy > Enforcement\n")
    assert "[-removal/suspension:-] {+removal/ban:+}" in text
    assert text.count("  ~ ") == 3
    added = render_text(Diff.from_json({"changes": [
        {"op": "added", "kind": "paragraph", "section": "", "new": "New text"},
        {"op": "removed", "kind": "paragraph", "section": "A > B", "old": "Old text"}]}))
    assert added == "## (top of document)\n  + New text\n\n## A > B\n  - Old text\n"
    assert section_path("A > B > C") == ["A", "B", "C"] and section_path("") == []
