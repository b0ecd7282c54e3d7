"""End to end: a `federal_register` source through the real `tracker crawl`, against the Federal
Register API v1 stand-in releasing real documents (2004-2012) as its clock moves on."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import run_tracker
from tests.e2e.test_crawl_e2e import changes, cli_json, crawl, fixed, rows
from tests.support.regs_site import FIXTURES, RegsSite, serve_regs

CFPB = "consumer-financial-protection-bureau"


@pytest.fixture(scope="module")
def regs() -> Iterator[RegsSite]:
    with serve_regs() as site:
        yield site


def sync(db_url: str, path: Path, site: RegsSite, **extra: Any) -> None:
    source = {"id": "fr-cfpb", "name": "CFPB rules", "kind": "federal_register", "url": site.base,
              "query": {"agencies": [CFPB], "type": ["RULE"], "per_page": 2}} | extra
    path.write_text(yaml.safe_dump({"sources": [source]}))
    out = run_tracker(db_url, "sources", "sync", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


def numbers(found: list[dict[str, Any]]) -> list[str]:
    return sorted(c["entry"]["id"] for c in found)


def test_documents_picked_up_as_released_exactly_once_across_pages(db_url: str, regs: RegsSite,
                                                                    tmp_path: Path) -> None:
    sync(db_url, tmp_path / "s.yaml", regs)
    regs.fr_publish("2011-08-01")
    fixed(crawl(db_url), new=1)  # the baseline: what the query lists now is not news
    assert changes(db_url) == []
    assert rows(db_url, "stream_entry") == 1

    regs.fr_publish("2011-12-31")  # four CFPB rules in December 2011: three pages of two with the overlap
    fixed(crawl(db_url), changed=1)
    found = changes(db_url)
    assert numbers(found) == ["2011-31714", "2011-31722", "2011-31723", "2011-31725"]
    by_number = {c["entry"]["id"]: c for c in found}
    reg_e = by_number["2011-31725"]
    assert reg_e["kind"] == "federal_register"
    assert reg_e["effective_on"] == "2011-12-30"
    assert reg_e["entry"]["published"] == "2011-12-27"
    assert reg_e["entry"]["title"] == "Electronic Fund Transfers (Regulation E)"
    assert reg_e["entry"]["url"].startswith(regs.base + "/documents/2011/12/27/2011-31725/")
    assert reg_e["sections"] == ["Federal Register > Rule > Electronic Fund Transfers (Regulation E)"]
    shown = cli_json(db_url, "changes", "show", str(reg_e["id"]), "--format", "json")
    assert "agencies: Consumer Financial Protection Bureau" in json.dumps(shown["diff"])

    fixed(crawl(db_url), unchanged=1)  # the overlap asks again for 2011-12-24 on: all known
    assert len(changes(db_url)) == 4

    regs.fr_publish("all")
    fixed(crawl(db_url), changed=1)
    found = changes(db_url)
    assert numbers(found) == ["2011-31714", "2011-31722", "2011-31723", "2011-31725", "2012-1728", "2012-27993"]
    latest = {c["entry"]["id"]: c for c in found}["2012-27993"]
    assert latest["effective_on"] == "2013-01-01"
    fixed(crawl(db_url), unchanged=1)  # asked from 2012-11-18 on: known, nothing new
    assert len(changes(db_url)) == 6
    assert rows(db_url, "stream_entry") == 7


def test_since_backfills_from_a_date(db_url: str, regs: RegsSite, tmp_path: Path) -> None:
    sync(db_url, tmp_path / "s.yaml", regs, since="2012-01-01")
    regs.fr_publish("all")
    fixed(crawl(db_url), changed=1)
    assert numbers(changes(db_url)) == ["2012-1728", "2012-27993"]


@pytest.fixture
def regs_soon(tmp_path: Path) -> Iterator[tuple[RegsSite, str]]:
    """The fixtures with the Regulation Z rule taking effect 20 days from today."""
    corpus = tmp_path / "regs"
    shutil.copytree(FIXTURES, corpus)
    soon = (datetime.now(UTC) + timedelta(days=20)).date().isoformat()
    doc = corpus / "federal_register" / "documents" / "2012-27993.json"
    doc.write_text(json.dumps(json.loads(doc.read_text()) | {"effective_on": soon}))
    with serve_regs(corpus) as site:
        yield site, soon


SOPS = """\
teams:
  - id: lending
    name: Lending
    members: [pm@example.com]
sops:
  - id: SOP-TILA
    title: Truth in lending disclosures
    owner: pm@example.com
    team: lending
    review_days: 30
    watches:
      - source: fr-cfpb
        agencies: [federal-reserve-system]
  - id: SOP-EFT
    title: Electronic transfers
    owner: pm@example.com
    review_days: 30
    watches:
      - source: fr-cfpb
        keywords: ["Regulation E"]
  - id: SOP-PROPOSALS
    title: Proposals only
    owner: pm@example.com
    watches:
      - source: fr-cfpb
        types: [PRORULE]
"""


def test_watch_on_agency_or_keyword_gets_impact_due_before_effect(db_url: str, regs_soon: tuple[RegsSite, str],
                                                                   tmp_path: Path) -> None:
    site, soon = regs_soon
    sync(db_url, tmp_path / "s.yaml", site)
    (tmp_path / "sops.yaml").write_text(SOPS)
    out = run_tracker(db_url, "sops", "sync", str(tmp_path / "sops.yaml"))
    assert out.returncode == 0, out.stdout + out.stderr
    site.fr_publish("2011-08-01")
    fixed(crawl(db_url), new=1)
    site.fr_publish("all")
    fixed(crawl(db_url), changed=1)
    impacts = cli_json(db_url, "impacts", "list", "--json")
    by_sop: dict[str, list[dict[str, Any]]] = {}
    for impact in impacts:
        by_sop.setdefault(impact["sop_id"], []).append(impact)
    assert set(by_sop) == {"SOP-TILA", "SOP-EFT"}  # no proposed rule was published
    today = datetime.now(UTC).date()
    (tila,) = by_sop["SOP-TILA"]
    assert tila["reasons"][0]["agencies"] == ["federal-reserve-system"]
    # Effective in 20 days: due 14 days before, not after the 30 review days.
    assert tila["due_date"] == (datetime.fromisoformat(soon).date() - timedelta(days=14)).isoformat()
    eft = by_sop["SOP-EFT"]
    assert len(eft) == 2  # both Regulation E rules, which took effect long ago: the review days apply
    assert {i["due_date"] for i in eft} == {(today + timedelta(days=30)).isoformat()}
    # The digest has a "New publications" part saying when each takes effect.
    out = run_tracker(db_url, "digest", "--preview", str(tmp_path / "preview"))
    assert out.returncode == 0, out.stdout + out.stderr
    (text,) = [p.read_text() for p in (tmp_path / "preview").glob("*.txt")]
    assert "NEW PUBLICATIONS (6)" in text
    assert "Truth in Lending (Regulation Z)" in text and "Takes effect in 20 days" in text
    assert "Rule · Federal Reserve System, Consumer Financial Protection Bureau" in text
    assert "Took effect on 2011-12-30" in text
