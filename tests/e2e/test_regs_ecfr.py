"""End to end: an `ecfr` source through the real `tracker crawl`, against the eCFR versioner
stand-in replaying six annual editions of 37 CFR Part 1 (Subpart A, §§ 1.1-1.10)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_tracker
from tests.e2e.test_crawl_e2e import changes, crawl, fixed, rows
from tests.support.regs_site import FIXTURES, RegsSite, serve_regs

PART = FIXTURES / "ecfr" / "title-37" / "part-1"
EDITIONS = sorted(p.stem for p in PART.glob("*.xml"))


@pytest.fixture(scope="module")
def regs() -> Iterator[RegsSite]:
    with serve_regs() as site:
        yield site


def section_texts(edition: str) -> dict[str, str]:
    """§ heading -> its whole text, read straight from the edition's XML (not the tracker's extractor)."""
    root = ET.parse(PART / f"{edition}.xml").getroot()
    out = {}
    for div in root.iter("DIV8"):
        head = " ".join("".join(div.find("HEAD").itertext()).split())  # type: ignore[union-attr]
        # Markup moving inside a paragraph ("<I>x—</I>" to "<I>x</I>—") is not a change of its text.
        out[head] = " ".join(" ".join("".join(el.itertext()).split()) for el in div if el.tag != "HEAD")
    return out


def changed_sections(before: str, after: str) -> set[str]:
    old, new = section_texts(before), section_texts(after)
    return {h for h in new if old.get(h) != new[h]} | {h for h in old if h not in new}


def write_ecfr_source(path: Path, site: RegsSite, **extra: object) -> Path:
    path.write_text(yaml.safe_dump({"sources": [{
        "id": "cfr-37-1", "name": "37 CFR Part 1", "kind": "ecfr", "url": site.base,
        "query": {"title": 37, "part": "1"}, **extra}]}))
    return path


def test_ecfr_replay_records_one_change_per_amended_edition(db_url: str, regs: RegsSite, tmp_path: Path) -> None:
    assert run_tracker(db_url, "sources", "sync", str(write_ecfr_source(tmp_path / "s.yaml", regs))).returncode == 0
    regs.ecfr_asof(EDITIONS[0])
    fixed(crawl(db_url), new=1)
    fixed(crawl(db_url), not_modified=1)  # the versions list names no newer edition: no XML fetched
    expected_changes = 0
    for before, after in zip(EDITIONS, EDITIONS[1:], strict=False):
        regs.ecfr_asof(after)
        amended = changed_sections(before, after)
        counts = crawl(db_url)
        found = changes(db_url)
        if not amended:
            # No section's text changed: either the versions list names no newer edition (not
            # modified, no XML fetched) or the newer edition's text is the same (unchanged).
            assert counts["changed"] == 0 and counts["unchanged"] + counts["not_modified"] == 1
            assert len(found) == expected_changes
            continue
        expected_changes += 1
        fixed(counts, changed=1)
        assert len(found) == expected_changes
        newest = found[0]
        assert newest["kind"] == "ecfr"
        named = {s.split(" > ")[-1] for s in newest["sections"] if " > §" in s}
        assert named == amended, (after, newest["sections"])
        assert all(s.startswith("PART 1—RULES OF PRACTICE IN PATENT CASES > Subpart A—General Provisions > ")
                   for s in newest["sections"])
        # The change records the edition's amendment date, which is never after the edition.
        assert newest["effective_on"] is not None and newest["effective_on"] <= after
        assert re.match(r"\d{4}-\d{2}-\d{2}$", newest["effective_on"])
    assert expected_changes == 4  # 2008 repeats 2007's text for these sections
    regs.ecfr_asof("all")


def test_ecfr_section_watch_gets_an_impact(db_url: str, regs: RegsSite, tmp_path: Path) -> None:
    assert run_tracker(db_url, "sources", "sync", str(write_ecfr_source(tmp_path / "s.yaml", regs))).returncode == 0
    (tmp_path / "sops.yaml").write_text(yaml.safe_dump({
        "teams": [{"id": "ip", "name": "IP", "members": ["ip@example.com"]}],
        "sops": [{"id": "sop-fees", "title": "Patent correspondence", "team": "ip", "owner": "ip@example.com",
                  "watches": [{"source": "cfr-37-1", "sections": ["*§ 1.6 *"]}]}]}))
    out = run_tracker(db_url, "sops", "sync", str(tmp_path / "sops.yaml"))
    assert out.returncode == 0, out.stderr + out.stdout
    regs.ecfr_asof(EDITIONS[0])
    fixed(crawl(db_url), new=1)
    regs.ecfr_asof(EDITIONS[1])  # 2006 amends §§ 1.4 and 1.8 only
    fixed(crawl(db_url), changed=1)
    assert rows(db_url, "impact") == 0
    regs.ecfr_asof(EDITIONS[2])  # 2007 amends § 1.6
    fixed(crawl(db_url), changed=1)
    assert rows(db_url, "impact") == 1
    regs.ecfr_asof("all")
