"""`tracker demo`: the whole product on a bundled sample, offline, in a temporary folder, in seconds.

It creates a SQLite database, serves two real policy documents on a local port (tracker.demo.site),
syncs sample sources and SOPs, crawls, moves both documents to their next real version, crawls
again, writes a digest preview, and says what to look at and with which commands.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from tracker.config import Settings
from tracker.demo.site import DemoSite
from tracker.paths import demo_data_dir
from tracker.store.db import make_engine, session_scope, upgrade
from tracker.store.models import Change, Impact, Sop, Source

Echo = Callable[[str], None]


class DemoError(Exception):
    """The demo could not run (the message says why and what to do)."""


@dataclass
class DemoResult:
    """What the demo made, for the summary and for tests."""

    directory: Path
    database_url: str
    site_url: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    impacts: list[dict[str, Any]] = field(default_factory=list)
    previews: list[Path] = field(default_factory=list)
    digest_note: str = ""
    seconds: float = 0.0


def _crawl_env(database_url: str) -> dict[str, str]:
    # The demo ignores the user's TRACKER_* settings: its own database, no politeness delay locally.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env.update({"TRACKER_DATABASE_URL": database_url, "TRACKER_DOWNLOAD_DELAY": "0", "TRACKER_RETRY_TIMES": "1"})
    return env


def _crawl(directory: Path, database_url: str, echo: Echo) -> str:
    """One `tracker crawl` in a subprocess (Scrapy's reactor runs once per process); returns its summary."""
    out = subprocess.run([sys.executable, "-m", "tracker", "crawl"], env=_crawl_env(database_url), cwd=directory,
                         capture_output=True, text=True, timeout=120)
    if out.returncode not in (0, 3):
        raise DemoError(f"the crawl failed (exit {out.returncode}): {(out.stderr or out.stdout).strip()[-2000:]}")
    for line in out.stderr.splitlines():
        echo(f"      {line}")
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "no summary"


def _sync(engine: Any, directory: Path, base_url: str) -> tuple[str, str]:
    from spiders import KINDS
    from tracker.declare.sops import load_sops_file, sync_sops
    from tracker.declare.sources import load_sources_file, sync_sources

    data = demo_data_dir()
    sources = directory / "sources.yaml"
    sources.write_text((data / "sources.yaml").read_text(encoding="utf-8").replace("DEMO_SITE", base_url),
                       encoding="utf-8")
    sops = directory / "sops.yaml"
    sops.write_text((data / "sops.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    with session_scope(engine) as s:
        src_report = sync_sources(session=s, specs=load_sources_file(sources, kinds=KINDS))
    with session_scope(engine) as s:
        known = s.exec(select(Source.id)).all()
        sop_report = sync_sops(session=s, sop_file=load_sops_file(sops, known_sources=known), actor="demo@example.com")
    return src_report.summary(), sop_report.summary()


def _digest(engine: Any, settings: Settings, directory: Path) -> tuple[list[Path], str]:
    try:
        from tracker.notify.digest import run_digest
    except ImportError:
        return [], "the digest module is not available in this version"
    try:
        run = run_digest(engine=engine, settings=settings, send=False, preview_dir=directory / "digest")
    except Exception as exc:  # the rest of the demo is still worth showing
        return [], f"the digest preview failed: {exc}"
    return list(run.previews), run.summary()


def _facts(engine: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with Session(engine) as s:
        changes = [{"id": c.id, "source_id": c.source_id, "sections": c.sections, "added": c.added,
                    "removed": c.removed, "modified": c.modified}
                   for c in s.exec(select(Change).order_by(col(Change.id))).all()]
        impacts = []
        for imp in s.exec(select(Impact).order_by(col(Impact.id))).all():
            sop = s.get(Sop, imp.sop_id)
            impacts.append({"id": imp.id, "change_id": imp.change_id, "sop_id": imp.sop_id,
                            "title": sop.title if sop else "", "assignee": imp.assignee, "due_date": imp.due_date,
                            "reasons": imp.reasons})
    return changes, impacts


def _reason_text(reasons: list[dict[str, Any]]) -> str:
    parts = []
    for r in reasons:
        if r.get("sections"):
            parts.append("sections " + "; ".join(r["sections"]))
        if r.get("keywords"):
            parts.append("keywords " + ", ".join(r["keywords"]))
    return " & ".join(parts) or "watches the source"


def run_demo(*, directory: Path | None = None, port: int = 0, echo: Echo = print) -> DemoResult:
    """Run the whole demo and print a guide to what it produced."""
    started = time.monotonic()
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="tracker-demo-"))
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "tracker.db"
    if db.exists():
        raise DemoError(f"{db} already exists: give an empty folder with --dir, or delete that one")
    database_url = f"sqlite:///{db}"
    settings = Settings(database_url=database_url, download_delay=0, digest_send_empty=True)  # type: ignore[call-arg]

    echo(f"Policy tracker demo in {directory}")
    echo("  1. creating the database")
    upgrade(database_url)
    engine = make_engine(database_url)
    site = DemoSite(demo_data_dir() / "pga")
    base = site.start(port)
    try:
        echo(f"  2. serving {len(site.docs)} real policy documents on {base} (with page noise the tracker ignores)")
        src_summary, sop_summary = _sync(engine, directory, base)
        echo(f"  3. synced sources.yaml ({src_summary}) and sops.yaml ({sop_summary})")
        echo(f"  4. first crawl: {_crawl(directory, database_url, echo)}")
        for slug, doc in site.docs.items():
            v = site.advance(slug)
            archived = doc.versions[v]["date"][:10]
            echo(f"  5. {doc.title}: the site now serves its next real version (archived {archived})")
        echo(f"  6. second crawl: {_crawl(directory, database_url, echo)}")
        previews, note = _digest(engine, settings, directory)
        echo(f"  7. digest preview: {note}")
        changes, impacts = _facts(engine)
    finally:
        site.stop()
        engine.dispose()
    result = DemoResult(directory=directory, database_url=database_url, site_url=base, changes=changes,
                        impacts=impacts, previews=previews, digest_note=note, seconds=time.monotonic() - started)
    _guide(result, echo)
    return result


def _tracker_alias() -> str | None:
    """An alias line when the `tracker` being run is not the one on PATH (e.g. .venv/bin/tracker)."""
    exe = Path(sys.argv[0]).absolute()
    on_path = shutil.which("tracker")
    if exe.name == "tracker" and (on_path is None or Path(on_path).absolute() != exe):
        return f"alias tracker={shlex.quote(str(exe))}"
    if exe.name != "tracker" and on_path is None:  # run as `python -m tracker`
        return f"alias tracker={shlex.quote(sys.executable + ' -m tracker')}"
    return None


def _guide(r: DemoResult, echo: Echo) -> None:
    env = f"export TRACKER_DATABASE_URL={shlex.quote(r.database_url)}"
    echo("")
    echo(f"Done in {r.seconds:.0f}s. Everything is in {r.directory} (delete the folder when finished).")
    echo("")
    echo("Point the tracker at the demo database first (every command below uses it):")
    echo(f"  {env}")
    if alias := _tracker_alias():
        echo(f"  {alias}")
    echo("")
    echo(f"What changed ({len(r.changes)} change(s)):")
    for c in r.changes:
        echo(f"  change #{c['id']} in {c['source_id']}: {c['modified']} modified, {c['added']} added, "
             f"{c['removed']} removed block(s) in {'; '.join(c['sections'])}")
        echo(f"      tracker changes show {c['id']}")
    echo("")
    echo(f"Which SOPs it affects ({len(r.impacts)} impact(s), each with its reason):")
    for i in r.impacts:
        echo(f"  impact #{i['id']}: {i['sop_id']} \"{i['title']}\" (change #{i['change_id']}, assigned to "
             f"{i['assignee']}, due {i['due_date']}) because of {_reason_text(i['reasons'])}")
    echo("      tracker impacts list")
    if r.impacts:
        first = r.impacts[0]
        echo(f"      tracker impacts mark {first['id']} --status needs_update --by {first['assignee']}")
    echo("")
    echo("The daily digest the owners would get:")
    if r.previews:
        for p in sorted(r.previews):
            if p.suffix == ".html":
                echo(f"  {p}")
        echo(f"  (plain-text and .eml versions beside them; {r.digest_note})")
    else:
        echo(f"  no preview: {r.digest_note}")
    echo("")
    echo("More to look at:")
    echo("  web UI:        tracker users add you@example.com --role admin && tracker serve"
         "   (then open http://127.0.0.1:8000)")
    echo("  audit trail:   tracker audit log; tracker audit verify")
    echo("  health:        tracker status; tracker sources list")
    echo(f"  the service:   TRACKER_SOURCES_FILE={r.directory / 'sources.yaml'} tracker run"
         "   (the demo's site is gone once the demo ends, so its checks will fail)")
    echo(f"  the sample:    real policy versions with their ODC-By attribution in {demo_data_dir() / 'ATTRIBUTION.md'}")
