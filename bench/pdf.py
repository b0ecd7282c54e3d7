#!/usr/bin/env python3
"""Time PDF extraction (tracker.check.pdf) per page on a 50-page document printed by Chromium.

The document is real policy text: every version of every document under ../shared/corpus/pga (else
tests/fixtures/pga), rendered by the policy site's markdown renderer and printed by headless
Chromium with its running header and footer, then cut to --pages pages with pypdf. Without Chromium
the fixture PDFs (tests/fixtures/docs) are repeated up to --pages pages instead (say which it used).

Run:  .venv/bin/python bench/pdf.py [--pages 50] [--repeat 3] [--chromium /usr/bin/chromium]
Prints the page count, blocks and headings found, and the time per page (best of --repeat runs).
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import CORPUS, ROOT, machine  # noqa: E402
from tests.support.make_doc_fixtures import print_pdf  # noqa: E402
from tests.support.policy_site import Document  # noqa: E402
from tracker.check.blocks import Rules  # noqa: E402
from tracker.check.pdf import extract_pdf  # noqa: E402


def printed(chromium: str, pages: int) -> bytes:
    """A PDF of at least `pages` pages of corpus text, printed by Chromium."""
    corpus = CORPUS if CORPUS.is_dir() else ROOT / "tests" / "fixtures" / "pga"
    parts = []
    for folder in sorted(p for p in corpus.iterdir() if (p / "index.json").exists()):
        doc = Document(folder)
        parts += [doc.body(v) for v in range(len(doc.versions))]
        if sum(map(len, parts)) > pages * 6000:  # ~3-4 KB of HTML per printed page: enough
            break
    page = ('<!doctype html><html><head><meta charset="utf-8"><title>Policy corpus</title></head><body>'
            + "".join(f"<article>{p}</article>" for p in parts) + "</body></html>")
    out = Path("/tmp") / f"bench-pdf-{time.time_ns()}.pdf"
    try:
        print_pdf(chromium, page, out)
        return out.read_bytes()
    finally:
        out.unlink(missing_ok=True)


def repeated_fixtures() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for f in sorted((ROOT / "tests" / "fixtures" / "docs").glob("*.pdf")) * 50:
        writer.append(PdfReader(f))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def first_pages(body: bytes, pages: int) -> tuple[bytes, int]:
    from pypdf import PdfReader, PdfWriter

    reader = PdfReader(io.BytesIO(body))
    writer = PdfWriter()
    for p in reader.pages[:pages]:
        writer.add_page(p)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), min(pages, len(reader.pages))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    if shutil.which(args.chromium):
        source, body = "printed by Chromium from the corpus", printed(args.chromium, args.pages)
    else:
        source, body = "fixture PDFs repeated (no Chromium)", repeated_fixtures()
    body, pages = first_pages(body, args.pages)
    rules = Rules(kind="pdf")
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        extracted = extract_pdf(body, rules)
        times.append(time.perf_counter() - started)
    best = min(times)
    headings = sum(b.kind == "heading" for b in extracted.blocks)
    print(f"machine: {machine()}")
    print(f"document: {pages} pages, {len(body) / 1024:.0f} KB, {source}")
    print(f"extracted: {len(extracted.blocks)} blocks, {headings} headings")
    print(f"extraction: {best:.2f} s for the document, {best / pages * 1000:.1f} ms per page "
          f"(best of {args.repeat}; worst {max(times) / pages * 1000:.1f} ms per page)")


if __name__ == "__main__":
    main()
