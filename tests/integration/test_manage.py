"""Managing sources, SOPs and teams from the browser's functions: managed_by, no silent overwrite, the
same validation messages as a file sync, every mutation audited, and the YAML export's round trip."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from spiders import KINDS
from tracker.audit.trail import verify
from tracker.declare.manage import (
    InvalidSpec,
    ManagedElsewhere,
    create_sop,
    create_source,
    create_team,
    export_sops_yaml,
    export_sources_yaml,
    set_managed_by,
    set_sop_enabled,
    set_source_enabled,
    source_to_spec_dict,
    update_sop,
    update_source,
    update_team,
)
from tracker.declare.sops import load_sops_file, sync_sops
from tracker.declare.sources import load_sources_file, sync_sources
from tracker.declare.yamlfile import RegistryError
from tracker.impacts.workflow import Conflict, NotFound, WorkflowError
from tracker.store.models import AuditEvent, CheckState, Sop, Source, Team

RICH_SOURCES = """\
sources:
  - id: rich-html
    name: Rich HTML page
    url: https://example.com/policy
    select: [article.policy, main]
    remove: [nav, .cookie-banner]
    schedule: 6h
    tags: [eu, privacy]
    ignore: ["Last updated .*"]
    flapping: quiet
    flapping_window: 3
    queue: eu
    options:
      download_delay: 2
      concurrency: 1
      timeout: 20
      headers: {Accept-Language: en, X-Token: "${TRACKER_SITE_TOKEN}"}
      obey_robots: false
      offhost_redirects: refuse
  - id: one-select
    name: Single selector
    url: https://example.com/terms
    select: article
  - id: pdf-linked
    name: PDF behind a link
    url: https://example.com/legal
    kind: pdf
    link_select: a.current-pdf
  - id: several-pages
    name: Several pages
    urls: [https://example.com/p/1, https://example.com/p/2]
  - id: rendered
    name: Rendered page
    url: https://example.com/app
    render: browser
    wait_for: "#content"
  - id: cfr-37-1
    name: 37 CFR Part 1
    kind: ecfr
    url: https://www.ecfr.gov
    query: {title: 37, part: "1"}
  - id: news-feed
    name: News feed
    kind: feed
    url: https://example.com/feed.xml
    since: 2024-01-15
  - id: retired
    name: Retired source
    url: https://example.com/old
    enabled: false
"""

SOPS = """\
teams:
  - id: appeals
    name: Appeals
    members: [alice@example.com, bob@example.com]
    notify: ["slack://${TRACKER_SLACK_TOKEN}/appeals", "mailto:appeals@example.com"]
  - id: dormant
    name: Dormant team
    enabled: false
sops:
  - id: SOP-CS-014
    title: Handling appeals
    owner: alice@example.com
    team: appeals
    url: https://wiki.example.com/sop/cs-014
    review_days: 5
    alert: immediate
    watches:
      - source: rich-html
        sections: ["How we use*", "*> Data retention"]
        keywords: [retain, delete]
        include_cosmetic: true
      - source: news-feed
        alert: digest
  - id: SOP-OLD
    title: Retired SOP
    owner: carol@example.com
    enabled: false
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def sync_sources_text(session: Session, tmp_path: Path, text: str, name: str = "sources.yaml") -> Any:
    return sync_sources(session=session, specs=load_sources_file(write(tmp_path, name, text), kinds=KINDS))


def sync_sops_text(session: Session, tmp_path: Path, text: str, name: str = "sops.yaml") -> Any:
    known = set(session.exec(select(Source.id)).all())
    ui_teams = set(session.exec(select(Team.id).where(Team.managed_by == "ui")).all())
    return sync_sops(session=session, sop_file=load_sops_file(write(tmp_path, name, text), known_sources=known,
                                                             known_teams=ui_teams))


def actions(session: Session) -> list[tuple[str, str]]:
    return [(e.action, e.entity_id) for e in session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()]


def test_sources_export_syncs_back_with_no_change(session: Session, tmp_path: Path) -> None:
    first = sync_sources_text(session, tmp_path, RICH_SOURCES)
    assert len(first.added) == 8 and session.get(Source, "retired").enabled is False  # type: ignore[union-attr]
    create_source(session=session, actor="ed@example.com", kinds=KINDS,
                  data={"id": "ui-made", "name": "Made in the UI", "url": "https://example.com/ui"})
    session.commit()
    before = actions(session)
    exported = export_sources_yaml(session=session)
    assert exported.startswith("# 9 source(s) exported from the database by `tracker sources export`")
    again = sync_sources_text(session, tmp_path, exported, "exported.yaml")
    assert again.summary() == "0 added, 0 updated, 0 disabled, 8 unchanged, 1 managed in the UI"
    assert again.skipped_ui == ["ui-made"]
    assert actions(session) == before  # nothing audited: nothing changed
    # Exactly the non-default fields, in a person's order, the PDF link and pages at the top level.
    rich = source_to_spec_dict(session.get(Source, "rich-html"))  # type: ignore[arg-type]
    assert list(rich) == ["id", "name", "url", "select", "remove", "ignore", "flapping", "flapping_window", "queue",
                          "schedule", "tags", "options"]
    assert rich["options"]["headers"]["X-Token"] == "${TRACKER_SITE_TOKEN}"
    assert "url" not in source_to_spec_dict(session.get(Source, "several-pages"))  # type: ignore[arg-type]
    assert "enabled: false" in exported and "since: '2024-01-15'" in exported
    # Only the file-managed rows, or only the UI ones.
    assert "ui-made" not in export_sources_yaml(session=session, managed="file")
    ui_only = export_sources_yaml(session=session, managed="ui")
    assert "ui-made" in ui_only and "rich-html" not in ui_only


def test_sops_export_syncs_back_with_no_change(session: Session, tmp_path: Path) -> None:
    sync_sources_text(session, tmp_path, RICH_SOURCES)
    sync_sops_text(session, tmp_path, SOPS)
    session.commit()
    before = actions(session)
    exported = export_sops_yaml(session=session)
    assert "${TRACKER_SLACK_TOKEN}" in exported and "include_cosmetic: true" in exported
    report = sync_sops_text(session, tmp_path, exported, "exported.yaml")
    assert report.summary() == ("SOPs: 0 added, 0 updated, 0 disabled, 2 unchanged; "
                                "teams: 0 added, 0 updated, 0 disabled")
    assert actions(session) == before


def test_a_file_sync_leaves_ui_managed_rows_alone(session: Session, tmp_path: Path) -> None:
    sync_sources_text(session, tmp_path, RICH_SOURCES)
    sync_sops_text(session, tmp_path, SOPS)
    create_source(session=session, actor="ed@example.com", kinds=KINDS,
                  data={"id": "ui-only", "name": "UI only", "url": "https://example.com/ui"})
    create_team(session=session, actor="ed@example.com", data={"id": "ui-team", "name": "UI team"})
    create_sop(session=session, actor="ed@example.com",
               data={"id": "SOP-UI", "title": "Made in the UI", "owner": "ed@example.com", "team": "ui-team",
                     "watches": [{"source": "ui-only"}]})
    set_managed_by(session=session, entity="source", entity_id="rendered", managed_by="ui", actor="ed@example.com")
    set_managed_by(session=session, entity="team", entity_id="appeals", managed_by="ui", actor="ed@example.com")
    session.commit()
    # The file now renames the taken-over source and team, and lists none of the UI-made rows.
    text = RICH_SOURCES.replace("name: Rendered page", "name: Renamed in the file")
    report = sync_sources_text(session, tmp_path, text)
    assert report.skipped_ui == ["rendered"] and report.updated == {} and report.disabled == []
    assert session.get(Source, "rendered").name == "Rendered page"  # type: ignore[union-attr]
    assert session.get(Source, "ui-only").enabled is True  # type: ignore[union-attr]
    sops = SOPS.replace("name: Appeals", "name: Renamed").replace(
        "  - id: SOP-OLD", "  - id: SOP-REF\n    title: Refers to a UI team\n    owner: a@example.com\n"
        "    team: ui-team\n  - id: SOP-OLD")
    sop_report = sync_sops_text(session, tmp_path, sops)
    assert sop_report.teams_skipped_ui == ["appeals"] and sop_report.teams_updated == {}
    assert sop_report.added == ["SOP-REF"] and sop_report.disabled == [] and sop_report.teams_disabled == []
    assert session.get(Team, "appeals").name == "Appeals"  # type: ignore[union-attr]
    assert session.get(Sop, "SOP-UI").enabled and session.get(Team, "ui-team").enabled  # type: ignore[union-attr]
    # An empty file disables the file-managed rows only.
    report = sync_sources_text(session, tmp_path, "sources: []\n")
    assert "ui-only" not in report.disabled and "rendered" not in report.disabled and "rich-html" in report.disabled
    # Handed back to the file, the next sync manages it again.
    set_managed_by(session=session, entity="source", entity_id="rendered", managed_by="file", actor="ed@example.com")
    report = sync_sources_text(session, tmp_path, text)
    assert report.updated["rendered"]["name"] == ("Rendered page", "Renamed in the file")
    verify(session=session)


def test_a_file_managed_row_is_refused_unless_taken_over(session: Session, tmp_path: Path) -> None:
    sync_sources_text(session, tmp_path, RICH_SOURCES)
    session.add(CheckState(source_id="rich-html", etag='"v1"', last_modified="yesterday"))
    session.commit()
    data = {**source_to_spec_dict(session.get(Source, "rich-html")), "select": ["article"]}  # type: ignore[arg-type]
    with pytest.raises(ManagedElsewhere) as refused:
        update_source(session=session, source_id="rich-html", data=data, actor="ed@example.com", kinds=KINDS,
                      managed_file="sources.yml")
    assert str(refused.value) == (
        "source rich-html is managed in sources.yml (file): change it there and run `tracker sources sync`, or take "
        "it over in the browser (it then becomes UI-managed and file syncs leave it alone)")
    assert isinstance(refused.value, WorkflowError)
    with pytest.raises(ManagedElsewhere):
        set_source_enabled(session=session, source_id="rich-html", enabled=False, actor="ed@example.com")
    changes = update_source(session=session, source_id="rich-html", data=data, actor="ed@example.com",
                            kinds=KINDS, take_over=True)
    assert changes == {"managed_by": ("file", "ui"), "select": (["article.policy", "main"], ["article"])}
    row, state = session.get(Source, "rich-html"), session.get(CheckState, "rich-html")
    assert row.managed_by == "ui" and state.etag is None and state.last_modified is None  # type: ignore[union-attr]
    assert actions(session)[-2:] == [("source.managed_by", "rich-html"), ("source.updated", "rich-html")]
    # UI-managed now: partial edits, disable and re-enable, each audited.
    assert update_source(session=session, source_id="rich-html", data={"tags": None, "name": "New"},
                         actor="ed@example.com", kinds=KINDS, partial=True) == {
        "name": ("Rich HTML page", "New"), "tags": (["eu", "privacy"], [])}
    assert set_source_enabled(session=session, source_id="rich-html", enabled=False, actor="ed@example.com") == {
        "enabled": (True, False)}
    assert update_source(session=session, source_id="rich-html", data={"name": "Newer"}, actor="ed@example.com",
                         kinds=KINDS, partial=True) == {"name": ("New", "Newer")}  # still disabled
    set_source_enabled(session=session, source_id="rich-html", enabled=True, actor="ed@example.com")
    assert [a for a, i in actions(session)[-4:]] == ["source.updated", "source.disabled", "source.updated",
                                                     "source.enabled"]
    with pytest.raises(Conflict, match="already exists"):
        create_source(session=session, data={"id": "rich-html", "name": "x", "url": "https://example.com"},
                      actor="ed@example.com", kinds=KINDS)
    with pytest.raises(NotFound):
        update_source(session=session, source_id="nope", data={}, actor="ed@example.com", kinds=KINDS)
    # SOPs and teams the same way.
    sync_sops_text(session, tmp_path, SOPS)
    with pytest.raises(ManagedElsewhere, match="SOP SOP-CS-014 is managed in the SOP file"):
        update_sop(session=session, sop_id="SOP-CS-014", data={"title": "x"}, actor="ed@example.com", partial=True)
    assert update_sop(session=session, sop_id="SOP-CS-014", data={"title": "x"}, actor="ed@example.com",
                      partial=True, take_over=True) == {"managed_by": ("file", "ui"),
                                                        "title": ("Handling appeals", "x")}
    assert update_team(session=session, team_id="appeals", data={"members": ["z@example.com"]},
                       actor="ed@example.com", partial=True, take_over=True)["members"][1] == ["z@example.com"]
    assert set_sop_enabled(session=session, sop_id="SOP-CS-014", enabled=False, actor="ed@example.com")
    assert actions(session)[-1] == ("sop.disabled", "SOP-CS-014")
    verify(session=session)


BAD_SOURCES = [
    {"id": "bad-url", "name": "x", "url": "ftp://example.com/x"},
    {"id": "Bad Id", "name": "x", "url": "https://example.com"},
    {"id": "bad-kind", "name": "x", "url": "https://example.com", "kind": "gopher"},
    {"id": "bad-key", "name": "x", "url": "https://example.com", "colour": "red"},
    {"id": "bad-both", "name": "x", "url": "https://example.com", "urls": ["https://example.com/a"]},
    {"id": "bad-queue", "name": "x", "url": "https://example.com", "queue": "EU!"},
    {"id": "bad-option", "name": "x", "url": "https://example.com", "options": {"timeout": -1, "speed": 3}},
]


@pytest.mark.parametrize("bad", BAD_SOURCES, ids=[b["id"] for b in BAD_SOURCES])
def test_the_browser_gets_the_messages_a_file_sync_gives(session: Session, tmp_path: Path, bad: dict[str, Any]) -> None:
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"sources": [bad]}))
    with pytest.raises(RegistryError) as in_file:
        load_sources_file(path, kinds=KINDS)
    with pytest.raises(InvalidSpec) as in_ui:
        create_source(session=session, data=bad, actor="ed@example.com", kinds=KINDS)
    file_msgs = [p.split("): ", 1)[1] for p in in_file.value.problems]
    ui_msgs = [p.removeprefix(f"source {bad['id']}: ") for p in in_ui.value.problems]
    assert ui_msgs == file_msgs and ui_msgs


def test_sop_messages_match_the_file_sync(session: Session, tmp_path: Path) -> None:
    sync_sources_text(session, tmp_path, RICH_SOURCES)
    bad = ("sops:\n  - id: SOP-X\n    title: x\n    owner: not-an-email\n    team: ghosts\n"
           "    watches:\n      - source: nowhere\n        sections: ['[']\n")
    with pytest.raises(RegistryError) as in_file:
        load_sops_file(write(tmp_path, "bad.yaml", bad), known_sources=set(session.exec(select(Source.id)).all()))
    data = {"id": "SOP-X", "title": "x", "owner": "not-an-email", "team": "ghosts",
            "watches": [{"source": "nowhere", "sections": ["["]}]}
    with pytest.raises(InvalidSpec) as in_ui:
        create_sop(session=session, data=data, actor="ed@example.com")
    assert sorted(p.split("): ", 1)[1] for p in in_file.value.problems) == sorted(
        p.removeprefix("SOP SOP-X: ") for p in in_ui.value.problems)
