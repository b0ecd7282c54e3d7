"""The SOP registry: loading and validating SOP files, syncing them (audited), and the CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from tracker.audit.trail import verify
from tracker.declare.sops import load_sops_file, sync_sops
from tracker.declare.sources import SourceSpec, sync_sources
from tracker.declare.yamlfile import RegistryError
from tracker.store.models import AuditEvent, Sop, Source, Team

SOURCES = {"tiktok-privacy-policy", "reddit-community-guidelines"}

GOOD = """\
teams:
  - id: appeals
    name: Appeals
    members: [alice@example.com, bob@example.com]
  - id: safety
    name: Trust & Safety
sops:
  - id: SOP-CS-014
    title: Handling appeals of removed videos
    owner: alice@example.com
    team: appeals
    url: https://wiki.example.com/sop/cs-014
    review_days: 5
    watches:
      - source: tiktok-privacy-policy
        sections: ["How we use your information*", "*> Data retention"]
        keywords: ["retain", "delete", "appeal"]
  - id: SOP-TS-002
    title: Ban escalations
    owner: carol@example.com
    team: safety
    watches:
      - source: reddit-community-guidelines
        sections: ["Enforcement"]
      - source: reddit-community-guidelines
        keywords: [ban]
"""


def write(tmp_path: Path, text: str, name: str = "sops.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def events(session: Session) -> list[AuditEvent]:
    return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def test_load_a_good_file(tmp_path: Path) -> None:
    f = load_sops_file(write(tmp_path, GOOD), known_sources=SOURCES)
    assert [t.id for t in f.teams] == ["appeals", "safety"]
    assert [s.id for s in f.sops] == ["SOP-CS-014", "SOP-TS-002"]
    sop = f.sops[0]
    assert (sop.owner, sop.team, sop.review_days) == ("alice@example.com", "appeals", 5)
    assert sop.watches[0].sections == ["How we use your information*", "*> Data retention"]
    assert f.sops[1].review_days is None  # the settings default applies


def test_every_problem_is_reported_with_its_line_and_id(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        teams:
          - id: appeals
            name: Appeals
            members: [not-an-email]
          - id: appeals
            name: Appeals again
        sops:
          - id: SOP-1
            title: One
            owner: alice@example.com
            team: nobody
            watches:
              - source: tiktok-privacy-policy
              - source: no-such-source
                sections: ["Data [retention"]
          - id: SOP-1
            title: Duplicate
            owner: alice@example.com
          - id: SOP-2
            title: Bad watch
            owner: bob
            watches:
              - source: tiktok-privacy-policy
                sections: ["A >> B"]
                keywords: ["**"]
          - id: SOP-3
            title: Unknown field
            owner: carol@example.com
            reviw_days: 3
        extra: 1
        """)
    with pytest.raises(RegistryError) as err:
        load_sops_file(path, known_sources=SOURCES)
    problems = err.value.problems
    text = "\n".join(problems)
    assert "line 1: unknown top-level key(s) extra" in text
    assert any(p.startswith("line 2 (team appeals): members") and "not-an-email" in p for p in problems)
    assert "line 5 (team appeals): duplicate id, first declared on line 2" in problems
    assert any(p.startswith("line 14 (SOP SOP-1): watches[2].sections") and "bad section glob 'Data [retention'" in p
               for p in problems)
    assert "line 8 (SOP SOP-1): unknown team 'nobody' (declare it under `teams:`; declared: appeals)" in problems
    assert "line 14 (SOP SOP-1): watches[2].source: unknown source 'no-such-source' " \
        "(sync it with `tracker sources sync` first, or fix the id)" in problems
    assert any(p.startswith("line 16 (SOP SOP-1): duplicate id, first declared on line 8") for p in problems)
    assert any(p.startswith("line 19 (SOP SOP-2)") and "owner" in p and "email" in p for p in problems)
    assert any(p.startswith("line 23 (SOP SOP-2): watches[1].sections") and "bad section glob 'A >> B'" in p
               for p in problems)
    assert any(p.startswith("line 23 (SOP SOP-2): watches[1].keywords") and "bad keyword '**'" in p for p in problems)
    assert any(p.startswith("line 26 (SOP SOP-3)") and "reviw_days" in p for p in problems)


