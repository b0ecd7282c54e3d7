"""Hostile registry files: alias bombs, recursive aliases, deep nesting, huge integers and bytes
that are not UTF-8 are refused with one line naming the file and the line, through the real
`tracker` command and through `tracker run`'s reload of a changed file."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tests.conftest import run_tracker
from tests.e2e.test_scheduler import RecordingCrawler, settings_for, sources_yaml, src
from tracker.declare.yamlfile import MAX_NODES
from tracker.service.jobs import Service
from tracker.store.models import Source


def laughs(levels: int) -> str:
    """Anchors l0..l{levels}, each nine aliases of the one before: 9**levels strings from a few lines."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


BOMB_LEVELS = 7  # 9**7 = 4.8 million strings: well past the limit, and minutes of work unbounded
assert 9 ** BOMB_LEVELS > MAX_NODES

SOURCE = "sources:\n  - id: alpha\n    name: Alpha\n    url: https://a.example/alpha\n"
CASES = {
    "tags": ("sources", laughs(BOMB_LEVELS) + SOURCE + f"    tags: *l{BOMB_LEVELS - 1}\n"),
    "headers": ("sources", laughs(BOMB_LEVELS) + SOURCE
                + f"    options:\n      headers: {{X-A: *l{BOMB_LEVELS - 1}}}\n"),
    "keywords": ("sops", laughs(BOMB_LEVELS) + "sops:\n  - id: SOP-1\n    title: T\n    owner: a@example.com\n"
                 f"    watches:\n      - source: alpha\n        keywords: *l{BOMB_LEVELS - 1}\n"),
}


def _sync(db_url: str, kind: str, path: Path) -> tuple[int, str]:
    r = run_tracker(db_url, kind, "sync", str(path), timeout=60)
    return r.returncode, r.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_alias_bomb_is_refused_with_its_line(db_url: str, tmp_path: Path, case: str) -> None:
    kind, text = CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    code, err = _sync(db_url, kind, path)
    last_line = text.count("\n")
    assert code == 2, err
    assert "Traceback" not in err
    assert str(path) in err
    assert f"line {last_line}: the alias `*l{BOMB_LEVELS - 1}` makes the file expand to" in err, err
    assert f"at most {MAX_NODES:,}" in err


@pytest.mark.parametrize(("text", "expected"), [
    ("a: &a [1, *a]\n", "line 1: a recursive alias"),
    ("sources: " + "[" * 100_000 + "\n", "line 1: not valid YAML: nested deeper than 64 levels"),
    ("sources:\n  - id: alpha\n    name: Alpha\n    url: https://a.example/\n    schedule: " + "9" * 5000 + "\n",
     "line 5: not valid YAML: an integer of 5000 digits (at most 30)"),
])
def test_hostile_structures_are_one_line_errors(db_url: str, tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    code, err = _sync(db_url, "sources", path)
    assert code == 2 and "Traceback" not in err, err
    assert expected in err and str(path) in err, err


def test_a_file_that_is_not_utf8_names_the_line(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_bytes(SOURCE.encode() + b"    tags: [caf\xe9]\n")
    code, err = _sync(db_url, "sources", path)
    assert code == 2 and "Traceback" not in err, err
    assert "line 5: not UTF-8 text (byte 0xe9): save the file as UTF-8" in err


def test_anchors_that_stay_small_still_work(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(SOURCE + "    tags: &tags [eu, privacy]\n"
                    "  - id: beta\n    name: Beta\n    url: https://a.example/beta\n    tags: *tags\n")
    code, err = _sync(db_url, "sources", path)
    assert code == 0, err


def test_tracker_run_keeps_the_last_good_sources_when_a_bomb_arrives(db_url: str, engine: Engine,
                                                                      tmp_path: Path) -> None:
    path = sources_yaml(tmp_path / "sources.yaml", [src("alpha"), src("beta")])
    svc = Service(settings=settings_for(db_url, sources_file=str(path)), crawler=RecordingCrawler())
    svc.start(paused=True)
    try:
        path.write_text(CASES["tags"][1])
        svc.tick()
        watch = next(w for w in svc.files if w.kind == "sources")
        assert watch.failed_digest is not None and watch.digest != watch.failed_digest
    finally:
        svc.stop("test over")
    with Session(engine) as s:
        assert sorted(s.exec(select(Source.id).where(Source.enabled)).all()) == ["alpha", "beta"]
