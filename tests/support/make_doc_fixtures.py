"""Regenerate tests/fixtures/docs: PDF and JSON forms of real versions of the X Privacy Policy.

    /work/main/.venv/bin/python -m tests.support.make_doc_fixtures [--chromium /usr/bin/chromium]

The PDFs are printed by headless Chromium (`--print-to-pdf`, with its running header and footer:
print date, title, file URL, page x/y) from the policy site's own rendering of versions 2 and 3
(tests/support/policy_site.py: the same markdown-it HTML it serves inside <article>), without the
site's per-request noise (random navigation, timestamps), which would be part of a printed page's
text. Only an excerpt is printed to keep the files small: the title and sections 6 to 10, which hold
every difference between the two versions. Version 2 is printed twice, a second apart, so that the
reprint has its own creation date and file ID: the same text in a re-generated file.
The JSON files hold the whole of each version as nested headings (see policy_json).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.policy_site import Document

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DOC = FIXTURES / "pga" / "x-privacy-policy"
OUT = FIXTURES / "docs"
VERSIONS = (2, 3)
EXCERPT_FROM = r"6\. Your Rights and Ours"
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


def excerpt(markdown: str) -> str:
    """The title (first two lines) and everything from section 6 on."""
    lines = markdown.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == EXCERPT_FROM)
    return "\n".join(lines[:2] + [""] + lines[start:]) + "\n"


def plain(md: str) -> str:
    """Markdown inline text as plain text: link texts, no emphasis or escapes."""
    return " ".join(_LINK.sub(r"\1", md).replace("**", "").replace("\\", "").split())


def policy_json(markdown: str, date: str) -> dict[str, Any]:
    """A version as JSON: {"meta": ..., "policy": {heading: {subheading: [paragraphs]}}}.

    Setext headings (=== and ---) nest as keys; a paragraph that is a wholly bold one-liner numbered
    like 6.1 is a subheading; paragraphs are lists under the key "text".
    """
    policy: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(0, policy)]
    lines = markdown.splitlines()
    para: list[str] = []

    def flush() -> None:
        if para:
            stack[-1][1].setdefault("text", []).append(plain(" ".join(para)))
            para.clear()

    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if re.fullmatch(r"=+|-+", line.strip()) and line.strip():
            continue
        level = 1 if re.fullmatch(r"=+", nxt.strip() or "x") else 2 if re.fullmatch(r"-+", nxt.strip() or "x") else 0
        bold = re.fullmatch(r"\*\*(\d+(?:\.\d+)+ [^*]+)\*\*", line.strip())
        if bold:
            level = 3
        if level:
            flush()
            while stack[-1][0] >= level:
                stack.pop()
            node: dict[str, Any] = {}
            stack[-1][1][plain(bold.group(1) if bold else line)] = node
            stack.append((level, node))
        elif line.strip():
            para.append(line)
        else:
            flush()
    flush()
    return {"meta": {"source": "Platform Governance Archive (ODC-By 1.0)", "version_date": date},
            "policy": policy}


def print_pdf(chromium: str, page: str, out: Path) -> None:
    """Print an HTML page to a PDF with headless Chromium (its default header and footer included)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "x-privacy-policy.html"
        src.write_text(page, encoding="utf-8")
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        f"--print-to-pdf={out}", src.as_uri()], check=True, capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    doc = Document(DOC)
    for v in VERSIONS:
        md = (DOC / f"{v:04d}.md").read_text(encoding="utf-8")
        (OUT / f"x-privacy-policy-v{v}.json").write_text(
            json.dumps(policy_json(md, doc.versions[v]["date"]), indent=1, ensure_ascii=False) + "\n")
        doc.folder = Path(tempfile.mkdtemp())
        (doc.folder / f"{v:04d}.md").write_text(excerpt(md), encoding="utf-8")
        body = doc.body(v)
        doc.folder, doc._html = DOC, {}
        page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(doc.title)}'
                f"</title></head><body><article class=\"policy\">{body}</article></body></html>")
        print_pdf(args.chromium, page, OUT / f"x-privacy-policy-v{v}.pdf")
        if v == VERSIONS[0]:
            time.sleep(1.1)  # another creation date
            print_pdf(args.chromium, page, OUT / f"x-privacy-policy-v{v}-reprint.pdf")
    for f in sorted(OUT.iterdir()):
        print(f"{f.name:40} {f.stat().st_size:>8} bytes")


if __name__ == "__main__":
    main()
