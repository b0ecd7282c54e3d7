"""The pdf and json extractors on hard cases: pure functions, bytes in, blocks out."""

from __future__ import annotations

import io
import json

import pytest

from spiders import KINDS
from tests.conftest import FIXTURES
from tests.support.tiny_pdf import Text, make_pdf
from tracker.check import pdf as pdfmod
from tracker.check.blocks import Block, ExtractionError, NoText, NotText, Rules, SelectorNoMatch, blocks_hash
from tracker.check.jsondoc import extract_json, validate_jmespath
from tracker.check.kinds import Shape, rule_problems

PDF_RULES = Rules(kind="pdf")
DOCS = FIXTURES / "docs"


def three_pages() -> bytes:
    """Three pages with a running header, page numbers, headings, a hyphenated word and a paragraph
    that runs on over a page break."""
    def page(n: int, body: list[Text]) -> list[Text]:
        return [Text(50, 810, f"ACME Terms - printed 12/{n}/26", 8), *body, Text(500, 20, f"{n} / 3", 8)]

    return make_pdf([
        page(1, [Text(50, 760, "ACME Terms", 20, True), Text(50, 730, "4 Safety", 14, True),
                 Text(50, 700, "We keep users safe with regu-"), Text(50, 686, "lar reviews of every report."),
                 Text(50, 650, "4.2 Minors", 11, True),
                 Text(50, 620, "People under thirteen may not use the service, and accounts that")]),
        page(2, [Text(50, 760, "we find to belong to them are closed."),
                 Text(50, 730, "4.2.1 Appeals are heard by staff")]),
        page(3, [Text(50, 760, "5 Changes", 14, True), Text(50, 730, "We tell you first.")]),
    ])


def test_pdf_layout_becomes_headings_and_paragraphs_without_running_lines() -> None:
    blocks = pdfmod.extract_pdf(three_pages(), PDF_RULES).blocks
    assert [(b.page, b.kind, b.section, b.text) for b in blocks] == [
        (1, "heading", "ACME Terms", "ACME Terms"),
        (1, "heading", "ACME Terms > 4 Safety", "4 Safety"),
        (1, "paragraph", "ACME Terms > 4 Safety", "We keep users safe with regular reviews of every report."),
        (1, "heading", "ACME Terms > 4 Safety > 4.2 Minors", "4.2 Minors"),
        (1, "paragraph", "ACME Terms > 4 Safety > 4.2 Minors",
         "People under thirteen may not use the service, and accounts that we find to belong to them are closed."),
        (2, "heading", "ACME Terms > 4 Safety > 4.2 Minors > 4.2.1 Appeals are heard by staff",
         "4.2.1 Appeals are heard by staff"),
        (3, "heading", "ACME Terms > 5 Changes", "5 Changes"),
        (3, "paragraph", "ACME Terms > 5 Changes", "We tell you first."),
    ]


def test_a_chromium_reprint_has_the_same_blocks_and_the_headers_are_gone() -> None:
    v2, reprint = ((DOCS / f"x-privacy-policy-{v}.pdf").read_bytes() for v in ("v2", "v2-reprint"))
    assert v2 != reprint
    a, b = pdfmod.extract_pdf(v2, PDF_RULES), pdfmod.extract_pdf(reprint, PDF_RULES)
    assert a.hash == b.hash and a.blocks == b.blocks
    text = "\n".join(x.text for x in a.blocks)
    assert "file://" not in text and "1/2" not in text and "AM" not in text.split()
    assert {x.page for x in a.blocks} == {1, 2}
    assert "X Privacy Policy > 6. Your Rights and Ours > 6.1 We have specific legal bases to use your information." \
        in {x.section for x in a.blocks}


def test_the_page_is_kept_with_the_block_but_is_not_its_text() -> None:
    a, b = Block("paragraph", "x", ("A",), page=1), Block("paragraph", "x", ("A",), page=2)
    assert a == b and blocks_hash([a]) == blocks_hash([b])
    assert Block.from_json(a.to_json()).page == 1
    assert "page" not in Block("paragraph", "x").to_json()  # html versions are stored as before


@pytest.mark.parametrize(("body", "error", "fragment"), [
    (b"", ExtractionError, "empty"),
    (bytes(range(256)) * 8, NotText, "not a PDF"),
    (b"<!doctype html><html><body><a href='x.pdf'>PDF</a></body></html>", NotText, "link_select"),
    (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF",
     NotText, "broken"),
    (make_pdf([[]]), NoText, "no text layer"),
    (make_pdf([[Text(50, 20, "1", 8)], [Text(50, 20, "2", 8)]]), NoText, "no text layer"),
])
def test_pdfs_that_cannot_give_text_fail_clearly(body: bytes, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        pdfmod.extract_pdf(body, PDF_RULES)


def test_a_truncated_pdf_fails_as_broken() -> None:
    body = three_pages()
    with pytest.raises(ExtractionError):
        pdfmod.extract_pdf(body[: len(body) // 3], PDF_RULES)


def test_an_encrypted_pdf_fails_naming_the_password() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(three_pages())))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(ExtractionError, match="encrypted with a password"):
        pdfmod.extract_pdf(out.getvalue(), PDF_RULES)


def test_page_and_text_limits_name_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdfmod, "MAX_PAGES", 2)
    with pytest.raises(ExtractionError, match=r"more than 2 pages \(tracker.check.pdf.MAX_PAGES\)"):
        pdfmod.extract_pdf(three_pages(), PDF_RULES)
    monkeypatch.setattr(pdfmod, "MAX_PAGES", 10)
    monkeypatch.setattr(pdfmod, "MAX_CHARS", 50)
    with pytest.raises(ExtractionError, match="MAX_CHARS"):
        pdfmod.extract_pdf(three_pages(), PDF_RULES)


