"""The watch builder's reads and the live rule preview, through the web app on both databases.

The section tree is the newest version's; a draft watch matches exactly the changes the real
mapper raised impacts for (the seeded SOPs watch the same things); the draft is validated with the
messages `tracker sops sync` prints. The rule preview fetches the local policy site's real pages
and finds its per-request noise. Editors only, CSRF always.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tests.conftest import PolicySite
from tests.support.web_login import csrf_headers
from tests.support.web_seed import add_users, seed
from tracker.check.overview import source_overview
from tracker.config import Settings
from tracker.declare.sops import load_sops_file
from tracker.declare.yamlfile import RegistryError
from tracker.store.db import session_scope
from tracker.store.models import Impact
from tracker.web import create_app

REDDIT = "reddit-community-guidelines"


@pytest.fixture
def client(db_url: str, engine: Engine) -> Iterator[TestClient]:
    with session_scope(engine) as s:
        seed(s, versions=4)
        add_users(s)
    with TestClient(create_app(Settings(database_url=db_url, secret_key="w" * 32)), follow_redirects=False) as c:
        yield c


def _impacted_changes(engine: Engine, sop_id: str) -> set[int]:
    with Session(engine) as s:
        return set(s.exec(select(Impact.change_id).where(Impact.sop_id == sop_id)).all())


def test_the_section_tree_is_the_newest_versions(client: TestClient, engine: Engine) -> None:
    csrf_headers(client, "viewer")  # a read: any role
    r = client.get(f"/api/sources/{REDDIT}/sections")
    assert r.status_code == 200, r.text
    with Session(engine) as s:
        view = source_overview(session=s, source_id=REDDIT)
    assert view is not None
    assert r.json()["version_id"] == view.versions[0].id
    assert [(x["section"], x["blocks"]) for x in r.json()["sections"]] == view.sections
    assert any(x["section"].endswith("Enforcement") for x in r.json()["sections"])
    assert client.get("/api/sources/nope/sections").status_code == 404


@pytest.mark.parametrize(("sop_id", "watch"), [
    ("SOP-TS-001", {"sections": ["*Enforcement*"]}),
    ("SOP-TS-007", {"keywords": ["vote", "spam"]}),
])
def test_a_draft_watch_matches_what_the_mapper_matched(client: TestClient, engine: Engine, sop_id: str,
                                                       watch: dict[str, list[str]]) -> None:
    headers = csrf_headers(client, "editor")
    r = client.post("/api/watches/preview", json={"source": REDDIT, **watch}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tried"] == 3 and [c["change_id"] for c in body["changes"]] == sorted(
        (c["change_id"] for c in body["changes"]), reverse=True)
    matched = {c["change_id"] for c in body["changes"] if c["matched"]}
    assert matched == _impacted_changes(engine, sop_id) and matched
    assert body["matched"] == len(matched)
    for c in body["changes"]:
        if c["matched"] and "sections" in watch:
            assert c["sections"] and all("Enforcement" in sec for sec in c["sections"])
            assert c["globs"] == watch["sections"]
        if c["matched"] and "keywords" in watch:
            assert set(c["keywords"]) <= set(watch["keywords"]) and c["keywords"]
    narrow = client.post("/api/watches/preview", json={"source": REDDIT, "limit": 1, **watch}, headers=headers)
    assert narrow.json()["tried"] == 1


def test_a_draft_watch_is_validated_like_an_sop_file(client: TestClient, tmp_path: Path) -> None:
    headers = csrf_headers(client, "editor")
    bad = {"source": REDDIT, "sections": ["Rules > [x"], "keywords": ["*"]}
    r = client.post("/api/watches/preview", json=bad, headers=headers)
    assert r.status_code == 422, r.text
    problems = r.json()["problems"]
    sops = tmp_path / "sops.yaml"
    sops.write_text(yaml.safe_dump({"sops": [{"id": "S-1", "title": "t", "owner": "a@example.com",
                                             "watches": [bad]}]}))
    with pytest.raises(RegistryError) as err:
        load_sops_file(sops)
    # The sync's problems are the same, each after its line and SOP.
    assert len(problems) == len(err.value.problems) == 2
    for ours, sync in zip(problems, err.value.problems, strict=True):
        assert sync.endswith(f"watches[1].{ours}"), (ours, sync)
    r = client.post("/api/watches/preview", json={"source": "nope"}, headers=headers)
    assert r.status_code == 404 and "no source 'nope'" in r.json()["detail"]


def test_previews_are_for_editors_with_the_csrf_token(client: TestClient, policy_site: PolicySite) -> None:
    viewer = csrf_headers(client, "viewer")
    for path, body in (("/api/watches/preview", {"source": REDDIT}),
                       ("/api/sources/preview", {"url": policy_site.url(REDDIT)})):
        r = client.post(path, json=body, headers=viewer)
        assert r.status_code == 403 and "viewers can read but not change" in r.json()["detail"], path
        assert client.post(path, json=body).status_code == 403, path  # no token
        assert client.post(path, json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403, path


def test_the_rule_preview_shows_blocks_sections_noise_and_a_rule(client: TestClient,
                                                                 policy_site: PolicySite) -> None:
    headers = csrf_headers(client, "editor")
    url = policy_site.url(REDDIT)
    r = client.post("/api/sources/preview", json={"url": url, "select": ["main"], "interval": 0},
                    headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["previewable"] and body["fetches"] == 2 and body["blocks"]
    assert any(s["section"].startswith("Reddit Content Policy") for s in body["sections"])
    # The policy site stamps every response with a new "generated at" line: volatile, with a rule to drop it.
    assert body["volatile"] and (body["suggested"]["remove"] or body["suggested"]["ignore"])
    clean = client.post("/api/sources/preview", json={"url": url, "select": ["article.policy"], "interval": 0},
                        headers=headers)
    assert clean.status_code == 200 and clean.json()["volatile"] == []


def test_the_rule_preview_refuses_what_sync_refuses_and_says_what_it_cannot_show(
        client: TestClient, policy_site: PolicySite) -> None:
    headers = csrf_headers(client, "editor")
    for body, fragment in (({"url": "file:///etc/passwd"}, "url: must be an absolute http(s) URL"),
                           ({"url": "ftp://example.org/x"}, "url: must be an absolute http(s) URL"),
                           ({"url": policy_site.url(REDDIT), "select": ["div[["]}, "select"),
                           ({"url": policy_site.url(REDDIT), "schedule": "often"}, "schedule"),
                           ({"url": policy_site.url(REDDIT), "colour": "red"}, "colour: unknown key"),
                           ({"url": policy_site.url(REDDIT), "kind": "nope"}, "unknown kind 'nope'")):
        r = client.post("/api/sources/preview", json=body, headers=headers)
        assert r.status_code == 422, (body, r.text)
        assert any(fragment in p for p in r.json()["problems"]), (fragment, r.json())
    r = client.post("/api/sources/preview", json={"url": policy_site.url(REDDIT), "select": [".nothing-here"],
                                                  "fetches": 1}, headers=headers)
    assert r.status_code == 422 and "matched nothing on the page" in r.json()["detail"], r.text
    r = client.post("/api/sources/preview", json={"url": policy_site.base + "/feed.xml", "kind": "feed"},
                    headers=headers)
    assert r.status_code == 200 and r.json()["previewable"] is False
    assert "only html pages are fetched" in r.json()["message"]
    policy_site.mode(REDDIT, "500")
    r = client.post("/api/sources/preview", json={"url": policy_site.url(REDDIT), "fetches": 1}, headers=headers)
    assert r.status_code == 502 and "HTTP 500" in r.json()["detail"]
