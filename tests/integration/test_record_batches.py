"""The crawl's pipeline records fetches in batches: one transaction for many sources, reported only once
committed, and a source that cannot be recorded never costs the others their results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from spiders.pipelines import RecordPipeline
from tests.support.policy_site import Document, page
from tracker.check.state import CheckOutcome, Fetch
from tracker.store.models import Change, CheckState, Source, Version

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pga"
DOCS = {d.name: Document(d) for d in sorted(FIXTURES.iterdir())}


@dataclass
class Reports:
    """What the pipeline reported, in order (the crawl's progress output and summary come from this)."""

    outcomes: list[CheckOutcome] = field(default_factory=list)

    def __call__(self, outcome: CheckOutcome) -> None:
        self.outcomes.append(outcome)

    def results(self) -> dict[str, str]:
        return {o.source_id: o.result for o in self.outcomes}


@dataclass
class _Spider:
    report: Reports


@dataclass
class _Crawler:
    """The part of a Scrapy crawler the pipeline reads: the running spider, which reports outcomes."""

    spider: _Spider


def make_sources(engine: Engine, n: int) -> list[str]:
    ids = [f"src-{i}" for i in range(n)]
    with Session(engine) as s:
        for i, sid in enumerate(ids):
            s.add(Source(id=sid, name=sid, url=f"http://127.0.0.1:9/{i}", select=["article.policy"],
                         remove=[".cookie-banner", "nav"]))
        s.commit()
    return ids


def fetch(sid: str, doc: str, v: int) -> Fetch:
    """A 200 response carrying version v of a fixture document, with fresh page noise."""
    return Fetch(source_id=sid, url=f"http://127.0.0.1:9/{sid}", status=200,
                 headers={"Content-Type": "text/html; charset=utf-8", "ETag": f'"{doc}-{v}"'},
                 body=page(DOCS[doc], v).encode())


def pipeline(engine: Engine, reports: Reports, *, on_change: Any = None, batch: int = 100) -> RecordPipeline:
    p = RecordPipeline(engine, _Crawler(_Spider(reports)), on_change,  # type: ignore[arg-type]
                       batch_size=batch, interval=3600, use_timer=False)
    p.open_spider()
    return p


def count(engine: Engine, model: Any) -> int:
    with Session(engine) as s:
        return len(s.exec(select(model)).all())


def test_a_batch_is_committed_together_and_reported_only_then(engine: Engine) -> None:
    ids = make_sources(engine, 4)
    reports = Reports()
    p = pipeline(engine, reports)
    for sid in ids:
        p.process_item(fetch(sid, "x-privacy-policy", 0))
    # Queued, not yet recorded: nothing reported, nothing in the database.
    assert reports.outcomes == []
    assert count(engine, Version) == 0
    p.close_spider()
    assert reports.results() == dict.fromkeys(ids, "new")
    assert count(engine, Version) == 4
    with Session(engine) as s:
        states = {st.source_id: st for st in s.exec(select(CheckState))}
    assert {sid: (states[sid].last_result, states[sid].etag) for sid in ids} == \
        dict.fromkeys(ids, ("new", '"x-privacy-policy-0"'))


def test_a_full_batch_is_recorded_without_waiting(engine: Engine) -> None:
    ids = make_sources(engine, 5)
    reports = Reports()
    p = pipeline(engine, reports, batch=2)
    for sid in ids:
        p.process_item(fetch(sid, "reddit-community-guidelines", 0))
    # Two batches of two went through; the fifth waits for the end of the crawl.
    assert [o.source_id for o in reports.outcomes] == ids[:4]
    assert count(engine, Version) == 4
    p.close_spider()
    assert reports.results() == dict.fromkeys(ids, "new")


def test_one_source_that_cannot_be_recorded_costs_the_others_nothing(engine: Engine) -> None:
    ids = make_sources(engine, 3)
    reports = Reports()
    p = pipeline(engine, reports)
    for sid in ids:
        p.process_item(fetch(sid, "x-privacy-policy", 2))
    p.close_spider()
    culprit = ids[1]

    def hook(session: Session, change: Change) -> None:
        if change.source_id == culprit:
            raise RuntimeError("mapping blew up")

    reports = Reports()
    p = pipeline(engine, reports, on_change=hook)
    for sid in ids:
        p.process_item(fetch(sid, "x-privacy-policy", 3))
    p.close_spider()
    results = reports.results()
    assert results == {ids[0]: "changed", culprit: "failed", ids[2]: "changed"}
    failed = next(o for o in reports.outcomes if o.source_id == culprit)
    assert "internal error while recording" in (failed.error or "") and "mapping blew up" in (failed.error or "")
    with Session(engine) as s:
        changes = {c.source_id for c in s.exec(select(Change))}
        state = s.get(CheckState, culprit)
        culprit_versions = s.exec(select(Version).where(Version.source_id == culprit)).all()
    # The others' changes are recorded; the culprit keeps its baseline and has its error on record.
    assert changes == {ids[0], ids[2]}
    assert len(culprit_versions) == 1
    assert state is not None and state.consecutive_failures == 1
    assert "mapping blew up" in (state.last_error or "")


def test_a_source_deleted_during_the_crawl_is_reported_failed_and_the_rest_recorded(engine: Engine) -> None:
    ids = make_sources(engine, 3)
    reports = Reports()
    p = pipeline(engine, reports)
    for sid in ids:
        p.process_item(fetch(sid, "reddit-community-guidelines", 1))
    with Session(engine) as s:
        gone = s.get(Source, ids[0])
        s.delete(gone)
        s.commit()
    p.close_spider()
    assert reports.results() == {ids[0]: "failed", ids[1]: "new", ids[2]: "new"}
    assert "vanished" in (reports.outcomes[0].error or "")
    assert count(engine, Version) == 2


@pytest.mark.parametrize("batch", [1, 100])
def test_not_modified_after_a_first_version_in_the_same_crawl(engine: Engine, batch: int) -> None:
    ids = make_sources(engine, 2)
    reports = Reports()
    p = pipeline(engine, reports, batch=batch)
    for sid in ids:
        p.process_item(fetch(sid, "x-privacy-policy", 0))
    p.flush()
    for sid in ids:
        p.process_item(Fetch(source_id=sid, url=f"http://127.0.0.1:9/{sid}", status=304))
    p.close_spider()
    # The versions recorded by the first flush are the baselines the 304s need.
    assert [o.result for o in reports.outcomes] == ["new", "new", "not_modified", "not_modified"]


def test_each_change_in_a_batch_starts_from_the_newest_version(engine: Engine) -> None:
    ids = make_sources(engine, 2)
    for v in (1, 2, 3, 3):
        reports = Reports()
        p = pipeline(engine, reports)
        for sid in ids:
            p.process_item(fetch(sid, "x-privacy-policy", v))
        p.close_spider()
    assert [o.result for o in reports.outcomes] == ["unchanged", "unchanged"]
    with Session(engine) as s:
        for sid in ids:
            versions = [v.id for v in s.exec(select(Version).where(Version.source_id == sid).order_by(Version.id))]
            chain = [(c.from_version_id, c.to_version_id)
                     for c in s.exec(select(Change).where(Change.source_id == sid).order_by(Change.id))]
            assert len(versions) == 3
            assert chain == [(versions[0], versions[1]), (versions[1], versions[2])]