def test_hyphens_are_joined_only_inside_words() -> None:
    assert pdfmod._join("regu-", "lation") == "regulation"
    assert pdfmod._join("ages 13-", "17 only") == "ages 13- 17 only"
    assert pdfmod._join("the e-", "Mail Act") == "the e- Mail Act"


POLICY = {"policies": {"minors": {"age_limit": 13, "notes": ["Parents can ask", "Schools too"]},
                       "ads": [{"title": "Targeting", "text": "No profiling of minors"}, {"text": "Untitled"}]},
          "meta": {"generated": "2024-01-01T00:00:00Z"}}


def json_blocks(data: object, *select: str) -> list[tuple[str, str, str]]:
    blocks = extract_json(json.dumps(data).encode(), Rules(select=select, kind="json")).blocks
    return [(b.kind, b.section, b.text) for b in blocks]


def test_json_values_become_blocks_under_their_key_paths() -> None:
    assert json_blocks(POLICY, "policies") == [
        ("paragraph", "policies > ads > Targeting > text", "No profiling of minors"),
        ("paragraph", "policies > ads > Targeting > title", "Targeting"),
        ("paragraph", "policies > ads > #2 > text", "Untitled"),
        ("paragraph", "policies > minors > age_limit", "13"),
        ("list_item", "policies > minors > notes", "Parents can ask"),
        ("list_item", "policies > minors > notes", "Schools too"),
    ]
    assert json_blocks(POLICY, "policies.minors.age_limit") == [("paragraph", "policies > minors > age_limit", "13")]
    assert json_blocks(POLICY, "policies.ads[?title].text") == [("list_item", "", "No profiling of minors")]


def test_json_key_order_and_formatting_never_make_a_change() -> None:
    def reverse(v: object) -> object:
        return {k: reverse(v[k]) for k in reversed(list(v))} if isinstance(v, dict) else v

    a = extract_json(json.dumps(POLICY).encode(), Rules(select=("policies",), kind="json"))
    b = extract_json(json.dumps(reverse(POLICY), indent=7).encode(), Rules(select=("policies",), kind="json"))
    assert a.hash == b.hash


@pytest.mark.parametrize(("body", "select", "error", "fragment"), [
    (b"{\"a\": 1}", ("missing",), SelectorNoMatch, "selected nothing"),
    (b"{\"a\": []}", ("a",), SelectorNoMatch, "selected nothing"),
    (b"{\"a\": 1", (), NotText, "not JSON"),
    (b"[" * 5000 + b"]" * 5000, (), ExtractionError, "deep"),
    (b"", (), ExtractionError, "empty"),
])
def test_json_that_gives_nothing_fails_clearly(body: bytes, select: tuple[str, ...], error: type[Exception],
                                               fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        extract_json(body, Rules(select=select, kind="json"))


def test_rules_are_checked_against_the_kind() -> None:
    assert validate_jmespath("policies.minors") is None
    assert validate_jmespath("policies[?") is not None
    def problems(kind: str, select: list[str], link_select: str | None = None) -> list[str]:
        return rule_problems(KINDS[kind], select=select, remove=[], link_select=link_select, kinds=KINDS)

    assert problems("json", ["a[?"])[0].startswith("select: invalid JMESPath expression 'a[?'")
    assert problems("pdf", ["article"])
    assert problems("html", [], "a.pdf") == ["link_select: applies to kind pdf only, not html"]
    assert problems("pdf", [], "a[") != []
    assert problems("pdf", [], "a.current") == []


def test_every_kind_has_a_spider_and_a_reader_of_its_shape() -> None:
    kinds = {"html", "pdf", "json", "ecfr", "feed", "federal_register"}
    assert set(KINDS) == kinds
    for name, kind in KINDS.items():
        assert kind.name == name and kind.spider.name == name and kind.description
        assert (kind.extract if kind.shape is Shape.DOCUMENT else kind.entries) is not None


def test_an_index_page_link_is_followed_only_to_the_web() -> None:
    from spiders.documents import link_target

    base = "https://regulator.example/codes/"
    assert link_target(base, "files/code-2024.pdf") == "https://regulator.example/codes/files/code-2024.pdf"
    assert link_target(base, "//cdn.example/c.pdf") == "https://cdn.example/c.pdf"
    for hostile in ("file:///etc/passwd", "data:application/pdf;base64,JVBERi0=", "ftp://x/c.pdf",
                    "javascript:alert(1)"):
        assert link_target(base, hostile) is None


def test_each_page_of_a_document_of_several_is_extracted_and_a_failing_one_is_named() -> None:
    from tracker.check.kinds import extract_kind
    from tracker.check.parts import PARTS_TYPE, Part, encode_parts

    page = b"<html><body><h1>%s</h1><p>Text of %s.</p></body></html>"
    body = encode_parts([Part("https://a.example/1", "text/html", page % (b"One", b"one")),
                         Part("https://a.example/2", "text/html", page % (b"Two", b"two"))])
    blocks = extract_kind(body, Rules(), PARTS_TYPE, kind=KINDS["html"]).blocks
    assert [(b.section, b.text) for b in blocks] == [("One", "One"), ("One", "Text of one."),
                                                     ("Two", "Two"), ("Two", "Text of two.")]
    broken = encode_parts([Part("https://a.example/1", "text/html", page % (b"One", b"one")),
                           Part("https://a.example/2", "text/html", b"")])
    with pytest.raises(ExtractionError, match=r"^page 2 \(https://a.example/2\): the response was empty"):
        extract_kind(broken, Rules(), PARTS_TYPE, kind=KINDS["html"])
