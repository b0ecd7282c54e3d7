"""Managing sources, SOPs and teams in the browser and through the API, on both databases.

Every mutation route of the app is enumerated: a viewer gets 403 from each, and none works without
the CSRF token, so a new route cannot be forgotten. Forms and API carry every sources-file field
(the richest file of the data layer's tests goes through the form and comes back equal), answer
with the sync's messages, refuse file-managed rows (409) unless taken over, and audit each change.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from spiders import KINDS
from tests.integration.test_manage import RICH_SOURCES
from tests.support.web_login import csrf_headers, login, page_csrf
from tests.support.web_seed import Seeded, seed_with_users
from tracker.config import Settings
from tracker.declare.manage import source_to_spec_dict
from tracker.declare.sources import load_sources_file
from tracker.declare.yamlfile import RegistryError
from tracker.store.models import AuditEvent, Change, Impact, Sop, Source, Team, User
from tracker.web import create_app
from tracker.web.forms import source_form

REDDIT = "reddit-community-guidelines"
MUTATIONS = {"POST", "PUT", "PATCH", "DELETE"}
# What any logged-in user does to their own session and account (every other mutation is an editor's).
SELF_SERVICE = {"/login", "/logout", "/account/feed-tokens", "/account/feed-tokens/{token_id}/revoke"}


@pytest.fixture
def seeded(engine: Engine) -> Seeded:
    return seed_with_users(engine, versions=3)


@pytest.fixture
def client(db_url: str, seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=db_url, secret_key="m" * 32)), follow_redirects=False) as c:
        yield c


def audit(engine: Engine, action: str | None = None, entity_id: str | None = None) -> list[AuditEvent]:
    with Session(engine) as s:
        q = select(AuditEvent).order_by(col(AuditEvent.seq))
        if action:
            q = q.where(AuditEvent.action == action)
        if entity_id:
            q = q.where(AuditEvent.entity_id == entity_id)
        return list(s.exec(q).all())


def row(engine: Engine, model: Any, key: str) -> Any:
    with Session(engine) as s:
        return s.get(model, key)


# --- every mutation: editors only, CSRF always ----------------------------------------------------------


def _ids(engine: Engine, seeded: Seeded) -> dict[str, str]:
    with Session(engine) as s:
        impact = s.exec(select(Impact).order_by(col(Impact.id))).first()
        change = s.exec(select(Change).order_by(col(Change.id))).first()
        user = s.exec(select(User).order_by(col(User.id))).first()
    assert impact and change and user
    return {"source_id": REDDIT, "sop_id": "SOP-TS-001", "team_id": "trust-safety", "impact_id": str(impact.id),
            "change_id": str(change.id), "user_id": str(user.id), "request_id": "1", "token_id": "1"}


def _routes(routes: Any, prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute with its full path, through included routers (FastAPI keeps them nested since 0.16x)."""
    for r in routes:
        if isinstance(r, APIRoute):
            yield prefix + r.path, r
        elif hasattr(r, "original_router"):
            yield from _routes(r.original_router.routes, prefix + r.include_context.prefix)


