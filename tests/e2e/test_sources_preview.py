"""`tracker sources preview` and `show`, and the glob warnings of `tracker sops sync`, through the real CLI
against the local policy site (validators off: every fetch is a full page with fresh noise)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import PolicySite, run_tracker, write_sources

X = "x-privacy-policy"


def preview(db_url: str, site: PolicySite, *rules: str) -> str:
    out = run_tracker(db_url, "sources", "preview", "--url", site.url(X), "--interval", "0.2", *rules)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_preview_lists_volatile_blocks_and_a_rule_that_removes_them(
        db_url: str, policy_site_novalidators: PolicySite) -> None:
    site = policy_site_novalidators
    noisy = preview(db_url, site, "--select", "main")
    assert "volatile blocks (they differed between the 3 fetches):" in noisy
    assert "Trending now: item " in noisy
    assert 'remove: ["aside.related"]' in noisy
    assert 'ignore: ["^Trending now: item .*"]' in noisy
    for rule in (("--remove", "aside.related"), ("--ignore", "^Trending now: item .*")):
        quiet = preview(db_url, site, "--select", "main", *rule)
        assert "no volatile blocks: the 3 fetches gave the same text" in quiet, rule
    # No rules at all: the main content, and nothing volatile in it.
    bare = preview(db_url, site)
    assert "no volatile blocks" in bare and "Trending" not in bare and "Page generated" not in bare
    assert "X Privacy Policy > How long do you keep data?: " in bare


def test_preview_json_and_bad_input(db_url: str, policy_site_novalidators: PolicySite) -> None:
    site = policy_site_novalidators
    data = json.loads(preview(db_url, site, "--select", "body", "--json"))
    assert data["suggested"]["remove"] and {v["kind"] for v in data["volatile"]}
    assert data["sections"][0]["blocks"] >= 1
    for args, says in ((("--url", site.url(X), "--select", "p["), "bad CSS selector"),
                       (("--url", site.url(X), "--ignore", "x" * 500), "--ignore:"),
                       (("--url", "file:///etc/passwd"), "only http and https"),
                       ((), "give a source id or --url")):
        out = run_tracker(db_url, "sources", "preview", *args)
        assert out.returncode != 0 and says in out.stderr + out.stdout, (args, out.stderr)
        assert "Traceback" not in out.stderr


def test_show_and_sops_sync_glob_warnings(db_url: str, policy_site: PolicySite, tmp_path: Path) -> None:
    sources = tmp_path / "sources.yaml"
    write_sources(sources, policy_site, [X], select=[], remove=[])
    assert run_tracker(db_url, "db", "upgrade").returncode == 0
    assert run_tracker(db_url, "sources", "sync", str(sources)).returncode == 0
    crawled = run_tracker(db_url, "crawl", X)
    assert crawled.returncode == 0, crawled.stderr
    shown = run_tracker(db_url, "sources", "show", X)
    assert shown.returncode == 0, shown.stderr
    assert "X Privacy Policy > How long do you keep data?: 9" in shown.stdout
    sops = tmp_path / "sops.yaml"
    sops.write_text(yaml.safe_dump({"sops": [{"id": "SOP-1", "title": "Retention", "owner": "a@example.com",
                                              "watches": [{"source": X, "sections": [
                                                  "*How long do you keep data?", "How long do you kep dta*"]}]}]}))
    synced = run_tracker(db_url, "sops", "sync", str(sops))
    assert synced.returncode == 0, synced.stderr
    warnings = [line for line in synced.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1  # the first glob matches
    assert warnings[0].startswith(
        "warning: SOP SOP-1, watch 1 (x-privacy-policy): sections glob 'How long do you kep dta*' matches no "
        "heading of the source's latest version; nearest headings: 'X Privacy Policy > How long do you keep data?'")
