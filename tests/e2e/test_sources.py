"""The source registry: validation that reports every problem with its place, and syncing."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from spiders import KINDS
from tests.conftest import run_tracker
from tracker.check.blocks import blocks_from_json
from tracker.check.record import record_check
from tracker.check.state import Fetch
from tracker.declare.sources import load_sources_file, sync_sources
from tracker.declare.yamlfile import RegistryError
from tracker.store.db import session_scope
from tracker.store.models import Change, CheckState, Source, Version

GOOD = """\
sources:
  - id: tiktok-privacy-policy
    name: TikTok Privacy Policy
    url: https://www.tiktok.com/legal/privacy-policy
    kind: html
    select: ["article.policy"]
    remove: [".cookie-banner", "nav"]
    schedule: "0 6 * * *"
    tags: [privacy, tiktok]
  - id: youtube-guidelines
    name: YouTube Community Guidelines
    url: https://www.youtube.com/howyoutubeworks/policies/community-guidelines/
    select: ["main"]
    schedule: 6h
    options: {download_delay: 5, concurrency: 1, timeout: 60, headers: {Accept-Language: en}, obey_robots: false}
"""

# Every kind of mistake, one per source; the line of each entry is in the comment.
BAD = """\
sources:
  - id: bad-selector            # line 2
    name: Bad selector
    url: https://example.com/a
    select: ["article[", "main"]
  - id: bad-schedule            # line 6
    name: Bad schedule
    url: https://example.com/b
    schedule: "every tuesday"
  - id: bad-url                 # line 10
    name: Bad URL
    url: ftp://example.com/c
  - id: bad-kind                # line 13
    name: Bad kind
    url: https://example.com/d
    kind: pdfx
  - id: bad-key                 # line 17
    name: Unknown key
    url: https://example.com/e
    selector: ["main"]
  - id: dup                     # line 21
    name: First
    url: https://example.com/f
  - id: dup                     # line 24
    name: Second
    url: https://example.com/g
  - id: Bad Slug!               # line 27
    url: https://example.com/h
  - id: bad-cron                # line 29
    name: Bad cron
    url: https://example.com/i
    schedule: "61 25 * * *"
