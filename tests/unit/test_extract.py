"""Extraction is pure: page noise, markup churn and hostile input, checked on real pages and crafted ones."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.support.policy_site import Document, page
from tracker.check.blocks import (
    Block,
    EmptyPage,
    ExtractionError,
    NoText,
    NotText,
    OverLimit,
    Rules,
    SelectorNoMatch,
    blocks_from_json,
    blocks_to_json,
)
from tracker.check.extract import extract, validate_selector
from tracker.check.limits import Limits

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pga"
RULES = Rules(select=("article.policy",), remove=(".cookie-banner", "nav"))
ARTICLE = """
<article class="policy">
  <h1>Privacy Policy</h1>
  <p>We collect <b>only</b> what we need.</p>
  <h2>How we use your information</h2>
  <p>To run the service. See <a href="https://example.com/help?utm_source=policy&amp;id=7">help</a>.</p>
  <ul><li>Account data</li><li>Usage data</li></ul>
</article>
"""


def wrap(article: str, *, noise: int = 0, head: str = "") -> str:
    """A page around an article, with noise that differs for every value of noise."""
    return f"""<!doctype html><html><head>{head}<title>Policy {noise}</title>
<script>window.t={noise};</script><style>.x{{color:#{noise:06x}}}</style></head>
<body data-build="{noise}"><div class="cookie-banner">Cookies {noise}</div>
<nav><a href="/a?r={noise}">Home {noise}</a></nav>
<main>{article}<aside>Trending item {noise}</aside></main>
<footer>Generated at 2026-11-{noise % 28 + 1:02d}T06:{noise % 60:02d}:00Z, request {noise}</footer></body></html>"""


def texts(blocks: list[Block]) -> list[tuple[str, str, str]]:
    return [(b.kind, b.section, b.text) for b in blocks]


# -- noise never changes the hash ------------------------------------------------------------


def test_noise_outside_the_selected_part_never_changes_the_hash() -> None:
    hashes = {extract(wrap(ARTICLE, noise=n).encode(), RULES).hash for n in range(25)}
    assert len(hashes) == 1


@pytest.mark.parametrize("slug", ["reddit-community-guidelines", "x-privacy-policy"])
def test_real_pages_with_fresh_noise_extract_identically(slug: str) -> None:
    doc = Document(FIXTURES / slug)
    for v in range(len(doc.versions)):
        first, second = page(doc, v), page(doc, v)
        assert first != second  # the site really does change its noise on every request
        a, b = extract(first.encode(), RULES), extract(second.encode(), RULES)
        assert a.hash == b.hash
        assert a.blocks == b.blocks
    # ...while each real version extracts to a different text.
    assert len({extract(page(doc, v).encode(), RULES).hash for v in range(len(doc.versions))}) == len(doc.versions)


def test_volatile_attributes_inside_the_selection_never_change_the_hash() -> None:
    plain = ('<article class="policy"><h2>Terms</h2><p>Be <a href="/x">nice</a>.</p>'
             '<img src="a.png" alt="logo"></article>')
    churned = ('<article class="policy v2 hashed-9f8e" id="a-123" data-reactid="77" style="margin:0">'
               '<h2 class="title-xyz" data-testid="h-1" aria-label="t">Terms</h2>'
               '<p nonce="abc" data-track=\'{"a":1}\'>Be <a href="/x?session=42&amp;_r=991" rel="nofollow" '
               'target="_blank" onclick="track()">nice</a>.</p><img src="b.png?v=2" srcset="c 2x" alt="logo" '
               'loading="lazy"></article>')
    a, b = extract(wrap(plain).encode(), RULES), extract(wrap(churned, noise=3).encode(), RULES)
    assert a.hash == b.hash
    assert texts(a.blocks) == [("heading", "Terms", "Terms"), ("paragraph", "Terms", "Be nice."),
                              ("paragraph", "Terms", "logo")]


def test_whitespace_inside_the_selection_never_changes_the_hash() -> None:
    tight = '<article class="policy"><h2>Data we keep</h2><p>We keep your data for 30 days.</p></article>'
    loose = ('<article class="policy">\n\n   <h2>\n\tData   we\n keep  </h2>\n'
             '  <p>  We&nbsp;keep your\u200b data\r\n  for   30\u00a0days.\n  </p>\n\n</article>')
    a, b = extract(wrap(tight).encode(), RULES), extract(wrap(loose, noise=9).encode(), RULES)
    assert a.hash == b.hash
    assert [blk.text for blk in b.blocks] == ["Data we keep", "We keep your data for 30 days."]


def test_tracking_query_parameters_inside_the_selection_never_change_the_hash() -> None:
    def article(link: str) -> str:
        return (f'<article class="policy"><p>Read <a href="{link}">our help page</a> or visit '
                f'{link.replace("&", "&amp;")} for details.</p></article>')

    base = "https://help.example.com/privacy?lang=en"
    variants = [base, base + "&utm_source=newsletter&utm_medium=email", base + "&fbclid=IwAR0xyz",
                base + "&gclid=Cj0K&utm_campaign=q4&_ga=2.1.2.3"]
    hashes = {extract(wrap(article(v), noise=n).encode(), RULES).hash for n, v in enumerate(variants)}
    assert len(hashes) == 1
    text = extract(wrap(article(variants[1])).encode(), RULES).blocks[0].text
    assert "utm_" not in text and "lang=en" in text  # meaningful parameters stay
    # A real change of the visible address is still a change.
    other = extract(wrap(article("https://help.example.com/privacy?lang=fr")).encode(), RULES)
    assert other.hash not in hashes


def test_a_real_edit_inside_the_selection_changes_the_hash() -> None:
    edited = ARTICLE.replace("only", "all")
    assert extract(wrap(ARTICLE).encode(), RULES).hash != extract(wrap(edited).encode(), RULES).hash


# -- hostile input ---------------------------------------------------------------------------


def test_scripts_styles_and_comments_inside_the_article_are_dropped() -> None:
    article = ('<article class="policy"><h2>Rules</h2><script>document.write("Injected rule")</script>'
               '<style>p{display:none}</style><noscript>Enable JavaScript</noscript><!-- hidden comment -->'
               '<p>Be kind.<script type="application/ld+json">{"x": 1}</script></p>'
               '<template><p>Template text</p></template><iframe src="x">frame</iframe>'
               '<p>Literal &lt;script&gt;alert(1)&lt;/script&gt; stays text.</p></article>')
    ex = extract(wrap(article).encode(), RULES)
    assert [b.text for b in ex.blocks] == ["Rules", "Be kind.", "Literal <script>alert(1)</script> stays text."]


def test_a_huge_page_is_extracted_in_full() -> None:
    sections = "".join(f"<h2>Section {i}</h2><p>Paragraph {i} of the policy text.</p>" for i in range(20_000))
    body = wrap(f'<article class="policy">{sections}</article>').encode()
    assert len(body) > 1_000_000
    ex = extract(body, RULES, limits=Limits(max_blocks=40_000))
    assert len(ex.blocks) == 40_000
    assert ex.blocks[-1] == Block("paragraph", "Paragraph 19999 of the policy text.", ("Section 19999",))
    # One block more than the limit allows: refused, naming the setting.
    with pytest.raises(OverLimit, match="more than 39999 blocks .TRACKER_MAX_BLOCKS"):
        extract(body, RULES, limits=Limits(max_blocks=39_999))


def test_deeply_nested_markup_is_read_or_refused_never_truncated() -> None:
    def nested(depth: int) -> bytes:
        return wrap('<article class="policy">' + "<div>" * depth + "Deep policy text" + "</div>" * depth
                    + "</article>").encode()

    # Deeper than Python's recursion limit and libxml2's default depth: still read.
    assert [b.text for b in extract(nested(1500), RULES).blocks] == ["Deep policy text"]
    # Beyond what the parser keeps: an error, never a version missing the deep text.
    with pytest.raises(ExtractionError, match="nests elements"):
        extract(nested(5000), RULES)


def test_broken_markup_is_repaired() -> None:
    body = b'<article class="policy"><h2>Terms<p>Unclosed heading and <b>bold <i>text</p><li>stray item</article>'
    ex = extract(body, RULES)
    assert "stray item" in [b.text for b in ex.blocks]
    assert any("Unclosed heading" in b.text for b in ex.blocks)


# -- encodings -------------------------------------------------------------------------------

TEXT = "Café — naïve “quotes” cost 50€"


def article_bytes(encoding: str, *, meta: str = "") -> bytes:
    return wrap(f'<article class="policy"><p>{TEXT}</p></article>', head=meta).encode(encoding)


def only_text(body: bytes, content_type: str | None = None) -> str:
    blocks = extract(body, RULES, content_type=content_type).blocks
    assert len(blocks) == 1
    return blocks[0].text


def test_latin1_declared_in_the_page() -> None:
    body = wrap('<article class="policy"><p>Café naïve ça</p></article>',
                head='<meta charset="iso-8859-1">').encode("latin-1")
    assert only_text(body) == "Café naïve ça"
    assert only_text(body, "text/html") == "Café naïve ça"


def test_cp1252_with_no_charset_anywhere() -> None:
    body = article_bytes("cp1252")
    assert only_text(body) == TEXT
    assert only_text(body, "text/html") == TEXT


def test_cp1252_served_as_utf8() -> None:
    assert only_text(article_bytes("cp1252"), "text/html; charset=utf-8") == TEXT


def test_utf8_with_a_bom_even_against_the_header() -> None:
    body = b"\xef\xbb\xbf" + article_bytes("utf-8")
    assert only_text(body) == TEXT
    assert only_text(body, "text/html; charset=iso-8859-1") == TEXT


def test_utf16_with_a_bom() -> None:
    body = b"\xff\xfe" + article_bytes("utf-16-le")
    assert only_text(body) == TEXT


@pytest.mark.parametrize("header", ["text/html; charset=iso-8859-1", "text/html; charset=windows-1252",
                                    "text/html; charset=us-ascii", "text/html; charset=no-such-charset"])
def test_utf8_served_with_a_wrong_header_charset(header: str) -> None:
    assert only_text(article_bytes("utf-8"), header) == TEXT


def test_utf8_with_a_wrong_meta_charset() -> None:
    assert only_text(article_bytes("utf-8", meta='<meta charset="windows-1252">')) == TEXT


@pytest.mark.parametrize(("encoding", "text"), [
    ("shift_jis", "プライバシーポリシー：情報の利用"), ("euc-kr", "개인정보처리방침 정보의 이용"),
    ("koi8-r", "Политика конфиденциальности"), ("iso-8859-7", "Πολιτική απορρήτου")])
def test_other_encodings_declared_in_the_page(encoding: str, text: str) -> None:
    body = wrap(f'<article class="policy"><p>{text}</p></article>',
                head=f'<meta http-equiv="Content-Type" content="text/html; charset={encoding}">').encode(encoding)
    assert only_text(body) == text
    assert only_text(body, f"text/html; charset={encoding}") == text


def test_the_same_text_in_any_encoding_has_the_same_hash() -> None:
    bodies = [(article_bytes("utf-8"), "text/html; charset=utf-8"), (article_bytes("cp1252"), None),
              (b"\xef\xbb\xbf" + article_bytes("utf-8"), "text/html; charset=iso-8859-1"),
              (article_bytes("utf-8"), "text/html; charset=iso-8859-1")]
    assert len({extract(b, RULES, content_type=ct).hash for b, ct in bodies}) == 1


# -- errors: never a version -----------------------------------------------------------------


def test_garbage_bytes_are_not_text() -> None:
    rng = random.Random(7)
    for _ in range(5):
        garbage = bytes(rng.getrandbits(8) for _ in range(4096))
        with pytest.raises(NotText):
            extract(garbage, RULES, content_type="text/html")
    with pytest.raises(NotText):
        extract(b"%PDF-1.7\n\x00\x01\x02binary\x00stream" * 50, RULES)
    with pytest.raises(NotText):  # a PNG served as text/html
        extract(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8, RULES, content_type="text/html")


@pytest.mark.parametrize("body", [b"", b"   \n\t  ", ""])
def test_an_empty_response_is_an_empty_page(body: bytes | str) -> None:
    with pytest.raises(EmptyPage):
        extract(body, RULES)


def test_a_selector_that_matches_nothing_names_the_selector() -> None:
    body = wrap('<div class="content-v2"><p>Moved policy text</p></div>').encode()
    with pytest.raises(SelectorNoMatch) as err:
        extract(body, RULES)
    assert "'article.policy'" in str(err.value) and "matched nothing" in str(err.value)
    with pytest.raises(SelectorNoMatch) as err:
        extract(body, Rules(select=("article.policy", "#terms")))
    assert "'article.policy'" in str(err.value) and "'#terms'" in str(err.value)


def test_a_selection_without_text_is_an_error() -> None:
    with pytest.raises(NoText):
        extract(wrap('<article class="policy"><div> </div><script>x()</script></article>').encode(), RULES)


def test_remove_rules_apply_inside_the_selection() -> None:
    article = ('<article class="policy"><p>Keep this.</p><div class="cookie-banner">Cookie text</div>'
               '<nav>Breadcrumbs</nav><p>And this.</p></article>')
    assert [b.text for b in extract(wrap(article).encode(), RULES).blocks] == ["Keep this.", "And this."]


def test_several_select_rules_in_document_order_without_duplicates() -> None:
    body = wrap('<article class="policy"><section id="a"><p>One</p></section></article><div id="b"><p>Two</p></div>')
    ex = extract(body.encode(), Rules(select=("article.policy", "#a", "#b")))
    assert [b.text for b in ex.blocks] == ["One", "Two"]


# -- structure: heading paths, tables, lists -------------------------------------------------


def test_heading_paths_follow_nesting() -> None:
    article = """<article class="policy">
      <h1>Privacy Policy</h1><p>Intro.</p>
      <h2>Information we collect</h2><p>Collect.</p>
        <div><h3>Information you provide</h3><p>Provide.</p></div>
        <h4>Account details</h4><p>Account.</p>
      <h2>How we use information</h2><p>Use.</p>
        <h4>Skipped a level</h4><p>Deep.</p>
        <h3>Back to three</h3><p>Three.</p>
      <h1>Cookie Policy</h1><p>Cookies.</p>
    </article>"""
    got = [(b.kind, b.path, b.text) for b in extract(wrap(article).encode(), RULES).blocks]
    pp, info, use = "Privacy Policy", "Information we collect", "How we use information"
    assert got == [
        ("heading", (pp,), pp),
        ("paragraph", (pp,), "Intro."),
        ("heading", (pp, info), info),
        ("paragraph", (pp, info), "Collect."),
        ("heading", (pp, info, "Information you provide"), "Information you provide"),
        ("paragraph", (pp, info, "Information you provide"), "Provide."),
        ("heading", (pp, info, "Information you provide", "Account details"), "Account details"),
        ("paragraph", (pp, info, "Information you provide", "Account details"), "Account."),
        ("heading", (pp, use), use),
        ("paragraph", (pp, use), "Use."),
        ("heading", (pp, use, "Skipped a level"), "Skipped a level"),
        ("paragraph", (pp, use, "Skipped a level"), "Deep."),
        ("heading", (pp, use, "Back to three"), "Back to three"),
        ("paragraph", (pp, use, "Back to three"), "Three."),
        ("heading", ("Cookie Policy",), "Cookie Policy"),
        ("paragraph", ("Cookie Policy",), "Cookies."),
    ]
    assert Block("paragraph", "x", (pp, info)).section == "Privacy Policy > Information we collect"


def test_tables_become_table_rows() -> None:
    article = """<article class="policy"><h2>Retention</h2><table>
      <caption>How long we keep data</caption>
      <thead><tr><th>Data</th><th>Kept for</th></tr></thead>
      <tbody><tr><td>Messages</td><td>30 <b>days</b></td></tr>
      <tr><td>Logs</td><td>18 months</td></tr><tr><td> </td><td></td></tr></tbody></table></article>"""
    got = [(b.kind, b.section, b.text) for b in extract(wrap(article).encode(), RULES).blocks]
    assert got == [
        ("heading", "Retention", "Retention"),
        ("caption", "Retention", "How long we keep data"),
        ("table_row", "Retention", "Data | Kept for"),
        ("table_row", "Retention", "Messages | 30 days"),
        ("table_row", "Retention", "Logs | 18 months"),
    ]


def test_lists_become_list_items() -> None:
    article = """<article class="policy"><h2>We collect</h2><p>The following:</p>
      <ul><li>Your <em>name</em></li><li>Your email<ul><li>work</li><li>personal</li></ul></li></ul>
      <ol><li>First</li></ol><dl><dt>Cookie</dt><dd>A small file.</dd></dl></article>"""
    got = [(b.kind, b.text) for b in extract(wrap(article).encode(), RULES).blocks]
    assert got == [("heading", "We collect"), ("paragraph", "The following:"), ("list_item", "Your name"),
                   ("list_item", "Your email"), ("list_item", "work"), ("list_item", "personal"),
                   ("list_item", "First"), ("term", "Cookie"), ("definition", "A small file.")]
    assert all(b.section == "We collect" for b in extract(wrap(article).encode(), RULES).blocks)


def test_real_fixture_structure() -> None:
    doc = Document(FIXTURES / "x-privacy-policy")
    blocks = extract(page(doc, 4).encode(), RULES).blocks
    kinds = {b.kind for b in blocks}
    assert {"heading", "paragraph", "list_item"} <= kinds
    assert "X Privacy Policy > 1. Information We Collect" in {b.section for b in blocks}
    assert not any("cookies" in b.text.lower() and "Accept" in b.text for b in blocks)  # banner removed


def test_blocks_and_rules_round_trip() -> None:
    blocks = extract(wrap(ARTICLE).encode(), RULES).blocks
    assert blocks_from_json(blocks_to_json(blocks)) == blocks
    assert Rules(select=("a",)).hash == Rules(select=("a",)).hash != Rules(select=("b",)).hash
    assert validate_selector("article.policy") is None
    assert validate_selector("article[") is not None


def test_control_characters_next_to_a_dropped_element_are_read_not_a_crash() -> None:
    # lxml refuses a form feed or other control character in a text it is given; the tail of a
    # removed script used to carry one into the parent and crash the check with a ValueError.
    body = wrap('<article class="policy"><p>Before<script>x()</script>\x0cafter\x01 the\x0bend</p></article>')
    blocks = extract(body.encode(), RULES).blocks
    assert texts(blocks) == [("paragraph", "", "Before after the end")]