def mutation_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every route that takes a POST, PUT, PATCH or DELETE."""
    found = sorted({(m, path) for path, r in _routes(app.routes) for m in (r.methods or ()) & MUTATIONS})
    assert len(found) > 20, found
    return found


def _call(c: TestClient, method: str, path: str, headers: dict[str, str], token: str | None) -> Any:
    if path.startswith("/api/"):
        return c.request(method, path, json={}, headers=headers)
    return c.request(method, path, data={"csrf_token": token} if token else {}, headers=headers)


def test_every_mutation_is_refused_to_a_viewer_and_audits_nothing(client: TestClient, engine: Engine,
                                                                  seeded: Seeded) -> None:
    routes = mutation_routes(client.app)
    paths = {p for _, p in routes}
    # The routes this issue adds are among them (the enumeration sees the app, not a list kept by hand).
    for expected in ("/sources/new", "/sources/{source_id}/edit", "/sources/{source_id}/check", "/sops/new",
                     "/api/sources", "/api/sources/{source_id}", "/api/sources/{source_id}/check",
                     "/api/sources/preview", "/api/watches/preview", "/api/sops", "/api/teams", "/teams/new"):
        assert expected in paths, expected
    assert SELF_SERVICE <= paths
    ids = _ids(engine, seeded)
    token = login(client, "viewer")
    before = len(audit(engine))
    for method, template in routes:
        if template in SELF_SERVICE:
            continue
        path = template.format(**ids)
        r = _call(client, method, path, {"X-CSRF-Token": token}, token)
        assert r.status_code == 403, (method, path, r.status_code, r.text[:200])
        assert "viewer" in r.text, (method, path)
    assert len(audit(engine)) == before


def test_every_mutation_needs_the_csrf_token(client: TestClient, engine: Engine, seeded: Seeded) -> None:
    ids = _ids(engine, seeded)
    login(client, "admin")
    before = len(audit(engine))
    for method, template in mutation_routes(client.app):
        path = template.format(**ids)
        for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
            r = _call(client, method, path, headers, None)
            assert r.status_code == 403, (method, path, headers, r.status_code, r.text[:200])
    assert len(audit(engine)) == before


def test_a_viewer_sees_no_forms(client: TestClient) -> None:
    login(client, "viewer")
    for path in ("/sources/new", f"/sources/{REDDIT}/edit", "/sops/new", "/sops/SOP-TS-001/edit", "/teams/new",
                 "/teams/trust-safety/edit"):
        r = client.get(path)
        assert r.status_code == 403 and "viewers can read but not change" in r.text, path
    for path in (f"/sources/{REDDIT}", "/sources", "/sops", "/sops/SOP-TS-001", "/teams"):
        html = client.get(path).text
        assert "<form method=\"post\" action=\"/logout\"" in html
        forms = re.findall(r'<form method="post" action="([^"]+)"', html)
        assert forms == ["/logout"], (path, forms)
        for text in ("Check now</button>", ">Edit<", "Add a source", "Add an SOP", "Add a team"):
            assert text not in html, (path, text)


# --- sources: forms ---------------------------------------------------------------------------------------


def _rich_entries() -> list[dict[str, Any]]:
    return list(yaml.safe_load(RICH_SOURCES)["sources"])


def _normalised(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as the database gives it back (what the sync stores, e.g. one select as a list)."""
    spec = load_sources_file_text({"sources": [entry]})[0]
    return source_to_spec_dict(Source(id=spec.id, **_fields(spec)))


def load_sources_file_text(data: dict[str, Any]) -> Any:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(data, f)
    return load_sources_file(f.name, kinds=KINDS)


def _fields(spec: Any) -> dict[str, Any]:
    from tracker.declare.sources import _fields as sync_fields

    return sync_fields(spec)


def test_every_sources_file_field_goes_through_the_form_and_back(client: TestClient, engine: Engine) -> None:
    token = login(client, "editor")
    assert "Add a source" in client.get("/sources/new").text
    for entry in _rich_entries():
        form = source_form(entry) | {"csrf_token": token}
        r = client.post("/sources/new", data=form)
        assert r.status_code == 303, (entry["id"], r.text[:2000])
        assert r.headers["location"] == f"/sources/{entry['id']}"
        saved = row(engine, Source, entry["id"])
        assert saved.managed_by == "ui"
        expected = _normalised({k: v for k, v in entry.items() if k != "enabled"})
        assert source_to_spec_dict(saved) == expected, entry["id"]
        added = audit(engine, "source.added", entry["id"])
        assert len(added) == 1 and added[0].actor == "editor@example.com"
        # The edit form shows it again as it is, and saving it unchanged changes nothing.
        page = client.get(f"/sources/{entry['id']}/edit")
        assert page.status_code == 200
        again = client.post(f"/sources/{entry['id']}/edit", data=source_form(source_to_spec_dict(saved))
                            | {"csrf_token": page_csrf(page.text)})
        assert again.status_code == 303, again.text[:2000]
        assert not audit(engine, "source.updated", entry["id"])


def _sync_problems(tmp_path: Path, entry: dict[str, Any]) -> list[str]:
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({"sources": [entry]}))
    with pytest.raises(RegistryError) as err:
        load_sources_file(path, kinds=KINDS)
    return [re.sub(r"^line \d+ \(source ([^)]*)\): ", r"source \1: ", p) for p in err.value.problems]


BAD = {"id": "bad-one", "name": "Bad", "url": "ftp://example.com/x", "schedule": "whenever", "kind": "html",
       "select": ["div[["], "options": {"timeout": "-3"}}


