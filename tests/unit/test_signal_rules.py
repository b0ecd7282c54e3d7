"""Main content without select, cosmetic edits, volatile blocks and ignore patterns: pure functions, real pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.policy_site import Document, page
from tracker.check.blocks import Block, Rules
from tracker.check.cosmetic import is_cosmetic
from tracker.check.extract import extract
from tracker.check.volatile import (
    MAX_PATTERN_CHARS,
    masked,
    pattern_problem,
    patterns_problem,
    suggest_pattern,
    volatile_blocks,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pga"
SHARED = Path("/work/shared/corpus/pga")


def texts(html: str, rules: Rules | None = None) -> list[str]:
    return [b.text for b in extract(html.encode(), rules or Rules()).blocks]


@pytest.mark.parametrize("slug", sorted(d.name for d in FIXTURES.iterdir() if (d / "index.json").exists()))
def test_no_select_is_article_policy_on_every_fixture_version(slug: str) -> None:
    doc = Document(FIXTURES / slug)
    for v in range(len(doc.versions)):
        assert extract(page(doc, v).encode(), Rules()).blocks == extract(
            page(doc, v).encode(), Rules(select=("article.policy",))).blocks, v


@pytest.mark.skipif(not SHARED.is_dir(), reason="the full corpus is in the shared folder")
def test_no_select_is_article_policy_on_the_full_corpus() -> None:
    for folder in sorted(d for d in SHARED.iterdir() if (d / "index.json").exists()):
        doc = Document(folder)
        for v in range(0, len(doc.versions), 10):
            assert extract(page(doc, v).encode(), Rules()).hash == extract(
                page(doc, v).encode(), Rules(select=("article.policy",))).hash, (folder.name, v)


def test_boilerplate_is_dropped_and_policy_sections_named_cookies_kept() -> None:
    html = ('<body><div id="consent-popup">We use cookies. OK</div><nav>Home About</nav>'
            '<header>Site</header><form>Search</form><p aria-hidden="true">hidden</p>'
            '<section id="cookies"><h2>Cookies</h2><p>We set these cookies.</p></section>'
            '<footer>Generated at 12:00</footer></body>')
    assert texts(html) == ["Cookies", "We set these cookies."]


def test_the_densest_container_without_main_or_article() -> None:
    para = "<p>" + "Policy words here. " * 20 + "</p>"
    html = (f'<body><div class="menu"><p>Link one</p><p>Link two</p></div>'
            f'<div class="content"><h1>Terms</h1>{para}{para}</div><div class="ad"><p>Buy now</p></div></body>')
    assert texts(html)[0] == "Terms" and "Buy now" not in texts(html) and "Link one" not in texts(html)


def test_an_article_header_is_kept_and_select_keeps_the_old_behaviour() -> None:
    html = "<body><main><article><header><h1>Title</h1></header><p>Text.</p></article></main><nav>N</nav></body>"
    assert texts(html) == ["Title", "Text."]
    assert texts(html, Rules(select=("body",))) == ["Title", "Text.", "N"]


def blocks(*lines: str) -> list[Block]:
    return [Block("paragraph", t, ("S",)) for t in lines]


@pytest.mark.parametrize(("old", "new", "cosmetic"), [
    ("It's the user's data.", "It\u2019s the user\u2019s data.", True),
    ('Say "yes" - or no.', "Say \u201cyes\u201d \u2014 or no.", True),
    ("Terms of Service", "TERMS OF SERVICE", True),
    ("See https://a.example/x for more.", "See https://b.example/y for more.", True),
    ("We   keep data.", "We keep data .", True),
    ("We keep data for 30 days.", "We keep data for 90 days.", False),
    ("We keep data.", "We do not keep data.", False),
])
def test_cosmetic_edits(old: str, new: str, cosmetic: bool) -> None:
    assert is_cosmetic(blocks(old), blocks(new)) is cosmetic


def test_a_block_split_in_two_is_not_cosmetic() -> None:
    assert not is_cosmetic(blocks("One. Two."), blocks("One.", "Two."))


def test_volatile_blocks_suggested_pattern_and_masking() -> None:
    a = blocks("Policy", "Page generated at 10:00. Request id 1")
    b = blocks("Policy", "Page generated at 10:05. Request id 2")
    found = volatile_blocks([a, b])
    assert [(v.section, v.texts) for v in found] == [("S", [a[1].text, b[1].text])]
    pattern = suggest_pattern(found[0].texts)
    assert pattern == "^Page generated at .*"
    assert volatile_blocks([masked(a, [pattern]), masked(b, [pattern])]) == []
    assert [x.text for x in masked(a, [pattern])] == ["Policy", "\u2026"]
    assert suggest_pattern(["10:00 a", "10:05 a"]) is None


def test_ignore_patterns_are_bounded() -> None:
    assert pattern_problem("^Last updated .*") is None
    assert "at most" in (pattern_problem("a" * (MAX_PATTERN_CHARS + 1)) or "")
    assert "not a regular expression" in (pattern_problem("(") or "")
    assert "empty" in (pattern_problem(".*") or "")
    assert "at most" in (patterns_problem(["a"] * 21) or "")
