"""The digest end to end: the real `tracker digest` command, real mail to a real SMTP server (aiosmtpd),
parsed with the email package; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tests.conftest import run_tracker
from tests.unit.test_digest_helpers import (
    SmtpSink,
    add_impact,
    add_sop,
    add_source,
    check,
    fail_check,
    fixture_page,
    page,
    parts,
    smtp_sink_fixture,  # noqa: F401  (the smtp_sink fixture)
)
from tracker.store.db import session_scope, utcnow
from tracker.store.models import AuditEvent, Digest, Team

BASE = "https://tracker.example.test/app"
ALICE, BOB, CAROL, DAVE, BOSS = (f"{n}@example.com" for n in ("alice", "bob", "carol", "dave", "boss"))
HOSTILE_V1 = "<h2>Appeals</h2><p>You can appeal a removal within 14 days.</p>"
HOSTILE_V2 = ("<h2>Appeals</h2><p>You can appeal a removal within 30 days. "
              "&lt;script&gt;alert('pwned')&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;</p>")


@dataclass
class World:
    reddit_impact: int
    hostile_impact: int
    x_impact: int
    reddit_change: int
    hostile_change: int
    x_change: int
    x_unmapped_change: int


def build_world(engine: Engine) -> World:
    """Three sources with real changes, two SOPs (one with a team), three impacts, one unmapped change,
    one failing source."""
    now = utcnow()
    t0 = now - timedelta(days=3)
    with session_scope(engine) as s:
        reddit = add_source(s, "reddit", "Reddit Community Guidelines", "https://policies.example/reddit")
        xpriv = add_source(s, "x-privacy", "X Privacy Policy", "https://policies.example/x")
        hostile = add_source(s, "hostile", "Forum rules <b>bold</b>", "https://policies.example/forum")
        check(s, reddit, fixture_page("reddit-community-guidelines", 2), t0)
        check(s, xpriv, fixture_page("x-privacy-policy", 2), t0)
        check(s, hostile, page(HOSTILE_V1, is_html=True), t0)
        reddit_change = check(s, reddit, fixture_page("reddit-community-guidelines", 3), now - timedelta(days=2))
        x_change = check(s, xpriv, fixture_page("x-privacy-policy", 3), now - timedelta(days=2))
        hostile_change = check(s, hostile, page(HOSTILE_V2, is_html=True), now - timedelta(hours=5))
        x_unmapped = check(s, xpriv, fixture_page("x-privacy-policy", 4), now - timedelta(hours=3))
        fail_check(s, xpriv, now - timedelta(hours=2), error="HTTP 503 from https://policies.example/x")
        assert reddit_change and x_change and hostile_change and x_unmapped

        team = Team(id="trust", name="Trust & Safety", members=[BOB, CAROL])
        s.add(team)
        s.flush()
        appeals = add_sop(s, "appeals", "Handling ban appeals", ALICE, ["reddit", "hostile"], team=team)
        privacy = add_sop(s, "privacy-requests", "Privacy requests", DAVE, ["x-privacy"])
        today = now.date()
        i1 = add_impact(s, change_id=reddit_change, sop=appeals, due=today - timedelta(days=1))
        i2 = add_impact(s, change_id=hostile_change, sop=appeals, due=today + timedelta(days=5))
        i3 = add_impact(s, change_id=x_change, sop=privacy, status="in_progress", due=today + timedelta(days=2))
        return World(i1.id or 0, i2.id or 0, i3.id or 0, reddit_change, hostile_change, x_change, x_unmapped)


def env(sink: SmtpSink, **extra: str) -> dict[str, str]:
    return {"TRACKER_SMTP_HOST": "127.0.0.1", "TRACKER_SMTP_PORT": str(sink.port), "TRACKER_SMTP_TIMEOUT": "10",
            "TRACKER_MAIL_FROM": "tracker@example.com", "TRACKER_BASE_URL": BASE,
            "TRACKER_DIGEST_EVERYTHING_TO": json.dumps([BOSS]), "TRACKER_TIMEZONE": "Europe/Berlin", **extra}


def test_send_one_message_per_recipient_with_the_right_impacts(db_url: str, engine: Engine,
                                                                smtp_sink: SmtpSink) -> None:
    w = build_world(engine)
    out = run_tracker(db_url, "digest", "--send", **env(smtp_sink))
    assert out.returncode == 0, out.stderr
    assert "5 sent, 0 failed" in out.stdout

    assert sorted(r for m in smtp_sink.received for r in m.rcpt_tos) == sorted([ALICE, BOB, CAROL, DAVE, BOSS])
    assert all(len(m.rcpt_tos) == 1 and m.mail_from == "tracker@example.com" for m in smtp_sink.received)

    # The appeals SOP's owner and team members: its two impacts, overdue first; nothing of dave's SOP.
    for person in (ALICE, BOB, CAROL):
        (msg,) = smtp_sink.to(person)
        assert msg["To"] == person
        assert msg["Subject"] == "[Policy tracker] 1 SOP needs review — 1 overdue"
        text, html = parts(msg)
        for body in (text, html):
            assert f"{BASE}/impacts/{w.reddit_impact}" in body
            assert f"{BASE}/impacts/{w.hostile_impact}" in body
            assert f"{BASE}/changes/{w.reddit_change}" in body
            assert f"{BASE}/sops/appeals" in body
            assert f"{BASE}/impacts/{w.x_impact}" not in body
            assert "Privacy requests" not in body
            assert f"/changes/{w.x_unmapped_change}" not in body
        assert text.index(f"/impacts/{w.reddit_impact}") < text.index(f"/impacts/{w.hostile_impact}")
        assert "OVERDUE" in text and "Reddit Content Policy > Enforcement" in text
        # Word-level excerpt: the hostile change's edit, marked in both parts.
        assert "[-14-]" in text and "{+30+}" in text
        assert '<del class="del" title="removed"' in html and "line-through" in html
        assert "underline" in html

    # Hostile page text arrives as text: escaped in HTML, verbatim in the plain part.
    _, html = parts(smtp_sink.to(ALICE)[0])
    text, _ = parts(smtp_sink.to(ALICE)[0])
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;script&gt;alert(" in html
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find_all(["script", "img", "b"]) == []
    assert "<script>alert('pwned')</script>" in soup.get_text()
    assert "Forum rules <b>bold</b>" in soup.get_text()
    assert "<script>alert('pwned')</script>" in text

    # Dave: his in-progress impact, the unmapped change in his source, and its failing health.
    (msg,) = smtp_sink.to(DAVE)
    text, html = parts(msg)
    assert msg["Subject"] == "[Policy tracker] 1 SOP needs review"
    assert f"{BASE}/impacts/{w.x_impact}" in text and f"{BASE}/impacts/{w.x_impact}" in html
    assert f"{BASE}/changes/{w.x_unmapped_change}" in text and f"{BASE}/changes/{w.x_unmapped_change}" in html
    assert f"{BASE}/impacts/{w.reddit_impact}" not in text
    assert "HTTP 503 from https://policies.example/x" in text and "SOURCE HEALTH" in text
    assert f"{BASE}/sources" in html
    assert "CET" in text  # times in TRACKER_TIMEZONE

    # The everything list sees all three impacts and the unmapped change.
    (msg,) = smtp_sink.to(BOSS)
    text, html = parts(msg)
    assert msg["Subject"] == "[Policy tracker] 2 SOPs need review — 1 overdue"
    for impact in (w.reddit_impact, w.hostile_impact, w.x_impact):
        assert f"{BASE}/impacts/{impact}" in html and f"{BASE}/impacts/{impact}" in text
    assert f"{BASE}/changes/{w.x_unmapped_change}" in html

    # Delivery is remembered, and audited.
    with Session(engine) as s:
        rows = s.exec(select(Digest)).all()
        assert {d.recipient: d.status for d in rows} == dict.fromkeys((ALICE, BOB, CAROL, DAVE, BOSS), "sent")
        assert {d.recipient: sorted(d.impact_ids) for d in rows}[ALICE] == sorted([w.reddit_impact, w.hostile_impact])
        assert len(s.exec(select(AuditEvent).where(AuditEvent.action == "digest.sent")).all()) == 5

    # A second send delivers nothing new.
    before = len(smtp_sink.received)
    again = run_tracker(db_url, "digest", "--send", **env(smtp_sink))
    assert again.returncode == 0, again.stderr
    assert "0 sent, 0 failed, 5 empty skipped" in again.stdout
    assert len(smtp_sink.received) == before

    # A new change is news for those who follow it, and only that change is sent.
    with session_scope(engine) as s:
        from tracker.store.models import Source

        hostile = s.get(Source, "hostile")
        assert hostile is not None
        fresh = check(s, hostile, page(HOSTILE_V1, is_html=True), utcnow())
    third = run_tracker(db_url, "digest", "--send", **env(smtp_sink))
    assert third.returncode == 0, third.stderr
    new = smtp_sink.received[before:]
    assert sorted(r for m in new for r in m.rcpt_tos) == sorted([ALICE, BOB, CAROL, BOSS])
    text, _ = parts(smtp_sink.to(ALICE)[-1])
    assert f"{BASE}/changes/{fresh}" in text and f"/impacts/{w.reddit_impact}" not in text

    # --since builds an explicit re-send.
    resend = run_tracker(db_url, "digest", "--send", "--since", (utcnow() - timedelta(days=7)).isoformat(),
                         "--to", DAVE, **env(smtp_sink))
    assert resend.returncode == 0, resend.stderr
    msg = smtp_sink.to(DAVE)[-1]
    assert msg["Subject"].startswith("[Policy tracker] Re-send: ")
    assert f"{BASE}/impacts/{w.x_impact}" in parts(msg)[0]


def test_failed_recipient_gets_it_on_the_next_run(db_url: str, engine: Engine, smtp_sink: SmtpSink) -> None:
    w = build_world(engine)
    smtp_sink.refuse = {CAROL}
    first = run_tracker(db_url, "digest", "--send", **env(smtp_sink))
    assert first.returncode == 3, first.stdout + first.stderr
    assert "4 sent, 1 failed" in first.stdout
    assert CAROL in first.stdout and "550" in first.stdout
    assert smtp_sink.to(CAROL) == []
    assert sorted(r for m in smtp_sink.received for r in m.rcpt_tos) == sorted([ALICE, BOB, DAVE, BOSS])
    with Session(engine) as s:
        failed = s.exec(select(Digest).where(Digest.status == "failed")).all()
        assert [d.recipient for d in failed] == [CAROL] and "550" in (failed[0].error or "")

    smtp_sink.refuse = set()
    second = run_tracker(db_url, "digest", "--send", **env(smtp_sink))
    assert second.returncode == 0, second.stderr
    assert "1 sent, 0 failed, 4 empty skipped" in second.stdout
    (msg,) = smtp_sink.to(CAROL)
    text, html = parts(msg)
    assert f"{BASE}/impacts/{w.reddit_impact}" in text and f"{BASE}/impacts/{w.hostile_impact}" in html


def test_preview_writes_files_and_sends_nothing(db_url: str, engine: Engine, tmp_path: Path,
                                                smtp_sink: SmtpSink) -> None:
    w = build_world(engine)
    out_dir = tmp_path / "preview"
    out = run_tracker(db_url, "digest", "--preview", str(out_dir), "--to", ALICE, "--to", DAVE, **env(smtp_sink))
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        f"{who}@example.com.{ext}" for who in ("alice", "dave") for ext in ("html", "txt", "eml"))
    assert smtp_sink.received == []
    assert f"{BASE}/impacts/{w.reddit_impact}" in (out_dir / f"{ALICE}.html").read_text()
    import email
    from email.policy import default

    msg = email.message_from_bytes((out_dir / f"{ALICE}.eml").read_bytes(), policy=default)
    assert msg.get_content_type() == "multipart/alternative" and msg["To"] == ALICE
    with Session(engine) as s:
        assert s.exec(select(Digest)).all() == []
    # Nothing was counted as delivered: a send still carries everything.
    sent = run_tracker(db_url, "digest", "--send", **env(smtp_sink))
    assert sent.returncode == 0, sent.stderr
    assert len(smtp_sink.received) == 5


def test_unknown_recipient_and_bad_timezone_are_usage_errors(db_url: str, engine: Engine, tmp_path: Path,
                                                             smtp_sink: SmtpSink) -> None:
    build_world(engine)
    out = run_tracker(db_url, "digest", "--preview", str(tmp_path), "--to", "nobody@example.com", **env(smtp_sink))
    assert out.returncode == 2 and "nobody@example.com" in out.stderr and "TRACKER_DIGEST_EVERYTHING_TO" in out.stderr
    out = run_tracker(db_url, "digest", "--send", **env(smtp_sink, TRACKER_TIMEZONE="Mars/Olympus"))
    assert out.returncode == 2 and "Mars/Olympus" in out.stderr
    out = run_tracker(db_url, "digest", **env(smtp_sink))
    assert out.returncode == 2 and "--preview" in out.stderr


@pytest.mark.parametrize("security", ["none"])
def test_smtp_unreachable_fails_every_recipient_but_records_them(db_url: str, engine: Engine, security: str,
                                                                  smtp_sink: SmtpSink) -> None:
    build_world(engine)
    port = smtp_sink.port
    bad = env(smtp_sink, TRACKER_SMTP_PORT="1", TRACKER_SMTP_SECURITY=security, TRACKER_SMTP_TIMEOUT="2")
    out = run_tracker(db_url, "digest", "--send", **bad)
    assert out.returncode == 3 and "0 sent, 5 failed" in out.stdout and "TRACKER_SMTP_HOST" in out.stdout
    assert port and smtp_sink.received == []
    ok = run_tracker(db_url, "digest", "--send", **env(smtp_sink))
    assert ok.returncode == 0 and "5 sent" in ok.stdout


def test_empty_digests_only_when_configured(db_url: str, engine: Engine, smtp_sink: SmtpSink) -> None:
    build_world(engine)
    assert run_tracker(db_url, "digest", "--send", **env(smtp_sink)).returncode == 0
    count = len(smtp_sink.received)
    out = run_tracker(db_url, "digest", "--send", "--to", ALICE, **env(smtp_sink, TRACKER_DIGEST_SEND_EMPTY="true"))
    assert out.returncode == 0 and "1 sent" in out.stdout
    (msg,) = [r.message for r in smtp_sink.received[count:]]
    text, html = parts(msg)
    assert msg["Subject"] == "[Policy tracker] nothing new"
    assert "Nothing new since your last digest" in text and "Nothing new since your last digest" in html