def test_a_refused_form_shows_the_syncs_messages_and_keeps_the_input(client: TestClient, engine: Engine,
                                                                      tmp_path: Path) -> None:
    token = login(client, "editor")
    r = client.post("/sources/new", data=source_form(BAD) | {"csrf_token": token})
    assert r.status_code == 422
    expected = _sync_problems(tmp_path, BAD)
    assert len(expected) >= 3
    shown = re.findall(r"<li>(.*?)</li>", r.text.split('id="problems"')[1].split("</div>")[0])
    import html

    assert [html.unescape(p) for p in shown] == expected
    assert 'value="Bad"' in r.text and "ftp://example.com/x</textarea>" in r.text and "whenever" in r.text
    assert row(engine, Source, "bad-one") is None and not audit(engine, "source.added", "bad-one")
    dup = client.post("/sources/new", data={"csrf_token": token, "id": REDDIT, "name": "x",
                                            "url": "https://example.com/"})
    assert dup.status_code == 409 and "already exists" in dup.text


def test_a_file_managed_source_is_refused_until_taken_over(client: TestClient, engine: Engine) -> None:
    token = login(client, "editor")
    page = client.get(f"/sources/{REDDIT}/edit").text
    assert "Managed in the sources file" in page and 'name="take_over"' in page
    form = source_form(source_to_spec_dict(row(engine, Source, REDDIT))) | {"csrf_token": token,
                                                                            "name": "Reddit rules"}
    r = client.post(f"/sources/{REDDIT}/edit", data=form)
    assert r.status_code == 409 and "is managed in the sources file (file)" in r.text
    assert 'value="Reddit rules"' in r.text  # what was typed is kept
    assert row(engine, Source, REDDIT).name == "Reddit Community Guidelines"
    r = client.post(f"/sources/{REDDIT}/edit", data=form | {"take_over": "1"})
    assert r.status_code == 303
    saved = row(engine, Source, REDDIT)
    assert (saved.name, saved.managed_by) == ("Reddit rules", "ui")
    assert [e.after for e in audit(engine, "source.managed_by", REDDIT)] == [{"managed_by": "ui"}]
    assert audit(engine, "source.updated", REDDIT)[-1].after == {"name": "Reddit rules"}


def test_disable_and_enable_from_the_source_page(client: TestClient, engine: Engine) -> None:
    token = login(client, "editor")
    r = client.post(f"/sources/{REDDIT}/disable", data={"csrf_token": token})
    assert r.status_code == 303 and "managed in the sources file" in client.get(r.headers["location"]).text
    assert row(engine, Source, REDDIT).enabled
    r = client.post(f"/sources/{REDDIT}/disable", data={"csrf_token": token, "take_over": "1"})
    assert r.status_code == 303 and not row(engine, Source, REDDIT).enabled
    page = client.get(f"/sources/{REDDIT}").text
    assert "disabled" in page and f'action="/sources/{REDDIT}/enable"' in page and "Check now</button>" not in page
    client.post(f"/sources/{REDDIT}/enable", data={"csrf_token": token})
    assert row(engine, Source, REDDIT).enabled
    assert [e.action for e in audit(engine, entity_id=REDDIT) if e.entity_type == "source"][-3:] == [
        "source.managed_by", "source.disabled", "source.enabled"]


# --- sources: the API -----------------------------------------------------------------------------------


