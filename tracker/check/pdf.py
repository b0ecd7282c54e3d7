"""PDF text extraction: a document's text layer as blocks with heading paths, like an HTML page's.

A PDF has no headings or paragraphs, only glyphs at positions, so they are recovered: pdfminer.six
(MIT) groups glyphs into lines and boxes in reading order; lines repeated at the same place on most
pages (running headers and footers, a print date, the file's URL) and page numbers are dropped; a
short box set larger than the body text, or wholly bold, is a heading, its level given by its style
(bigger first) and its numbering (`4.2` under `4`); words hyphenated at a line end are joined; a
paragraph cut by a page break is joined again, so that a page break that moved is never a change.
Each block keeps its page (Block.page, outside the hash). A re-generated file (new creation date
and ID) yields the same blocks. The file is hostile: pages, text and time are bounded, and an
encrypted, broken or text-less file is an error, never an empty version.
"""

from __future__ import annotations

import io
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tracker.check.blocks import Block, EmptyPage, Extracted, ExtractionError, NoText, NotText, Rules, normalise_text

if TYPE_CHECKING:
    from pdfminer.pdfpage import PDFPage

# Bounds on the work one PDF may cost (a hostile or broken file must fail, never stall a crawl).
MAX_PAGES = 1000
MAX_CHARS = 5_000_000
MAX_SECONDS = 120.0
# A line repeated at the same height on at least this share of the pages is a running header/footer.
RUNNING_SHARE = 0.5
_PAGE_NUMBER = re.compile(r"^(page\s*)?\d{1,4}(\s*(/|of)\s*\d{1,4})?$", re.I)
_NUMBERED = re.compile(r"^(\d{1,3}(?:\.\d{1,3})*)\.?\s+\S")
_MULTI_NUMBERED = re.compile(r"^\d{1,3}(?:\.\d{1,3})+\.?\s+[A-Z]")
_BULLETS = "•◦▪‣●○■–-*"
_BOLD = re.compile(r"bold|black|heavy|semibold|demi", re.I)
_DIGITS = re.compile(r"\d+")


@dataclass
class Line:
    """One line of text on a page, with where it stands and how it is set."""

    page: int
    box: int
    text: str
    x0: float
    y0: float
    x1: float
    size: float
    bold: bool


def extract_pdf(body: bytes, rules: Rules, content_type: str | None = None) -> Extracted:
    """The text of a PDF as blocks with heading paths (rules.select/remove do not apply to PDFs)."""
    if not body or body.isspace():
        raise EmptyPage("the response was empty")
    if b"%PDF-" not in body[:1024]:
        head = body[:512].lstrip().lower()
        if head.startswith((b"<!doctype html", b"<html")) or b"<body" in head:
            raise NotText("the response is an HTML page, not a PDF: if the page links to the PDF, "
                          "set `link_select` to the CSS selector of that link")
        raise NotText("the response is not a PDF (it does not start with %PDF-)")
    lines, pages = _read_lines(body)
    if pages == 0:
        raise NotText("the PDF is broken: it has no pages")
    kept = _drop_running(lines, pages)
    if not any(line.text.strip() for line in kept):
        raise NoText(f"the PDF has no text layer ({pages} page{'s' if pages != 1 else ''} of images or "
                     "drawings, a scan?): the tracker reads only PDFs with text, not OCR")
    return Extracted(blocks=_blocks(kept), encoding="pdf")


def _read_lines(body: bytes) -> tuple[list[Line], int]:
    """Every text line of the document, page by page, within the bounds."""
    from pdfminer.converter import PDFPageAggregator
    from pdfminer.layout import LAParams, LTChar, LTTextBox, LTTextLine
    from pdfminer.pdfdocument import PDFDocument, PDFPasswordIncorrect
    from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
    from pdfminer.pdfpage import PDFPage
    from pdfminer.pdfparser import PDFParser

    started = time.monotonic()
    try:
        document = PDFDocument(PDFParser(io.BytesIO(body)), password="")
        if not document.is_extractable:
            raise ExtractionError("the PDF forbids text extraction (its permissions): ask the publisher "
                                  "for an open copy or watch the HTML version")
        page_list = _pages(PDFPage.create_pages(document))
    except PDFPasswordIncorrect:
        raise ExtractionError("the PDF is encrypted with a password: the tracker cannot read it; watch "
                              "an unencrypted copy") from None
    except ExtractionError:
        raise
    except Exception as exc:  # pdfminer raises many kinds (PSEOF, PDFSyntaxError, KeyError...)
        raise NotText(f"the PDF is broken and cannot be read ({type(exc).__name__}: {exc})"[:300]) from None
    manager = PDFResourceManager()
    device = PDFPageAggregator(manager, laparams=LAParams())
    interpreter = PDFPageInterpreter(manager, device)
    lines: list[Line] = []
    chars = 0
    for number, page in enumerate(page_list, 1):
        if time.monotonic() - started > MAX_SECONDS:
            raise ExtractionError(f"reading the PDF took more than {MAX_SECONDS:g} s (tracker.check.pdf."
                                  f"MAX_SECONDS) by page {number}: a broken or hostile file")
        try:
            interpreter.process_page(page)
        except Exception as exc:
            raise NotText(f"page {number} of the PDF is broken ({type(exc).__name__}: {exc})"[:300]) from None
        layout = device.get_result()
        for box_no, box in enumerate(b for b in layout if isinstance(b, LTTextBox)):
            for tl in box:
                if not isinstance(tl, LTTextLine):
                    continue
                glyphs = [c for c in tl if isinstance(c, LTChar) and not c.get_text().isspace()]
                text = tl.get_text().strip()
                if not text or not glyphs:
                    continue
                chars += len(text)
                if chars > MAX_CHARS:
                    raise ExtractionError(f"the PDF holds more than {MAX_CHARS:,} characters of text "
                                          "(tracker.check.pdf.MAX_CHARS): a broken or hostile file")
                size = Counter(round(c.size, 1) for c in glyphs).most_common(1)[0][0]
                bold = all(_BOLD.search(c.fontname or "") for c in glyphs)
                lines.append(Line(number, box_no, text, tl.x0, layout.height - tl.y1, tl.x1, size, bold))
    return lines, len(page_list)


