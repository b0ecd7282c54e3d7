"""A source kind, a channel and an export format added from this module alone, each run end to end.

The registries (spiders.KINDS, tracker.notify.CHANNELS, tracker.export.FORMATS) are the only lists of
their kind: registering an entry in the dict is the whole job, so nothing outside this file is
touched. The crawl runs in a forked child (Scrapy's reactor starts once per process; the fork keeps
the registered kind).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

import spiders
import tracker.export
import tracker.notify
from spiders.base import SourceSpider
from tests.notify_support import seed_with_channels
from tests.support.page_server import Route, serve_pages
from tests.support.web_seed import seed
from tracker.check.blocks import Block, Extracted, Rules, blocks_from_json
from tracker.check.kinds import Shape
from tracker.check.limits import Limits
from tracker.config import Settings
from tracker.declare.sources import load_sources_file, sync_sources
from tracker.declare.yamlfile import RegistryError
from tracker.export.formats import Column, Format, TableSink, WrittenFile, sha256_file
from tracker.export.manifest import check_files, load_manifest
from tracker.export.run import ExportQuery, run_export
from tracker.notify.alerts import send_alerts
from tracker.notify.message import Message
from tracker.notify.secrets import Resolved
from tracker.store.db import make_engine, session_scope
from tracker.store.models import Delivery, Version

# --- a source kind: plain text, one block per non-empty line ---------------------------------------


class TextSpider(SourceSpider):
    """Fetches plain-text notices."""

    name = "text"


def extract_lines(body: bytes, rules: Rules, content_type: str | None, /, *, limits: Limits) -> Extracted:
    lines = [line.strip() for line in body.decode("utf-8", "replace").splitlines() if line.strip()]
    return Extracted(blocks=[Block("p", line, ("Notice",)) for line in lines], encoding="utf-8")


def register_text_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    kind = spiders.Kind(name="text", spider=TextSpider, shape=Shape.DOCUMENT, extract=extract_lines,
                        description="a plain-text notice, one block per line")
    monkeypatch.setitem(spiders.KINDS, "text", kind)


def _crawl(database_url: str, source_ids: list[str], out: Any) -> None:
    from spiders.runner import run_crawl

    summary = run_crawl(settings=Settings(database_url=database_url, obey_robots=False), source_ids=source_ids)
    out.put([(o.source_id, o.result, o.error) for o in summary.outcomes])


def test_a_kind_registered_here_is_validated_crawled_and_recorded(monkeypatch: pytest.MonkeyPatch,
                                                                  db_url: str, tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    with serve_pages() as server:
        server.routes["/notice.txt"] = Route(b"First rule.\nSecond rule.\n", headers={"Content-Type": "text/plain"})
        sources.write_text(f"sources:\n  - id: notice\n    name: Notice\n    url: {server.url('/notice.txt')}\n"
                           "    kind: text\n")
        with pytest.raises(RegistryError, match="unknown kind 'text'"):
            load_sources_file(sources, kinds=spiders.KINDS)  # not registered yet
        register_text_kind(monkeypatch)
        engine = make_engine(db_url)
        with session_scope(engine) as s:
            sync_sources(session=s, specs=load_sources_file(sources, kinds=spiders.KINDS))
        ctx = mp.get_context("fork")
        out = ctx.Queue()
        child = ctx.Process(target=_crawl, args=(db_url, ["notice"], out))
        child.start()
        outcomes = out.get(timeout=120)
        child.join(timeout=60)
    assert outcomes == [("notice", "new", None)]
    with Session(engine) as s:
        version = s.exec(select(Version).where(Version.source_id == "notice")).one()
    engine.dispose()
    assert [(b.path, b.text) for b in blocks_from_json(version.blocks)] == [
        (("Notice",), "First rule."), (("Notice",), "Second rule.")]


# --- a channel: messages kept in a list ------------------------------------------------------------


@dataclass
class RoomChannel:
    """`room://name`: messages posted to an in-memory room (a stand-in for a chat service)."""

    name: str = "room"
    description: str = "`room://name`: an in-memory room"
    sent: list[tuple[str, Message]] = field(default_factory=list)

    def accepts(self, url: str) -> bool:
        return url.startswith("room://")

    def problem(self, url: str) -> str | None:
        return None

    def send(self, target: Resolved, message: Message, settings: Settings) -> str:
        self.sent.append((target.url, message))
        return "posted"


def test_a_channel_registered_here_receives_the_alerts(monkeypatch: pytest.MonkeyPatch, engine: Engine,
                                                       session: Session) -> None:
    room = RoomChannel()
    # Registered last: Apprise (which takes any "…://" URL) still only gets what no other channel takes.
    monkeypatch.setitem(tracker.notify.CHANNELS, "room", room)
    seed_with_channels(session, ["room://ops"])
    report = send_alerts(engine=engine, settings=Settings(base_url="https://tracker.example.com"))
    assert room.sent and len(report.sent) == len(room.sent) and not report.failed
    assert {url for url, _ in room.sent} == {"room://ops"}
    assert all(m.link.startswith("https://tracker.example.com/") for _, m in room.sent)
    with Session(engine) as s:
        rows = s.exec(select(Delivery)).all()
    assert len(rows) == len(room.sent) and {r.status for r in rows} == {"sent"}  # recorded once each


# --- an export format: tab-separated values -------------------------------------------------------


class _TsvTable:
    def __init__(self, path: Path, columns: Sequence[Column], done: Any) -> None:
        self.path, self.done = path, done
        self.file = path.open("w", encoding="utf-8", newline="\n")
        self.file.write("\t".join(c.name for c in columns) + "\n")

    def write(self, row: Sequence[Any]) -> None:
        self.file.write("\t".join("" if v is None else str(v).replace("\t", " ").replace("\n", " ")
                                  for v in row) + "\n")

    def close(self) -> None:
        self.file.close()
        self.done(self.path)


class TsvExport:
    """A .tsv file per table in a folder."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.files: list[WrittenFile] = []
        target.mkdir(parents=True, exist_ok=True)

    def table(self, name: str, columns: Sequence[Column]) -> TableSink:
        def done(path: Path) -> None:
            self.files.append(WrittenFile(path.name, *sha256_file(path), table=name))

        return _TsvTable(self.target / f"{name}.tsv", columns, done)

    def finish(self) -> list[WrittenFile]:
        return self.files


def test_a_format_registered_here_exports_every_table(monkeypatch: pytest.MonkeyPatch, session: Session,
                                                      tmp_path: Path) -> None:
    monkeypatch.setitem(tracker.export.FORMATS, "tsv", Format("tsv", "tab-separated values",
                                                              lambda target, name, zip: TsvExport(target),
                                                              zippable=False))
    seed(session, versions=3)
    session.commit()
    today = datetime.now(UTC).date()
    query = ExportQuery(date_from=today - timedelta(days=400), date_to=today, format="tsv")
    result = run_export(session=session, query=query, output=tmp_path / "out", base_url="https://t.example")
    manifest = load_manifest(result.manifest_path)
    assert [f["path"] for f in manifest["files"]] == ["changes.tsv", "impacts.tsv", "audit_events.tsv"]
    for name, count in manifest["row_counts"].items():
        lines = (tmp_path / "out" / f"{name}.tsv").read_text(encoding="utf-8").splitlines()
        assert len(lines) == count + 1  # the header, then one line per row
    assert manifest["row_counts"]["changes"] > 0
    assert all(f.ok for f in check_files(manifest, tmp_path / "out"))
