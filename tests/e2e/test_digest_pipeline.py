"""The whole chain into the mailbox: sources and SOPs synced, the real crawl and mapper across real
version changes of the fixtures, then `tracker digest --send` to a real SMTP server."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from tests.conftest import PolicySite, run_tracker, write_sources
from tests.unit.test_digest_helpers import (
    SmtpSink,
    parts,
    smtp_sink_fixture,  # noqa: F401  (the smtp_sink fixture)
)

REDDIT, X = "reddit-community-guidelines", "x-privacy-policy"
BASE = "https://tracker.example.org"
SOPS = f"""\
teams:
  - id: moderation
    name: Moderation
    members: [pm@example.com, alice@example.com]
sops:
  - id: SOP-ENF
    title: Enforcement ladder for spam
    owner: alice@example.com
    team: moderation
    watches:
      - source: {REDDIT}
        sections: ["*> Enforcement"]
  - id: SOP-BANS
    title: Account bans
    owner: bob@example.com
    watches:
      - source: {X}
      - source: {REDDIT}
        keywords: [ban, banning, appeal]
  - id: SOP-RULES
    title: Subreddit rules
    owner: carol@example.com
    watches:
      - source: {REDDIT}
        sections: ["Rules*"]
  - id: SOP-PRIVACY
    title: Privacy requests
    owner: erin@example.com
    watches:
      - source: {X}
"""
PEOPLE = {"SOP-ENF": {"alice@example.com", "pm@example.com"}, "SOP-BANS": {"bob@example.com"},
          "SOP-RULES": {"carol@example.com"}, "SOP-PRIVACY": {"erin@example.com"}}


def ok(db_url: str, *args: str, **env: str) -> str:
    out = run_tracker(db_url, *args, **env)
    assert out.returncode == 0, f"tracker {' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def expected_mail(impacts: list[dict[str, Any]]) -> dict[str, set[int]]:
    """Recipient -> the impact ids they should get, from the SOPs' owners and teams."""
    out: dict[str, set[int]] = {}
    for i in impacts:
        for person in PEOPLE[i["sop_id"]]:
            out.setdefault(person, set()).add(i["id"])
    return out


def received(sink: SmtpSink, start: int) -> dict[str, set[int]]:
    """Recipient -> impact ids linked from the messages that arrived since `start` (both parts agree)."""
    import re

    out: dict[str, set[int]] = {}
    for r in sink.received[start:]:
        (rcpt,) = r.rcpt_tos
        text, html = parts(r.message)
        in_text = {int(n) for n in re.findall(rf"{re.escape(BASE)}/impacts/(\d+)", text)}
        in_html = {int(n) for n in re.findall(rf"{re.escape(BASE)}/impacts/(\d+)", html)}
        assert in_text == in_html, rcpt
        assert rcpt not in out, f"two messages for {rcpt}"
        out[rcpt] = in_text
    return out


def test_crawl_map_and_mail(db_url: str, policy_site: PolicySite, tmp_path: Path, smtp_sink: SmtpSink) -> None:
    mail = {"TRACKER_SMTP_HOST": "127.0.0.1", "TRACKER_SMTP_PORT": str(smtp_sink.port), "TRACKER_BASE_URL": BASE}
    write_sources(tmp_path / "sources.yaml", policy_site, [REDDIT, X])
    (tmp_path / "sops.yaml").write_text(textwrap.dedent(SOPS))
    ok(db_url, "sources", "sync", str(tmp_path / "sources.yaml"), "--by", "admin@example.com")
    ok(db_url, "sops", "sync", str(tmp_path / "sops.yaml"), "--by", "admin@example.com")
    policy_site.set(REDDIT, 2)
    policy_site.set(X, 2)
    ok(db_url, "crawl")
    assert "0 sent, 0 failed, 5 empty skipped" in ok(db_url, "digest", "--send", **mail)

    # Reddit v2 -> v3: the crawl maps the change to SOP-ENF (section) and SOP-BANS (keywords).
    policy_site.set(REDDIT, 3)
    ok(db_url, "crawl")
    first = json.loads(ok(db_url, "impacts", "list", "--json"))
    assert sorted(i["sop_id"] for i in first) == ["SOP-BANS", "SOP-ENF"]
    ok(db_url, "digest", "--send", **mail)
    assert received(smtp_sink, 0) == expected_mail(first)
    _, html = parts(smtp_sink.to("bob@example.com")[0])
    assert 'keywords "ban", "banning"' in html

    # X v2 -> v3: new impacts only; everyone else has nothing new.
    count = len(smtp_sink.received)
    policy_site.set(X, 3)
    ok(db_url, "crawl")
    second = [i for i in json.loads(ok(db_url, "impacts", "list", "--json")) if i["id"] not in {j["id"] for j in first}]
    assert sorted(i["sop_id"] for i in second) == ["SOP-BANS", "SOP-PRIVACY"]
    ok(db_url, "digest", "--send", **mail)
    assert received(smtp_sink, count) == expected_mail(second)