def test_the_api_creates_edits_disables_and_refuses_like_the_forms(client: TestClient, engine: Engine,
                                                                   tmp_path: Path) -> None:
    h = csrf_headers(client, "editor")
    new = {"id": "api-src", "name": "From the API", "url": "https://example.com/a", "select": ["main"]}
    r = client.post("/api/sources", json=new, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["managed_by"] == "ui" and r.json()["spec"] == new
    assert client.post("/api/sources", json=new, headers=h).status_code == 409
    bad = client.post("/api/sources", json=BAD, headers=h)
    assert bad.status_code == 422 and bad.json()["problems"] == _sync_problems(tmp_path, BAD)
    r = client.patch("/api/sources/api-src", json={"schedule": "1h", "select": None}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["spec"] == {"id": "api-src", "name": "From the API", "url": "https://example.com/a",
                                "schedule": "1h"}
    assert r.json()["changes"]["schedule"] == {"before": None, "after": "1h"}
    r = client.put("/api/sources/api-src", json={"name": "Whole", "url": "https://example.com/b"}, headers=h)
    assert r.status_code == 200 and r.json()["spec"] == {"id": "api-src", "name": "Whole",
                                                         "url": "https://example.com/b"}
    assert client.get("/api/sources/api-src/spec").json()["spec"] == r.json()["spec"]
    r = client.post("/api/sources/api-src/disable", headers=h)
    assert r.status_code == 200 and r.json()["changes"] == {"enabled": {"before": True, "after": False}}
    assert client.post("/api/sources/api-src/enable", headers=h).json()["changes"]["enabled"]["after"] is True
    assert [e.action for e in audit(engine, entity_id="api-src")] == [
        "source.added", "source.updated", "source.updated", "source.disabled", "source.enabled"]
    assert all(e.actor == "editor@example.com" for e in audit(engine, entity_id="api-src"))
    # A file-managed source: 409 naming the file and the way out, then take_over.
    r = client.patch(f"/api/sources/{REDDIT}", json={"schedule": "2h"}, headers=h)
    assert r.status_code == 409 and "managed in the sources file" in r.json()["detail"]
    r = client.patch(f"/api/sources/{REDDIT}?take_over=true", json={"schedule": "2h"}, headers=h)
    assert r.status_code == 200 and r.json()["managed_by"] == "ui"
    assert client.patch("/api/sources/nope", json={}, headers=h).status_code == 404


# --- SOPs, watches and teams ------------------------------------------------------------------------------


def test_an_sop_with_watches_through_the_form(client: TestClient, engine: Engine) -> None:
    token = login(client, "editor")
    page = client.get(f"/sops/new?source={REDDIT}").text
    assert 'name="watch-1-source"' in page and f'<option value="{REDDIT}" selected>' in page
    form = {"csrf_token": token, "id": "SOP-WEB-1", "title": "Strikes", "owner": "editor@example.com",
            "team": "trust-safety", "review_days": "4",
            "watch-1-source": REDDIT, "watch-1-sections": "Reddit Content Policy > Enforcement\n",
            "watch-1-keywords": "strike\nban*",
            "watch-2-source": "x-privacy-policy", "watch-2-include_cosmetic": "1",
            "watch-3-source": "", "watch-3-sections": ""}
    r = client.post("/sops/new", data=form)
    assert r.status_code == 303, r.text[:3000]
    sop = row(engine, Sop, "SOP-WEB-1")
    assert (sop.managed_by, sop.team_id, sop.review_days) == ("ui", "trust-safety", 4)
    assert sop.watches == [{"source": REDDIT, "sections": ["Reddit Content Policy > Enforcement"],
                            "keywords": ["strike", "ban*"]},
                           {"source": "x-privacy-policy", "sections": [], "keywords": [], "include_cosmetic": True}]
    assert audit(engine, "sop.added", "SOP-WEB-1")[0].actor == "editor@example.com"
    edit = client.get("/sops/SOP-WEB-1/edit").text
    assert "ban*" in edit and 'name="watch-3-source"' in edit  # two watches and a blank one
    bad = dict(form, **{"watch-1-sections": "Rules > [x", "watch-2-source": "nope"})
    r = client.post("/sops/SOP-WEB-1/edit", data=bad)
    assert r.status_code == 422
    assert "watches[1].sections: bad section glob" in r.text and "watches[2].source: unknown source" in r.text
    assert "Rules &gt; [x" in r.text  # kept
    r = client.post("/sops/SOP-TS-001/edit", data=form)
    assert r.status_code == 409 and "is managed in the SOP file" in r.text


def test_sops_and_teams_through_the_api(client: TestClient, engine: Engine) -> None:
    h = csrf_headers(client, "editor")
    team = {"id": "web-team", "name": "Web team", "members": ["a@example.com"],
            "notify": ["mailto:team@example.com"]}
    r = client.post("/api/teams", json=team, headers=h)
    assert r.status_code == 201, r.text
    sop = {"id": "SOP-API-1", "title": "From the API", "owner": "a@example.com", "team": "web-team",
           "watches": [{"source": REDDIT, "keywords": ["vote"]}]}
    r = client.post("/api/sops", json=sop, headers=h)
    assert r.status_code == 201 and r.json()["spec"] == sop
    r = client.patch("/api/sops/SOP-API-1", json={"watches": [{"source": REDDIT, "sections": ["*Rules*"]}]},
                     headers=h)
    assert r.status_code == 200 and r.json()["spec"]["watches"] == [{"source": REDDIT, "sections": ["*Rules*"]}]
    r = client.post("/api/sops", json=dict(sop, id="SOP-API-2", team="ghosts"), headers=h)
    assert r.status_code == 422 and any("unknown team 'ghosts'" in p for p in r.json()["problems"])
    assert client.post("/api/sops", json=sop, headers=h).status_code == 409
    assert client.patch("/api/teams/trust-safety", json={"name": "T&S"}, headers=h).status_code == 409
    r = client.put("/api/teams/web-team", json={"name": "Renamed"}, headers=h)
    assert r.status_code == 200 and r.json()["spec"] == {"id": "web-team", "name": "Renamed"}
    assert client.post("/api/sops/SOP-API-1/disable", headers=h).status_code == 200
    assert not row(engine, Sop, "SOP-API-1").enabled
    assert client.post("/api/teams/web-team/disable", headers=h).status_code == 200
    assert not row(engine, Team, "web-team").enabled
    assert [e.action for e in audit(engine) if e.entity_id in ("web-team", "SOP-API-1")] == [
        "team.added", "sop.added", "sop.updated", "team.updated", "sop.disabled", "team.disabled"]


def test_teams_through_the_forms_keep_channels_they_do_not_show(client: TestClient, engine: Engine) -> None:
    token = login(client, "editor")
    r = client.post("/teams/new", data={"csrf_token": token, "id": "forms-team", "name": "Forms",
                                        "members": "a@example.com\nb@example.com",
                                        "notify": "mailto:forms@example.com"})
    assert r.status_code == 303, r.text[:2000]
    r = client.post("/teams/forms-team/edit", data={"csrf_token": token, "name": "Forms team",
                                                    "members": "a@example.com"})
    assert r.status_code == 303
    saved = row(engine, Team, "forms-team")
    assert (saved.name, saved.members, saved.notify) == ("Forms team", ["a@example.com"],
                                                         ["mailto:forms@example.com"])
    client.post("/teams/forms-team/edit", data={"csrf_token": token, "name": "Forms team", "clear_notify": "1"})
    assert row(engine, Team, "forms-team").notify == []
    r = client.post("/teams/new", data={"csrf_token": token, "id": "Bad Id", "name": "x"})
    assert r.status_code == 422 and "id: must be a lowercase slug" in r.text
    assert "Forms team" in client.get("/teams").text


def test_the_new_endpoints_are_in_the_openapi_schema(client: TestClient) -> None:
    login(client, "viewer")
    paths = client.get("/openapi.json").json()["paths"]
    for path, methods in {"/api/sources": {"post"}, "/api/sources/{source_id}": {"get", "put", "patch"},
                          "/api/sources/{source_id}/enable": {"post"}, "/api/sources/{source_id}/disable": {"post"},
                          "/api/sources/{source_id}/check": {"post"},
                          "/api/sources/{source_id}/checks/{request_id}": {"get"},
                          "/api/sources/preview": {"post"}, "/api/sources/{source_id}/sections": {"get"},
                          "/api/watches/preview": {"post"}, "/api/sops": {"get", "post"},
                          "/api/sops/{sop_id}": {"get", "put", "patch"}, "/api/teams": {"get", "post"},
                          "/api/teams/{team_id}": {"put", "patch"}}.items():
        assert methods <= set(paths.get(path, {})), (path, sorted(paths.get(path, {})))
    docs = client.get("/docs").text
    assert "/api/watches/preview" in docs and "take_over" in docs


def test_source_names_link_to_their_pages(client: TestClient, engine: Engine) -> None:
    login(client, "viewer")
    with Session(engine) as s:
        impact = s.exec(select(Impact).where(Impact.source_id == REDDIT)).first()
    assert impact is not None
    link = f'href="/sources/{REDDIT}"'
    for path in ("/", "/changes", f"/changes/{impact.change_id}", f"/impacts/{impact.id}", "/sops/SOP-TS-001",
                 "/sources"):
        assert link in client.get(path).text, path
