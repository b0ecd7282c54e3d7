"""Golden files: the digest rendered for real corpus changes (tests/fixtures/pga), with `now` frozen.

Regenerate after an intended change with UPDATE_GOLDEN=1 and review the diff:
    UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/integration/test_digest_golden.py
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from tests.unit.test_digest_helpers import add_impact, add_sop, add_source, check, fail_check, fixture_page
from tracker.config import Settings
from tracker.notify.digest import build_digests
from tracker.notify.render import render_digest
from tracker.store.db import make_engine, session_scope, upgrade

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
NOW = datetime.fromisoformat("2024-07-26T05:00:00+00:00")
PM = "pm@example.com"


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def golden_settings() -> Settings:
    return Settings(_env_file=None, base_url="https://tracker.example.com", timezone="Europe/Berlin",  # type: ignore[call-arg]
                    mail_from="policy-tracker@example.com", digest_everything_to=[])


def build_corpus_world(engine: Engine) -> None:
    """Real fixture versions at their archive dates: an overdue impact (Reddit v2->v3), an open one
    (X v2->v3), an unmapped change (X v3->v4) and a failing source."""
    with session_scope(engine) as s:
        reddit = add_source(s, "reddit-community-guidelines", "Reddit Community Guidelines",
                            "https://www.redditinc.com/policies/content-policy")
        xpriv = add_source(s, "x-privacy-policy", "X Privacy Policy", "https://x.com/en/privacy")
        spotify = add_source(s, "spotify-community-guidelines", "Spotify Platform Rules",
                             "https://support.spotify.com/article/platform-rules/")
        check(s, reddit, fixture_page("reddit-community-guidelines", 2), ts("2023-12-12T18:33:06+00:00"))
        reddit_change = check(s, reddit, fixture_page("reddit-community-guidelines", 3),
                              ts("2024-02-10T00:34:24+00:00"))
        check(s, xpriv, fixture_page("x-privacy-policy", 2), ts("2024-03-25T18:35:14+00:00"))
        x_change = check(s, xpriv, fixture_page("x-privacy-policy", 3), ts("2024-05-17T00:38:34+00:00"))
        check(s, xpriv, fixture_page("x-privacy-policy", 4), ts("2024-07-25T00:35:45+00:00"))
        fail_check(s, spotify, ts("2024-07-25T22:10:00+00:00"),
                   error="selector article.policy has no match on https://support.spotify.com/article/platform-rules/")
        fail_check(s, spotify, ts("2024-07-26T04:10:00+00:00"),
                   error="selector article.policy has no match on https://support.spotify.com/article/platform-rules/")
        assert reddit_change and x_change
        appeals = add_sop(s, "ban-appeals", "Ban appeals & enforcement", PM, ["reddit-community-guidelines"])
        privacy = add_sop(s, "privacy-requests", "Privacy data requests", PM,
                          ["x-privacy-policy", "spotify-community-guidelines"])
        add_impact(s, change_id=reddit_change, sop=appeals, status="needs_update", due=date(2024, 2, 17),
                   at=ts("2024-02-10T00:34:25+00:00"))
        add_impact(s, change_id=x_change, sop=privacy, due=date(2024, 7, 30), at=ts("2024-05-17T00:38:35+00:00"))


def render_golden(tmp_path: Path) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'golden.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        build_corpus_world(engine)
        settings = golden_settings()
        with session_scope(engine) as s:
            (content,) = build_digests(session=s, settings=settings, now=NOW, to=[PM])
        rendered = render_digest(content, base_url=settings.base_url, timezone=settings.timezone)
    finally:
        engine.dispose()
    return rendered.html, rendered.text


def test_digest_matches_golden_files(tmp_path: Path) -> None:
    html, text = render_golden(tmp_path)
    files = {"digest_pga.html": html, "digest_pga.txt": text}
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        for name, body in files.items():
            (GOLDEN / name).write_text(body, encoding="utf-8")
    for name, body in files.items():
        expected = (GOLDEN / name).read_text(encoding="utf-8")
        assert body == expected, f"{name} differs from tests/golden/{name}; if intended, rerun with UPDATE_GOLDEN=1"
    # The golden digest says what matters, in order.
    assert text.startswith("[Policy tracker] 2 SOPs need review — 1 overdue\n")
    assert text.index("Ban appeals & enforcement") < text.index("Privacy data requests") < \
        text.index("CHANGES THAT TOUCHED NO SOP") < text.index("SOURCE HEALTH")
    assert "Ban appeals &amp; enforcement" in html and "https://tracker.example.com/impacts/1" in html
