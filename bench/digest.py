#!/usr/bin/env python3
"""Time rendering one digest that carries 500 real changes (target: under a second).

Real diffs: consecutive versions of the corpus documents (../shared/corpus/pga) are extracted and
diffed as a crawl would; 500 changes are stored in a fresh SQLite database, half of them mapped to
SOPs as impacts (some overdue), half touching no SOP, and two sources failing. One recipient on
the everything list gets them all. Timed separately, best of --repeat runs:
  build   loading impacts, changes and health from the database and cutting excerpts
  render  Jinja HTML + text parts, and css-inline on the HTML
  message the multipart/alternative message as bytes

Run:  .venv/bin/python bench/digest.py [--changes 500] [--repeat 3]
Exit: 0 when build + render is under the target (1 s), 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from markdown_it import MarkdownIt  # noqa: E402

from bench._util import CORPUS, machine  # noqa: E402
from tracker.check.blocks import Rules  # noqa: E402
from tracker.check.diff import Diff, diff_blocks  # noqa: E402
from tracker.check.extract import extract  # noqa: E402
from tracker.config import Settings  # noqa: E402
from tracker.notify.digest import build_digests  # noqa: E402
from tracker.notify.email import build_message  # noqa: E402
from tracker.notify.render import render_digest  # noqa: E402
from tracker.store.db import make_engine, session_scope, upgrade, utcnow  # noqa: E402
from tracker.store.models import Change, CheckState, Impact, Sop, Source, Version  # noqa: E402

TARGET_S = 1.0
RULES = Rules(select=("article.policy",))
EVERYONE = "everything@example.com"
_md = MarkdownIt("commonmark").enable("table")


def real_diffs(limit: int) -> list[tuple[str, Diff]]:
    """(document, diff) for consecutive corpus versions, round-robin over documents, up to `limit`."""
    per_doc: dict[str, list[Diff]] = {}
    docs = sorted(d for d in CORPUS.iterdir() if d.is_dir())
    for doc in docs:
        files = sorted(doc.glob("*.md"))
        prev = None
        diffs: list[Diff] = []
        for f in files[: limit // len(docs) + 2]:
            page = f"<html><body><article class='policy'>{_md.render(f.read_text())}</article></body></html>"
            blocks = extract(page.encode(), RULES, content_type="text/html").blocks
            if prev is not None:
                d = diff_blocks(prev, blocks)
                if d:
                    diffs.append(d)
            prev = blocks
        per_doc[doc.name] = diffs
    out: list[tuple[str, Diff]] = []
    while len(out) < limit and any(per_doc.values()):
        for name, diffs in per_doc.items():
            if diffs and len(out) < limit:
                out.append((name, diffs.pop(0)))
    while len(out) < limit:  # a small corpus: reuse diffs
        out.append(out[len(out) % max(1, len(out))])
    return out


def populate(url: str, n: int) -> None:
    """Sources, one SOP per source, n changes (half mapped to SOPs), two failing sources."""
    now = utcnow()
    diffs = real_diffs(n)
    with session_scope(make_engine(url)) as s:
        names = sorted({name for name, _ in diffs})
        for name in names:
            s.add(Source(id=name, name=name.replace("-", " ").title(), url=f"https://policies.example/{name}"))
            s.add(Sop(id=f"sop-{name}", title=f"SOP for {name}", owner=f"owner-{name}@example.com",
                      watches=[{"source": name, "sections": ["*"], "keywords": []}]))
        s.flush()
        for name in names[:2]:
            s.add(CheckState(source_id=name, consecutive_failures=3, error_since=now - timedelta(hours=9),
                             last_error=f"HTTP 503 from https://policies.example/{name}", last_result="failed"))
        versions: dict[str, int] = {}
        for k, (name, d) in enumerate(diffs):
            v = Version(source_id=name, text_hash=f"{k:064d}", rules_hash="0" * 64)
            s.add(v)
            s.flush()
            prev = versions.get(name)
            if prev is None:
                prev_v = Version(source_id=name, text_hash=f"p{k:063d}", rules_hash="0" * 64)
                s.add(prev_v)
                s.flush()
                prev = prev_v.id or 0
            versions[name] = v.id or 0
            change = Change(source_id=name, from_version_id=prev, to_version_id=v.id or 0,
                            detected_at=now - timedelta(minutes=10 * (n - k)), sections=d.sections,
                            added=d.added, removed=d.removed, modified=d.modified, diff=d.to_json())
            s.add(change)
            s.flush()
            if k % 2 == 0:
                s.add(Impact(change_id=change.id or 0, sop_id=f"sop-{name}", source_id=name,
                             status=("open", "needs_update", "in_progress")[k % 3],
                             reasons=[{"watch": 0, "source": name, "sections": d.sections[:2], "keywords": []}],
                             due_date=(now + timedelta(days=(k % 7) - 3)).date()))


def best(repeat: int, fn):  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    settings = Settings(_env_file=None, digest_everything_to=[EVERYONE], timezone="Europe/Berlin",  # type: ignore[call-arg]
                        base_url="https://tracker.example.com", digest_lookback_days=30)
    with tempfile.TemporaryDirectory(prefix="bench-digest-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        t = time.perf_counter()
        populate(url, args.changes)
        setup = time.perf_counter() - t
        engine = make_engine(url)

        def build():  # type: ignore[no-untyped-def]
            with session_scope(engine) as s:
                (content,) = build_digests(session=s, settings=settings, to=[EVERYONE])
            return content

        t_build, content = best(args.repeat, build)
        t_render, rendered = best(args.repeat, lambda: render_digest(content, base_url=settings.base_url,
                                                                     timezone=settings.timezone))
        t_msg, raw = best(args.repeat, lambda: build_message(rendered=rendered, sender=settings.mail_from,
                                                             recipient=EVERYONE, now=utcnow()).as_bytes())
        engine.dispose()
    total = t_build + t_render
    print(f"machine: {machine()}")
    print(f"digest of {len(content.impacts)} impacts + {len(content.changes)} unmapped changes "
          f"= {len(content.impacts) + len(content.changes)} changes, {len(content.failing)} failing sources "
          f"(setup {setup:.1f} s)")
    print(f"  build   {t_build * 1000:8.1f} ms  (database + excerpts)")
    print(f"  render  {t_render * 1000:8.1f} ms  (HTML + text + css-inline; HTML {len(rendered.html) / 1024:.0f} KiB, "
          f"text {len(rendered.text) / 1024:.0f} KiB)")
    print(f"  message {t_msg * 1000:8.1f} ms  ({len(raw) / 1024:.0f} KiB as sent)")
    print(f"  total   {total * 1000:8.1f} ms  build + render (target < {TARGET_S * 1000:.0f} ms): "
          f"{'OK' if total < TARGET_S else 'TOO SLOW'}")
    return 0 if total < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
