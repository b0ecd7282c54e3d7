"""End to end: sources and SOPs synced, two crawls across a real version change, impacts with
reasons on the right SOPs, a PM's decisions, and an intact audit trail — all through the real CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from tests.conftest import PolicySite, run_tracker, write_sources

REDDIT = "reddit-community-guidelines"
X = "x-privacy-policy"
ADMIN, PM = "admin@example.com", "pm@example.com"

SOPS = f"""\
teams:
  - id: moderation
    name: Moderation
    members: [{PM}, alice@example.com]
sops:
  - id: SOP-ENF
    title: Enforcement ladder for spam
    owner: alice@example.com
    team: moderation
    review_days: 3
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
  - id: SOP-SUSPEND
    title: Suspensions
    owner: dave@example.com
    watches:
      - source: {REDDIT}
        keywords: [suspend]
  - id: SOP-PRIVACY
    title: Privacy requests
    owner: erin@example.com
    watches:
      - source: {X}
"""


def ok(db_url: str, *args: str) -> str:
    out = run_tracker(db_url, *args)
    assert out.returncode == 0, f"tracker {' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def impacts(db_url: str, *args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(ok(db_url, "impacts", "list", "--json", *args))
    return rows


def test_change_to_impacts_to_decisions_to_verified_audit(db_url: str, policy_site: PolicySite,
                                                          tmp_path: Path) -> None:
    write_sources(tmp_path / "sources.yaml", policy_site, [REDDIT, X])
    (tmp_path / "sops.yaml").write_text(textwrap.dedent(SOPS))
    ok(db_url, "db", "upgrade")
    ok(db_url, "sources", "sync", str(tmp_path / "sources.yaml"), "--by", ADMIN)
    assert "SOPs: 5 added" in ok(db_url, "sops", "sync", str(tmp_path / "sops.yaml"), "--by", ADMIN)

    # Crawl 1: both documents are new (Reddit at v2). Crawl 2: Reddit moves to v3 — only
    # "Reddit Content Policy > Enforcement" changes (suspension -> temporary or permanent banning).
    policy_site.set(REDDIT, 2)
    assert "2 new" in ok(db_url, "crawl")
    assert impacts(db_url) == []
    policy_site.set(REDDIT, 3)
    ok(db_url, "crawl")
    changes = json.loads(ok(db_url, "changes", "list", "--json"))
    assert len(changes) == 1 and changes[0]["sections"] == ["Reddit Content Policy > Enforcement"]
    change_id = changes[0]["id"]

    found = {i["sop_id"]: i for i in impacts(db_url)}
    assert sorted(found) == ["SOP-BANS", "SOP-ENF"]  # not RULES (other section), SUSPEND (whole words), X ones
    enf, bans = found["SOP-ENF"], found["SOP-BANS"]
    assert enf["change_id"] == bans["change_id"] == change_id
    assert enf["source_id"] == REDDIT and enf["status"] == "open"
    assert enf["reasons"] == [{"watch": 1, "source": REDDIT, "sections": ["Reddit Content Policy > Enforcement"],
                               "globs": ["*> Enforcement"]}]
    assert bans["reasons"] == [{"watch": 2, "source": REDDIT, "keywords": ["ban", "banning"]}]
    assert (enf["assignee"], bans["assignee"]) == ("alice@example.com", "bob@example.com")
    assert enf["due_date"] is not None and enf["overdue"] is False

    # Re-mapping what is already mapped changes nothing.
    assert "0 new impact(s)" in ok(db_url, "impacts", "remap")

    # The PM's decisions: one SOP needs an update, the other impact is dismissed with a reason.
    ok(db_url, "impacts", "needs-update", str(enf["id"]), "--by", PM, "--note", "ladder now bans, not suspends")
    ok(db_url, "impacts", "dismiss", str(bans["id"]), "--by", PM, "--reason", "spam bans follow SOP-ENF")
    refused = run_tracker(db_url, "impacts", "mark", str(enf["id"]), "--status", "updated", "--by", PM)
    assert refused.returncode == 2
    assert "cannot go from needs_update to updated; allowed from needs_update: in_progress, dismissed" \
        in refused.stderr

    after = {i["sop_id"]: i for i in impacts(db_url)}
    assert after["SOP-ENF"]["status"] == "needs_update"
    assert after["SOP-BANS"]["status"] == "dismissed"
    assert after["SOP-BANS"]["decision_note"] == "spam bans follow SOP-ENF"
    assert after["SOP-BANS"]["resolved_by"] == PM
    assert [i["sop_id"] for i in impacts(db_url, "--status", "needs_update")] == ["SOP-ENF"]

    # The audit trail holds every step, and verifies.
    log = json.loads(ok(db_url, "audit", "log", "--json"))
    steps = [(e["actor"], e["action"], e["entity_id"]) for e in reversed(log)]
    assert steps[:2] == [(ADMIN, "source.added", REDDIT), (ADMIN, "source.added", X)]
    assert (ADMIN, "team.added", "moderation") in steps and (ADMIN, "sop.added", "SOP-ENF") in steps
    created = [s for s in steps if s[1] == "impact.created"]
    # Mapped by the crawl, in the transaction that recorded the change, SOPs in id order.
    assert created == [("system", "impact.created", str(bans["id"])), ("system", "impact.created", str(enf["id"]))]
    assert steps[-4:] == [(PM, "impact.status", str(enf["id"])), (PM, "impact.note", str(enf["id"])),
                          (PM, "impact.status", str(bans["id"])), (PM, "impact.note", str(bans["id"]))]
    status_event = next(e for e in log if e["action"] == "impact.status" and e["entity_id"] == str(bans["id"]))
    assert status_event["before"]["status"] == "open" and status_event["after"]["status"] == "dismissed"
    assert status_event["after"]["decision_note"] == "spam bans follow SOP-ENF"

    verified = run_tracker(db_url, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert f"audit trail intact: {len(log)} events" in verified.stdout