def test_unknown_sources_and_teams_are_reported_by_sop(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        teams:
          - id: appeals
            name: Appeals
        sops:
          - id: SOP-1
            title: One
            owner: alice@example.com
            team: nobody
            watches:
              - source: tiktok-privacy-policy
              - source: no-such-source
                keywords: [ban]
        """)
    with pytest.raises(RegistryError) as err:
        load_sops_file(path, known_sources=SOURCES)
    assert err.value.problems == [
        "line 5 (SOP SOP-1): unknown team 'nobody' (declare it under `teams:`; declared: appeals)",
        "line 11 (SOP SOP-1): watches[2].source: unknown source 'no-such-source' "
        "(sync it with `tracker sources sync` first, or fix the id)",
    ]
    with pytest.raises(RegistryError, match="cannot read the file"):
        load_sops_file(tmp_path / "missing.yaml")
    with pytest.raises(RegistryError, match="line 3: not valid YAML"):
        load_sops_file(write(tmp_path, "sops:\n  - id: [\n", "broken.yaml"))


def _sources(session: Session) -> None:
    sync_sources(session=session, specs=[SourceSpec(id=s, name=s, url=f"https://example.com/{s}") for s in SOURCES])


def test_sync_adds_updates_and_disables_with_audit_events(session: Session, tmp_path: Path) -> None:
    _sources(session)
    first = sync_sops(session=session, sop_file=load_sops_file(write(tmp_path, GOOD), known_sources=SOURCES),
                      actor="admin@example.com")
    session.commit()
    assert first.added == ["SOP-CS-014", "SOP-TS-002"] and first.teams_added == ["appeals", "safety"]
    sop = session.get(Sop, "SOP-CS-014")
    assert sop is not None and sop.team_id == "appeals" and sop.enabled
    assert sop.watches == [{"source": "tiktok-privacy-policy",
                            "sections": ["How we use your information*", "*> Data retention"],
                            "keywords": ["retain", "delete", "appeal"]}]
    added = [(e.actor, e.action, e.entity_id) for e in events(session) if e.entity_type in ("sop", "team")]
    assert added == [("admin@example.com", "team.added", "appeals"), ("admin@example.com", "team.added", "safety"),
                     ("admin@example.com", "sop.added", "SOP-CS-014"), ("admin@example.com", "sop.added", "SOP-TS-002")]

    # Same file again: nothing changes, nothing is recorded.
    count = len(events(session))
    again = sync_sops(session=session, sop_file=load_sops_file(tmp_path / "sops.yaml", known_sources=SOURCES))
    assert again.unchanged == ["SOP-CS-014", "SOP-TS-002"] and not again.updated and len(events(session)) == count

    # SOP-TS-002 and team safety removed from the file, SOP-CS-014 edited.
    edited = GOOD.split("  - id: SOP-TS-002")[0].replace("review_days: 5", "review_days: 2")
    edited = edited.replace("  - id: safety\n    name: Trust & Safety\n", "")
    report = sync_sops(session=session, sop_file=load_sops_file(write(tmp_path, edited), known_sources=SOURCES))
    session.commit()
    assert report.updated == {"SOP-CS-014": {"review_days": (5, 2)}}
    assert report.disabled == ["SOP-TS-002"] and report.teams_disabled == ["safety"]
    gone = session.get(Sop, "SOP-TS-002")
    assert gone is not None and not gone.enabled  # disabled, never deleted
    team = session.get(Team, "safety")
    assert team is not None and not team.enabled
    new = [(e.actor, e.action, e.entity_id, e.before, e.after) for e in events(session)[count:]]
    assert new == [("system", "team.disabled", "safety", {"enabled": True}, {"enabled": False}),
                   ("system", "sop.updated", "SOP-CS-014", {"review_days": 5}, {"review_days": 2}),
                   ("system", "sop.disabled", "SOP-TS-002", {"enabled": True}, {"enabled": False})]

    # Put back: re-enabled as an update.
    back = sync_sops(session=session, sop_file=load_sops_file(write(tmp_path, GOOD), known_sources=SOURCES))
    session.commit()
    assert back.updated["SOP-TS-002"] == {"enabled": (False, True)}
    assert back.teams_updated == {"safety": {"enabled": (False, True)}}
    assert verify(session).ok


def test_source_sync_is_audited(session: Session) -> None:
    spec = SourceSpec(id="a-policy", name="A", url="https://example.com/a")
    sync_sources(session=session, specs=[spec, SourceSpec(id="b-policy", name="B", url="https://example.com/b")],
                 actor="admin@example.com")
    sync_sources(session=session, specs=[spec.model_copy(update={"name": "A!", "tags": ["x"]})])
    session.commit()
    got = [(e.actor, e.action, e.entity_id, e.before, e.after) for e in events(session)]
    assert [g[:3] for g in got] == [("admin@example.com", "source.added", "a-policy"),
                                    ("admin@example.com", "source.added", "b-policy"),
                                    ("system", "source.updated", "a-policy"),
                                    ("system", "source.disabled", "b-policy")]
    assert got[0][4] is not None and got[0][4]["url"] == "https://example.com/a"
    assert got[2][3:] == ({"name": "A", "tags": []}, {"name": "A!", "tags": ["x"]})
    assert got[3][3:] == ({"enabled": True}, {"enabled": False})
    assert session.get(Source, "b-policy") is not None
    assert verify(session).ok


def test_cli_sops_sync_and_list(db_url: str, session: Session, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"TRACKER_DATABASE_URL": db_url}
    from tracker.cli import app

    def run(*args: str) -> tuple[int, str, str]:
        out = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        return out.exit_code, out.stdout, out.stderr

    code, _, err = run("sops", "sync", str(write(tmp_path, GOOD)))
    assert code == 2 and "unknown source 'tiktok-privacy-policy'" in err and "sources sync" in err
    _sources(session)
    session.commit()
    code, out, err = run("sops", "sync", str(tmp_path / "sops.yaml"), "--by", "admin@example.com")
    assert code == 0, err
    assert "+ SOP-CS-014" in out and "SOPs: 2 added" in out
    code, _, err = run("sops", "sync", str(tmp_path / "sops.yaml"), "--by", "not an email")
    assert code == 2 and "email" in err
    code, out, _ = run("sops", "list", "--json")
    assert code == 0
    data = json.loads(out)
    assert [s["id"] for s in data["sops"]] == ["SOP-CS-014", "SOP-TS-002"]
    assert data["sops"][0]["owner"] == "alice@example.com" and data["sops"][0]["review_days"] == 5
    assert data["sops"][1]["watches"][1] == {"source": "reddit-community-guidelines", "sections": [],
                                             "keywords": ["ban"]}
    assert data["teams"][0] == {"id": "appeals", "name": "Appeals",
                                "members": ["alice@example.com", "bob@example.com"], "enabled": True}
    code, out, _ = run("sops", "list")
    assert code == 0 and "SOP-TS-002" in out and "watch 2: reddit-community-guidelines; keywords ban" in out
    session.expire_all()
    actors = {e.actor for e in events(session) if e.entity_type in ("sop", "team")}
    assert actors == {"admin@example.com"}


def test_save_one_sop(session: Session, tmp_path: Path) -> None:
    """One SOP edited outside the file (the web UI): validated against the database, audited."""
    from tracker.declare.sops import SopSpec, WatchSpec, save_sop

    _sources(session)
    sync_sops(session=session, sop_file=load_sops_file(write(tmp_path, GOOD), known_sources=SOURCES))
    spec = SopSpec(id="SOP-NEW", title="New", owner="dan@example.com", team="appeals",
                   watches=[WatchSpec(source="tiktok-privacy-policy", keywords=["minor*"])])
    assert save_sop(session=session, spec=spec, actor="dan@example.com") == ("added", {})
    edited = spec.model_copy(update={"title": "Newer"})
    assert save_sop(session=session, spec=edited, actor="dan@example.com") == ("updated",
                                                                               {"title": ("New", "Newer")})
    assert save_sop(session=session, spec=edited, actor="dan@example.com") == ("unchanged", {})
    session.commit()
    tail = [(e.actor, e.action, e.entity_id) for e in events(session)[-2:]]
    assert tail == [("dan@example.com", "sop.added", "SOP-NEW"), ("dan@example.com", "sop.updated", "SOP-NEW")]
    bad = spec.model_copy(update={"team": "ghosts", "watches": [WatchSpec(source="nope")]})
    with pytest.raises(RegistryError) as err:
        save_sop(session=session, spec=bad, actor="dan@example.com")
    assert err.value.problems == ["SOP SOP-NEW: unknown team 'ghosts'",
                                  "SOP SOP-NEW: watches[1].source: unknown source 'nope'"]