def _pages(pages: Iterable[PDFPage]) -> list[PDFPage]:
    """The document's pages, refused beyond MAX_PAGES before any is read."""
    out = []
    for page in pages:
        out.append(page)
        if len(out) > MAX_PAGES:
            raise ExtractionError(f"the PDF has more than {MAX_PAGES} pages (tracker.check.pdf.MAX_PAGES): "
                                  "watch its chapters as separate sources")
    return out


def _drop_running(lines: list[Line], pages: int) -> list[Line]:
    """The lines without running headers and footers (same text and height on most pages) and page numbers."""
    def key(line: Line) -> tuple[int, str]:
        return round(line.y0 / 2), _DIGITS.sub("#", line.text)

    on_pages: dict[tuple[int, str], set[int]] = {}
    for line in lines:
        on_pages.setdefault(key(line), set()).add(line.page)
    need = max(2, int(pages * RUNNING_SHARE + 0.999))
    running = {k for k, p in on_pages.items() if len(p) >= need}
    body_sizes = Counter(line.size for line in lines)
    body = body_sizes.most_common(1)[0][0] if body_sizes else 0.0
    return [line for line in lines
            if key(line) not in running and not (_PAGE_NUMBER.match(line.text) and line.size <= body)]


def _blocks(lines: list[Line]) -> list[Block]:
    """Boxes of lines as heading, paragraph and list item blocks with heading paths."""
    sizes = Counter()  # type: Counter[float]
    for line in lines:
        sizes[line.size] += len(line.text)
    body = sizes.most_common(1)[0][0]
    boxes: list[list[Line]] = []
    for line in lines:
        if boxes and boxes[-1][-1].page == line.page and boxes[-1][-1].box == line.box:
            boxes[-1].append(line)
        else:
            boxes.append([line])
    styles = sorted({_style(b[0]) for b in boxes if _is_heading(b, body)}, reverse=True)
    width = max((ln.x1 - ln.x0 for ln in lines if ln.size == body), default=0.0)
    blocks: list[Block] = []
    headings: list[tuple[int, str]] = []
    path: tuple[str, ...] = ()
    last_full = False
    for box in boxes:
        if _is_heading(box, body):
            text = normalise_text(" ".join(ln.text for ln in box))
            m = _NUMBERED.match(text)
            level = styles.index(_style(box[0])) * 10 + (m.group(1).count(".") + 1 if m else 0)
            while headings and headings[-1][0] >= level:
                headings.pop()
            headings.append((level, text))
            path = tuple(t for _, t in headings)
            blocks.append(Block("heading", text, path, page=box[0].page))
            last_full = False
            continue
        kind, text = _paragraph(box)
        if not text:
            continue
        prev = blocks[-1] if blocks else None
        if (last_full and prev is not None and prev.kind == "paragraph" and kind == "paragraph"
                and prev.page is not None and box[0].page == prev.page + 1 and prev.path == path):
            # The paragraph goes on from the last page (its last line was full): one block again.
            blocks[-1] = Block("paragraph", _join(prev.text, text), path, page=prev.page)
        else:
            blocks.append(Block(kind, text, path, page=box[0].page))
        last_full = width > 0 and box[-1].x1 - box[-1].x0 >= 0.85 * width
    return blocks


def _style(line: Line) -> tuple[float, bool]:
    return line.size, line.bold


def _is_heading(box: list[Line], body: float) -> bool:
    """A short box set larger than the body or wholly bold; or one line numbered like 4.2."""
    text = " ".join(ln.text for ln in box)
    if len(box) > 3 or len(text) > 200:
        return False
    first = box[0]
    if all(ln.size == first.size and ln.bold == first.bold for ln in box):
        if first.size > body * 1.1 or (first.bold and first.size >= body * 0.95):
            return True
    return len(box) == 1 and len(text) <= 120 and bool(_MULTI_NUMBERED.match(text))


def _paragraph(box: list[Line]) -> tuple[str, str]:
    """A box's kind and its text, lines joined and hyphenated words made whole."""
    text = ""
    for line in box:
        text = _join(text, line.text) if text else line.text
    text = normalise_text(text)
    if len(text) > 1 and text[0] in _BULLETS and text[1] == " ":
        return "list_item", text[2:].lstrip()
    return "paragraph", text


def _join(left: str, right: str) -> str:
    """Two runs of text as one: a word hyphenated at the line's end is joined again."""
    if len(left) > 1 and left.endswith("-") and left[-2].isalpha() and right[:1].islower():
        return left[:-1] + right
    return left + " " + right