"""


def write(tmp_path: Path, text: str, name: str = "sources.yaml") -> Path:
    path = tmp_path / name
    path.write_text(dedent(text))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(RegistryError) as err:
        load_sources_file(path, kinds=KINDS)
    assert str(path) in str(err.value)
    return err.value.problems


def test_a_good_file_loads(tmp_path: Path) -> None:
    specs = load_sources_file(write(tmp_path, GOOD), kinds=KINDS)
    assert [s.id for s in specs] == ["tiktok-privacy-policy", "youtube-guidelines"]
    assert specs[0].select == ["article.policy"] and specs[0].tags == ["privacy", "tiktok"]
    assert specs[1].kind == "html" and specs[1].options.obey_robots is False


def test_every_problem_is_reported_with_its_line_and_source(tmp_path: Path) -> None:
    found = problems(write(tmp_path, BAD))

    def one(fragment: str) -> str:
        hits = [p for p in found if fragment in p]
        assert len(hits) == 1, (fragment, found)
        return hits[0]

    assert one("article[").startswith("line 2 (source bad-selector): select")
    assert "invalid CSS selector" in one("article[")
    assert one("every tuesday").startswith("line 6 (source bad-schedule): schedule")
    assert one("ftp://").startswith("line 10 (source bad-url): url")
    assert one("pdfx").startswith("line 13 (source bad-kind): kind") and "known kinds: html" in one("pdfx")
    assert one("unknown key").startswith("line 17 (source bad-key): selector: unknown key (known keys: id, name,")
    assert one("duplicate id") == "line 24 (source dup): duplicate id, first declared on line 21"
    slug = [p for p in found if p.startswith("line 27 (source Bad Slug!)")]
    assert any("id:" in p and "slug" in p for p in slug) and any("name" in p for p in slug)
    assert one("61 25").startswith("line 29 (source bad-cron): schedule")
    assert len(found) == 9


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    broken = write(tmp_path, 'sources:\n  - id: a\n    name: A\n    url: "https://example.com\n  - id: b\n')
    (problem,) = problems(broken)
    assert problem.startswith("line ") and "not valid YAML" in problem
    tabs = write(tmp_path, "sources:\n  - id: a\n\tname: A\n", "tabs.yaml")
    (problem,) = problems(tabs)
    assert problem.startswith("line 3: not valid YAML")


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "no `sources:` list"),
    ("- just a list\n", "must be a mapping"),
    ("source:\n  - id: a\n", "unknown top-level key(s) source"),
    ("sources: {id: a}\n", "`sources` must be a list"),
    ("sources:\n  - just-a-string\n", "sources[1]: each source must be a mapping"),
])
def test_malformed_files(tmp_path: Path, text: str, fragment: str) -> None:
    assert any(fragment in p for p in problems(write(tmp_path, text)))


def test_a_missing_file(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path / "nope.yaml")
    assert "cannot read the file" in problem


def test_cli_sync_of_a_bad_file_exits_2_and_writes_nothing(db_url: str, tmp_path: Path) -> None:
    good = write(tmp_path, GOOD, "good.yaml")
    assert run_tracker(db_url, "sources", "sync", str(good)).returncode == 0
    # The bad file also "removes" both good sources: none of that may happen.
    out = run_tracker(db_url, "sources", "sync", str(write(tmp_path, BAD)))
    assert out.returncode == 2
    assert "9 problem(s)" in out.stderr and "line 24 (source dup): duplicate id" in out.stderr
    assert "line 2 (source bad-selector)" in out.stderr
    listed = json.loads(run_tracker(db_url, "sources", "list", "--json").stdout)
    assert [(s["id"], s["enabled"]) for s in listed] == [("tiktok-privacy-policy", True), ("youtube-guidelines", True)]


def _record(session: Session, source_id: str, body: str) -> None:
    source = session.get(Source, source_id)
    assert source is not None
    record_check(kinds=KINDS, session=session, source=source, fetch=Fetch(
        source_id=source_id, url=source.url, status=200, body=body.encode(),
        headers={"Content-Type": "text/html; charset=utf-8", "ETag": '"v1"',
                 "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}))


def test_removed_sources_are_disabled_with_their_history_and_re_enabled(engine: Engine, tmp_path: Path) -> None:
    specs = load_sources_file(write(tmp_path, GOOD), kinds=KINDS)
    page = '<article class="policy"><h1>Policy</h1><p>Text {}.</p></article><main><p>Main {}.</p></main>'
    with session_scope(engine) as s:
        report = sync_sources(session=s, specs=specs)
        assert report.added == ["tiktok-privacy-policy", "youtube-guidelines"]
    with session_scope(engine) as s:
        _record(s, "tiktok-privacy-policy", page.format(1, 1))
        _record(s, "tiktok-privacy-policy", page.format(2, 2))
    with session_scope(engine) as s:
        report = sync_sources(session=s, specs=specs[1:])
        assert report.disabled == ["tiktok-privacy-policy"] and report.unchanged == ["youtube-guidelines"]
    with session_scope(engine) as s:
        tiktok = s.get(Source, "tiktok-privacy-policy")
        assert tiktok is not None and tiktok.enabled is False
        assert len(s.exec(select(Version).where(Version.source_id == "tiktok-privacy-policy")).all()) == 2
        assert len(s.exec(select(Change).where(Change.source_id == "tiktok-privacy-policy")).all()) == 1
        # Syncing again without it changes nothing more.
        assert sync_sources(session=s, specs=specs[1:]).disabled == []
    with session_scope(engine) as s:
        report = sync_sources(session=s, specs=specs)
        assert report.updated == {"tiktok-privacy-policy": {"enabled": (False, True)}}
    with session_scope(engine) as s:
        tiktok = s.get(Source, "tiktok-privacy-policy")
        assert tiktok is not None and tiktok.enabled is True
        assert len(s.exec(select(Version).where(Version.source_id == "tiktok-privacy-policy")).all()) == 2


def test_changing_select_rules_clears_validators_other_fields_do_not(engine: Engine, tmp_path: Path) -> None:
    specs = load_sources_file(write(tmp_path, GOOD), kinds=KINDS)
    with session_scope(engine) as s:
        sync_sources(session=s, specs=specs)
    with session_scope(engine) as s:
        _record(s, "tiktok-privacy-policy", '<article class="policy"><p>Text.</p></article>')

    def validators() -> tuple[str | None, str | None]:
        with Session(engine) as s:
            state = s.get(CheckState, "tiktok-privacy-policy")
            assert state is not None
            return state.etag, state.last_modified

    assert validators() == ('"v1"', "Mon, 01 Jan 2024 00:00:00 GMT")
    retagged = GOOD.replace("tags: [privacy, tiktok]", "tags: [privacy]")
    with session_scope(engine) as s:
        report = sync_sources(session=s, specs=load_sources_file(write(tmp_path, retagged), kinds=KINDS))
        assert report.updated == {"tiktok-privacy-policy": {"tags": (["privacy", "tiktok"], ["privacy"])}}
    assert validators() == ('"v1"', "Mon, 01 Jan 2024 00:00:00 GMT")
    reselected = retagged.replace('select: ["article.policy"]', 'select: ["article.policy", "#terms"]')
    with session_scope(engine) as s:
        report = sync_sources(session=s, specs=load_sources_file(write(tmp_path, reselected), kinds=KINDS))
        assert list(report.updated["tiktok-privacy-policy"]) == ["select"]
    assert validators() == (None, None)
    # Likewise for remove rules and the URL.
    with session_scope(engine) as s:
        _record(s, "tiktok-privacy-policy", '<article class="policy"><p>Text.</p></article>')
    assert validators()[0] == '"v1"'
    removed = reselected.replace('remove: [".cookie-banner", "nav"]', 'remove: ["nav"]')
    with session_scope(engine) as s:
        sync_sources(session=s, specs=load_sources_file(write(tmp_path, removed), kinds=KINDS))
    assert validators() == (None, None)


def test_a_rules_change_is_recorded_as_technical_never_as_policy(engine: Engine, tmp_path: Path) -> None:
    with session_scope(engine) as s:
        sync_sources(session=s, specs=load_sources_file(write(tmp_path, GOOD), kinds=KINDS))
    page = ('<article class="policy"><h1>Policy</h1><p>Same text.</p><div class="promo">Sign up!</div>'
            '</article>')
    with session_scope(engine) as s:
        _record(s, "tiktok-privacy-policy", page)
    # The rules now drop the promo: the text differs, but only because of the rules.
    with session_scope(engine) as s:
        specs = load_sources_file(write(tmp_path, GOOD.replace('remove: [".cookie-banner", "nav"]',
                                                               'remove: [".cookie-banner", "nav", ".promo"]')),
                                  kinds=KINDS)
        sync_sources(session=s, specs=specs)
    with session_scope(engine) as s:
        _record(s, "tiktok-privacy-policy", page)
        (change,) = s.exec(select(Change)).all()
        assert change.technical is True
        assert change.removed == 1


def test_an_unknown_option_names_the_known_ones(tmp_path: Path) -> None:
    text = "sources:\n  - id: a\n    name: A\n    url: https://example.com/\n    options: {delay: 5, timeout: -1}\n"
    found = problems(write(tmp_path, text))
    assert "line 2 (source a): options.delay: unknown key (known keys: download_delay, concurrency, timeout, " \
           "headers, obey_robots, offhost_redirects)" in found
    assert any(p.startswith("line 2 (source a): options.timeout: Input should be greater than 0") for p in found)


def test_duplicate_keys_are_errors_not_silently_the_last_value(tmp_path: Path) -> None:
    text = ("sources:\n  - id: a\n    name: A\n    url: https://example.com/old\n"
            "    url: https://example.com/new\n    select: [main]\n")
    assert problems(write(tmp_path, text)) == ["line 5: duplicate key `url` (first on line 4)"]


def test_a_structure_only_difference_is_a_new_version_but_no_change(engine: Engine, tmp_path: Path) -> None:
    with session_scope(engine) as s:
        sync_sources(session=s, specs=load_sources_file(write(tmp_path, GOOD), kinds=KINDS))
    flat = '<article class="policy"><h2>A</h2><p>Intro.</p><h2>B</h2><p>Text.</p></article>'
    nested = flat.replace("<h2>B</h2>", "<h3>B</h3>")  # B is now a subsection of A
    with session_scope(engine) as s:
        _record(s, "tiktok-privacy-policy", flat)
        _record(s, "tiktok-privacy-policy", nested)
    with session_scope(engine) as s:
        versions = s.exec(select(Version).order_by(col(Version.id))).all()
        assert len(versions) == 2
        assert blocks_from_json(versions[-1].blocks)[-1].path == ("A", "B")
        assert s.exec(select(Change)).all() == []
        state = s.get(CheckState, "tiktok-privacy-policy")
        assert state is not None and state.last_result == "unchanged"
    with session_scope(engine) as s:  # and the next real edit is diffed against the new structure
        _record(s, "tiktok-privacy-policy", nested.replace("Text.", "New text."))
        (change,) = s.exec(select(Change)).all()
        assert change.sections == ["A > B"] and change.modified == 1


UNSAFE_URLS = """\
sources:
  - id: space                   # line 2
    name: Space
    url: "https://example.com/privacy policy"
  - id: crlf                    # line 5
    name: CRLF
    url: "https://example.com/a\\r\\nHost: evil.example"
  - id: tab                     # line 8
    name: Tab
    url: "https://example.com/\\tb"
  - id: control                 # line 11
    name: Control
    url: "https://example.com/\\x1b[2Jc"
  - id: nel                     # line 14
    name: Next line
    url: "https://example.com/d\\x85"
  - id: fine                    # line 17
    name: Fine
    url: "https://example.com/privacy%20policy?a=1"
"""


def test_urls_with_spaces_line_breaks_or_control_characters_are_refused(db_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, UNSAFE_URLS)
    found = problems(path)
    expected = {2: ("space", "a space at position 28"), 5: ("crlf", "a carriage return (CR) at position 22"),
                8: ("tab", "a tab at position 21"), 11: ("control", "U+001B at position 21"),
                14: ("nel", "U+0085 at position 22")}
    assert len(found) == len(expected), found
    for line, (sid, fragment) in expected.items():
        (hit,) = [p for p in found if p.startswith(f"line {line} (source {sid}): url: ")]
        assert fragment in hit and "percent-encode" in hit, hit
    assert not any("\x1b" in p or "\r" in p for p in found)  # never echoes the raw character
    out = run_tracker(db_url, "sources", "sync", str(path))
    assert out.returncode == 2 and "5 problem(s)" in out.stderr, out.stderr
    assert json.loads(run_tracker(db_url, "sources", "list", "--json").stdout) == []


def test_offhost_redirects_takes_record_or_refuse(tmp_path: Path) -> None:
    text = GOOD + ("    \n  - id: odd\n    name: Odd\n    url: https://example.com/\n"
                   "    options: {offhost_redirects: follow}\n")
    (problem,) = problems(write(tmp_path, text))
    assert problem.startswith("line 17 (source odd): options.offhost_redirects:") and "'record' or 'refuse'" in problem
    ok = GOOD.replace("obey_robots: false}", "obey_robots: false, offhost_redirects: refuse}")
    assert load_sources_file(write(tmp_path, ok), kinds=KINDS)[1].options.offhost_redirects == "refuse"


def test_sources_kinds_lists_the_registry(sqlite_url: str) -> None:
    from spiders import KINDS

    out = run_tracker(sqlite_url, "sources", "kinds", "--json")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert [k["kind"] for k in listed] == list(KINDS)
    by_kind = {k["kind"]: k for k in listed}
    assert by_kind["feed"]["shape"] == "stream" and by_kind["html"]["shape"] == "document"
    assert by_kind["ecfr"]["query_keys"] == ["title", "part", "section"] and by_kind["pdf"]["link_select"]
