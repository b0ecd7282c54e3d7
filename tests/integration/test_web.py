"""The web UI through FastAPI's test client: every page, every action, role rules, CSRF, hostile text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

import tracker.accounts
from tests.support.web_seed import HOSTILE, PASSWORD, USERS, Seeded, seed_with_users
from tracker.audit.trail import verify
from tracker.config import Settings
from tracker.store.db import session_scope
from tracker.store.models import AuditEvent, Impact, ImpactNote
from tracker.web import create_app


@pytest.fixture
def seeded(engine: Engine) -> Seeded:
    return seed_with_users(engine, versions=4, hostile=True)


@pytest.fixture
def app_settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, secret_key="test-secret-key-0123456789")


@pytest.fixture
def client(app_settings: Settings, seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings), follow_redirects=False) as c:
        yield c


def login_token(c: TestClient) -> str:
    page = c.get("/login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def login(c: TestClient, role: str) -> str:
    """Log in as the seeded user of a role; returns the session's CSRF token."""
    r = c.post("/login", data={"email": USERS[role], "password": PASSWORD, "csrf_token": login_token(c), "next": "/"})
    assert r.status_code == 303, r.text
    return str(c.get("/api/me").json()["csrf_token"])


def events(engine: Engine, action: str | None = None) -> list[AuditEvent]:
    with Session(engine) as s:
        q = select(AuditEvent).order_by(col(AuditEvent.seq))
        if action:
            q = q.where(AuditEvent.action == action)
        return list(s.exec(q).all())


def impact(engine: Engine, impact_id: int) -> Impact:
    with Session(engine) as s:
        found = s.get(Impact, impact_id)
        assert found is not None
        return found


def open_impact(engine: Engine, sop_id: str = "SOP-TS-001") -> Impact:
    with Session(engine) as s:
        found = s.exec(select(Impact).where(Impact.sop_id == sop_id, Impact.status == "open")
                       .order_by(col(Impact.id))).first()
        assert found is not None
        return found


def flash_after(c: TestClient, r: Any) -> str:
    """The page a post/redirect/get lands on (with its one-time message)."""
    assert r.status_code == 303, r.text
    return str(c.get(r.headers["location"]).text)


# --- login, sessions, cookies -------------------------------------------------------------------


def test_pages_need_login(client: TestClient) -> None:
    r = client.get("/changes/1?view=inline")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fchanges%2F1%3Fview%3Dinline"
    assert client.get("/api/impacts").status_code == 401
    assert client.get("/login").status_code == 200


def test_login_sets_signed_httponly_samesite_cookie_and_logout_ends_it(client: TestClient) -> None:
    token = login_token(client)
    r = client.post("/login", data={"email": "Editor@Example.com ", "password": PASSWORD, "csrf_token": token,
                                    "next": "/sops"})
    assert r.status_code == 303 and r.headers["location"] == "/sops"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("tracker_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert client.get("/").status_code == 200
    # A tampered session is no session.
    value = client.cookies.get("tracker_session") or ""
    with TestClient(client.app, follow_redirects=False) as other:
        other.cookies.set("tracker_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
        assert other.get("/").status_code == 303
    csrf = client.get("/api/me").json()["csrf_token"]
    assert client.post("/logout", data={}).status_code == 403  # logging out needs the token too
    r = client.post("/logout", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert client.get("/").status_code == 303


def test_secure_cookie_over_https_or_when_configured(app_settings: Settings, seeded: Seeded) -> None:
    with TestClient(create_app(app_settings), base_url="https://tracker.example", follow_redirects=False) as c:
        r = c.post("/login", data={"email": USERS["viewer"], "password": PASSWORD, "csrf_token": login_token(c)})
        assert "Secure" in next(h for h in r.headers.get_list("set-cookie") if h.startswith("tracker_session="))
    forced = app_settings.model_copy(update={"web_secure_cookies": True})
    with TestClient(create_app(forced), follow_redirects=False) as c:
        # (Behind a TLS-terminating proxy the browser speaks HTTPS; here the cookie is only checked.)
        r = c.get("/login")
        assert "Secure" in next(h for h in r.headers.get_list("set-cookie") if h.startswith("tracker_login="))


def test_login_refuses_missing_token_wrong_password_and_is_rate_limited(client: TestClient) -> None:
    r = client.post("/login", data={"email": USERS["editor"], "password": PASSWORD})
    assert r.status_code == 403 and "security token" in r.text
    for _ in range(5):
        r = client.post("/login", data={"email": USERS["editor"], "password": "wrong password",
                                        "csrf_token": login_token(client)})
        assert r.status_code == 401 and "wrong email or password" in r.text
    # The sixth try is refused even with the right password, for this address and email only.
    r = client.post("/login", data={"email": USERS["editor"], "password": PASSWORD, "csrf_token": login_token(client)})
    assert r.status_code == 429 and "too many failed logins" in r.text and int(r.headers["retry-after"]) > 0
    assert "tracker_session" not in r.headers.get("set-cookie", "")
    login(client, "viewer")


def test_generated_secret_is_kept_in_the_database(db_url: str, seeded: Seeded) -> None:
    settings = Settings(database_url=db_url, secret_key=None)
    with TestClient(create_app(settings), follow_redirects=False) as first:
        login(first, "viewer")
        cookie = first.cookies.get("tracker_session")
    # Another server process on the same database accepts the session: the key was stored, not random per run.
    with TestClient(create_app(settings), follow_redirects=False) as second:
        second.cookies.set("tracker_session", cookie or "")
        assert second.get("/").status_code == 200
    # A configured key takes over (and old sessions signed with the generated one stop working).
    with TestClient(create_app(settings.model_copy(update={"secret_key": "another-key-abcdefghijkl"})),
                    follow_redirects=False) as third:
        third.cookies.set("tracker_session", cookie or "")
        assert third.get("/").status_code == 303


def test_security_headers(client: TestClient) -> None:
    login(client, "viewer")
    r = client.get("/")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"


# --- pages --------------------------------------------------------------------------------------


def test_every_page_renders(client: TestClient, seeded: Seeded, engine: Engine) -> None:
    login(client, "admin")
    change_id = seeded.changes["reddit-community-guidelines"][-1]
    imp = open_impact(engine)
    pages = {
        "/": ["Open impacts", "Enforcement actions and strikes", "Privacy requests from users", "Recent changes"],
        "/changes": [f"/changes/{change_id}", "reddit-community-guidelines"],
        f"/changes/{change_id}": ["What changed, section by section", "SOPs this change touches", "Side by side"],
        f"/changes/{change_id}?view=inline": ["Inline", "<ins>", "<del>"],
        f"/impacts/{imp.id}": [f"Impact #{imp.id}", "impact.created", "Add a note", "Reassign"],
        "/sops": ["SOP-TS-001", "Trust &amp; Safety"],
        "/sops/SOP-TS-001": ["Watches", "*Enforcement*", "Impact history", f"/impacts/{imp.id}"],
        "/sources": ["Reddit Community Guidelines", "failing", "3 in a row", "Next run", "due by schedule",
                     'href="/sources/reddit-community-guidelines"'],
        "/sources/reddit-community-guidelines": ["Sections of the latest version", "Reddit Content Policy",
                                                 f"/changes/{change_id}", "History", "first version", "Schedule",
                                                 "Next run"],
        "/audit": ["Chain verified", "impact.created", "user.added"],
        "/users": [USERS["viewer"], "Add a user"],
        "/logout": ["Log out"],
    }
    for path, expected in pages.items():
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        for text in expected:
            assert text in r.text, (path, text)
    assert client.get("/changes/99999").status_code == 404
    assert client.get("/impacts/99999").status_code == 404
    assert client.get("/sops/NOPE").status_code == 404
    assert client.get("/sources/NOPE").status_code == 404
    assert "no change #99999" in client.get("/changes/99999").text


def test_change_page_shows_word_level_diff_with_context_folded(client: TestClient, seeded: Seeded) -> None:
    login(client, "viewer")
    # Fixture v2 -> v3 of the Reddit guidelines changes only "Reddit Content Policy > Enforcement".
    change_id = seeded.changes["reddit-community-guidelines"][2]
    side = client.get(f"/changes/{change_id}").text
    assert "Reddit Content Policy &gt; Enforcement" in side
    assert side.count('<tr class="chg chg-modified">') == 3
    assert '<del><span class="sr-only">removed: </span>' in side and '<ins><span class="sr-only">added: </span>' in side
    # Untouched sections are folded away (expandable), not dropped.
    assert re.search(r'<details class="unchanged">\s*<summary>\d+ unchanged sections', side)
    assert '<details class="context">' in side
    inline = client.get(f"/changes/{change_id}?view=inline").text
    assert inline.count('class="chg chg-modified inline-block"') == 3
    assert "~ modified" in inline  # the kind of change is said in words, not colour alone


def test_dashboard_groups_by_sop_overdue_first_and_filters(client: TestClient, engine: Engine) -> None:
    login(client, "viewer")
    with session_scope(engine) as s:
        late = s.exec(select(Impact).where(Impact.sop_id == "SOP-CS-014")).first()
        assert late is not None
        late.due_date = date.today() - timedelta(days=30)
        s.add(late)
    page = client.get("/").text
    assert "overdue" in page
    first_group = page.index("Privacy requests from users")
    assert first_group < page.index("Enforcement actions and strikes")
    only_support = client.get("/", params={"team": "support"}).text
    assert "Privacy requests from users" in only_support and "Enforcement actions and strikes" not in only_support
    only_reddit = client.get("/", params={"source": "reddit-community-guidelines"}).text
    assert "Privacy requests from users" not in only_reddit and "Enforcement actions and strikes" in only_reddit
    by_assignee = client.get("/", params={"assignee": "viewer@example.com"}).text
    assert "Privacy requests from users" in by_assignee and "Enforcement actions and strikes" not in by_assignee
    assert "No matching open impacts" in client.get("/", params={"status": "updated"}).text
    assert client.get("/", params={"status": "bogus"}).status_code == 400


# --- actions ------------------------------------------------------------------------------------


def test_status_actions_write_audit_events_as_the_logged_in_user(client: TestClient, engine: Engine) -> None:
    csrf = login(client, "editor")
    imp = open_impact(engine)
    back = f"/changes/{imp.change_id}"
    page = flash_after(client, client.post(f"/impacts/{imp.id}/status",
                                           data={"status": "needs_update", "csrf_token": csrf, "next": back}))
    assert f"impact #{imp.id} marked needs update" in page
    assert impact(engine, imp.id or 0).status == "needs_update"
    ev = events(engine, "impact.status")[-1]
    assert (ev.actor, ev.entity_id, ev.before, ev.after) == ("editor@example.com", str(imp.id),
                                                             {"status": "open"}, {"status": "needs_update"})
    for status in ("in_progress", "updated"):
        client.post(f"/impacts/{imp.id}/status", data={"status": status, "note": "SOP v4 published",
                                                        "csrf_token": csrf})
    done = impact(engine, imp.id or 0)
    assert done.status == "updated" and done.resolved_by == "editor@example.com"
    # An illegal move is refused with the workflow's message, and nothing changes.
    page = flash_after(client, client.post(f"/impacts/{imp.id}/status", data={"status": "in_progress",
                                                                              "csrf_token": csrf}))
    assert "Not done:" in page and "cannot go from updated to in_progress" in page
    assert impact(engine, imp.id or 0).status == "updated"
    with Session(engine) as s:
        assert verify(s).ok


def test_dismiss_reassign_due_date_and_note(client: TestClient, engine: Engine) -> None:
    csrf = login(client, "editor")
    imp = open_impact(engine)
    page = flash_after(client, client.post(f"/impacts/{imp.id}/dismiss", data={"reason": "", "csrf_token": csrf}))
    assert "dismissing needs a reason" in page and impact(engine, imp.id or 0).status == "open"
    client.post(f"/impacts/{imp.id}/dismiss", data={"reason": "wording only", "csrf_token": csrf})
    dismissed = impact(engine, imp.id or 0)
    assert dismissed.status == "dismissed" and dismissed.decision_note == "wording only"

    other = open_impact(engine)
    client.post(f"/impacts/{other.id}/assign", data={"assignee": "ana@example.com", "csrf_token": csrf})
    assert impact(engine, other.id or 0).assignee == "ana@example.com"
    page = flash_after(client, client.post(f"/impacts/{other.id}/assign", data={"assignee": "not-an-email",
                                                                                "csrf_token": csrf}))
    assert "must be an email address" in page
    client.post(f"/impacts/{other.id}/due", data={"due": "2030-01-31", "csrf_token": csrf})
    assert impact(engine, other.id or 0).due_date == date(2030, 1, 31)
    page = flash_after(client, client.post(f"/impacts/{other.id}/due", data={"due": "next week",
                                                                             "csrf_token": csrf}))
    assert "is not a date" in page
    client.post(f"/impacts/{other.id}/notes", data={"text": "asked legal", "csrf_token": csrf})
    with Session(engine) as s:
        notes = s.exec(select(ImpactNote).where(ImpactNote.impact_id == other.id)).all()
        assert [(n.author, n.text) for n in notes] == [("editor@example.com", "asked legal")]
    actions = [(e.action, e.actor) for e in events(engine) if e.entity_id in (str(imp.id), str(other.id))
               and e.entity_type == "impact" and e.action != "impact.created"]
    assert actions == [("impact.status", "editor@example.com"), ("impact.note", "editor@example.com"),
                       ("impact.assigned", "editor@example.com"), ("impact.due_date", "editor@example.com"),
                       ("impact.note", "editor@example.com")]
    assert "asked legal" in client.get(f"/impacts/{other.id}").text


def test_bulk_mark_every_impact_of_a_change(client: TestClient, engine: Engine, seeded: Seeded) -> None:
    csrf = login(client, "editor")
    with Session(engine) as s:
        counts: dict[int, int] = {}
        for i in s.exec(select(Impact)).all():
            counts[i.change_id] = counts.get(i.change_id, 0) + 1
    change_id = max(counts, key=lambda k: counts[k])
    page = flash_after(client, client.post(f"/changes/{change_id}/mark", data={"status": "needs_update",
                                                                               "csrf_token": csrf}))
    assert f"{counts[change_id]} impact" in page and f"of change #{change_id} marked needs update" in page
    with Session(engine) as s:
        assert {i.status for i in s.exec(select(Impact).where(Impact.change_id == change_id)).all()} == {
            "needs_update"}
    assert len([e for e in events(engine, "impact.status") if e.actor == "editor@example.com"]) == counts[change_id]


# --- roles and CSRF -----------------------------------------------------------------------------


def _mutations(imp: Impact) -> list[tuple[str, dict[str, str]]]:
    return [(f"/impacts/{imp.id}/status", {"status": "needs_update"}),
            (f"/impacts/{imp.id}/dismiss", {"reason": "no"}),
            (f"/impacts/{imp.id}/assign", {"assignee": "x@example.com"}),
            (f"/impacts/{imp.id}/due", {"due": "2030-01-01"}),
            (f"/impacts/{imp.id}/notes", {"text": "hi"}),
            (f"/changes/{imp.change_id}/mark", {"status": "needs_update"}),
            ("/users", {"email": "new@example.com", "role": "admin", "password": "long enough pw"}),
            ("/users/1/role", {"role": "admin"})]


def test_viewer_can_read_but_every_post_is_refused(client: TestClient, engine: Engine) -> None:
    csrf = login(client, "viewer")
    imp = open_impact(engine)
    page = client.get(f"/changes/{imp.change_id}").text
    assert "Needs update" not in page and "Mark all" not in page  # no buttons for a viewer
    before = len(events(engine))
    for path, data in _mutations(imp):
        r = client.post(path, data=data | {"csrf_token": csrf})
        assert r.status_code == 403, path
        assert "viewer" in r.text
    api = [client.post(f"/api/impacts/{imp.id}", json={"status": "needs_update"}, headers={"X-CSRF-Token": csrf}),
           client.post(f"/api/impacts/{imp.id}/notes", json={"text": "x"}, headers={"X-CSRF-Token": csrf}),
           client.post(f"/api/changes/{imp.change_id}/mark", json={"status": "dismissed", "note": "x"},
                       headers={"X-CSRF-Token": csrf})]
    assert [r.status_code for r in api] == [403, 403, 403]
    assert len(events(engine)) == before and impact(engine, imp.id or 0).status == "open"


def test_editor_cannot_manage_users(client: TestClient, engine: Engine) -> None:
    csrf = login(client, "editor")
    assert client.get("/users").status_code == 403
    assert client.post("/users", data={"email": "n@example.com", "role": "admin", "password": "long enough pw",
                                       "csrf_token": csrf}).status_code == 403
    assert events(engine, "user.added")[-1].entity_id != "n@example.com"


def test_every_mutation_needs_the_csrf_token(client: TestClient, engine: Engine) -> None:
    csrf = login(client, "admin")
    imp = open_impact(engine)
    before = len(events(engine))
    for path, data in _mutations(imp):
        assert client.post(path, data=data).status_code == 403, path
        assert client.post(path, data=data | {"csrf_token": "forged"}).status_code == 403, path
    r = client.post(f"/api/impacts/{imp.id}", json={"status": "needs_update"})
    assert r.status_code == 403 and "security token" in r.json()["detail"]
    assert client.post(f"/api/impacts/{imp.id}", json={"status": "needs_update"},
                       headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert len(events(engine)) == before
    # The token of one session is worthless in another.
    with TestClient(client.app, follow_redirects=False) as other:
        login(other, "editor")
        assert other.post(f"/impacts/{imp.id}/notes", data={"text": "x", "csrf_token": csrf}).status_code == 403


def test_admin_adds_users_and_changes_roles(client: TestClient, engine: Engine) -> None:
    csrf = login(client, "admin")
    page = flash_after(client, client.post("/users", data={"email": "New@Example.com", "role": "editor",
                                                           "password": "long enough pw", "csrf_token": csrf}))
    assert "added new@example.com as editor" in page
    added = events(engine, "user.added")[-1]
    assert (added.actor, added.entity_id, added.after) == ("admin@example.com", "new@example.com",
                                                           {"email": "new@example.com", "role": "editor"})
    assert "long enough pw" not in str(added.after)
    page = flash_after(client, client.post("/users", data={"email": "x@example.com", "role": "viewer",
                                                           "password": "short", "csrf_token": csrf}))
    assert "at least 8 characters" in page
    with Session(engine) as s:
        uid = tracker.accounts.get_user(session=s, email="new@example.com").id  # type: ignore[union-attr]
    client.post(f"/users/{uid}/role", data={"role": "viewer", "csrf_token": csrf})
    role = events(engine, "user.role")[-1]
    assert (role.actor, role.entity_id, role.before, role.after) == ("admin@example.com", "new@example.com",
                                                                     {"role": "editor"}, {"role": "viewer"})


# --- hostile scraped text -----------------------------------------------------------------------


def test_hostile_scraped_text_renders_inert(client: TestClient, seeded: Seeded, engine: Engine) -> None:
    csrf = login(client, "editor")
    client.post(f"/impacts/{seeded.hostile_impact}/notes", data={"text": HOSTILE, "csrf_token": csrf})
    paths = ["/", "/changes", f"/changes/{seeded.hostile_change}", f"/changes/{seeded.hostile_change}?view=inline",
             f"/impacts/{seeded.hostile_impact}", "/sops", "/sops/SOP-EVIL", "/sources", "/sources/evil", "/audit",
             "/sources/evil/edit", "/sops/SOP-EVIL/edit", "/sops/new"]
    for path in paths:
        html = client.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html and "onerror=alert(1)>" not in html, path
        assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror=alert(1)&gt;" in html, path
        assert 'href="javascript:' not in html, path
        # The only scripts and images a page may load are its own files: none are inline.
        scripts = re.findall(r"<script[^>]*>", html.replace("&lt;script", ""))
        assert all(re.fullmatch(r'<script src="/static/[a-z]+\.js">', tag) for tag in scripts), (path, scripts)
        assert "</script>" not in re.sub(r'<script src="/static/[a-z]+\.js"></script>', "", html), path


def test_password_change_or_disabling_ends_sessions(client: TestClient, engine: Engine) -> None:
    login(client, "editor")
    with session_scope(engine) as s:
        tracker.accounts.set_password(session=s, email=USERS["editor"], password="a brand new one",
                                      by="boss@example.com")
    assert client.get("/").status_code == 303
    r = client.post("/login", data={"email": USERS["editor"], "password": "a brand new one",
                                    "csrf_token": login_token(client)})
    assert r.status_code == 303
    with session_scope(engine) as s:
        tracker.accounts.set_enabled(session=s, email=USERS["editor"], enabled=False, by="boss@example.com")
    assert client.get("/").status_code == 303
    r = client.post("/login", data={"email": USERS["editor"], "password": "a brand new one",
                                    "csrf_token": login_token(client)})
    assert r.status_code == 401
    assert [e.action for e in events(engine) if e.entity_type == "user"][-2:] == ["user.password", "user.disabled"]
    assert all("brand new" not in str(e.after) for e in events(engine))


def test_sop_page_warns_of_a_glob_matching_no_heading(client: TestClient, seeded: Seeded, engine: Engine) -> None:
    from tracker.store.models import Sop

    with session_scope(engine) as s:
        sop = s.get(Sop, "SOP-TS-001")
        assert sop is not None
        sop.watches = [{"source": "reddit-community-guidelines", "sections": ["Reddit Content Polcy*"]}]
        s.add(sop)
    login(client, "viewer")
    html = client.get("/sops/SOP-TS-001").text
    assert "the sections glob “Reddit Content Polcy*” matches no heading" in html
    assert "nearest headings: Reddit Content Policy" in html


def test_change_and_impact_pages_say_when_a_change_takes_effect(client: TestClient, seeded: Seeded,
                                                                engine: Engine) -> None:
    """Effective and comments-close dates read as of today on the change and impact pages, not only in the digest."""
    from tracker.store.models import Change

    impact_id = seeded.impacts[0]
    with session_scope(engine) as s:
        impact = s.get(Impact, impact_id)
        assert impact is not None
        change = s.get(Change, impact.change_id)
        assert change is not None
        change.effective_on = date.today() + timedelta(days=12)
        change.comments_close_on = date.today() - timedelta(days=3)
        change.dates_from = {"effective_on": "This policy is effective <b>soon</b>."}
        change_id = change.id
    login(client, "viewer")
    page = client.get(f"/changes/{change_id}").text
    effective = (date.today() + timedelta(days=12)).isoformat()
    closed = (date.today() - timedelta(days=3)).isoformat()
    assert f"Takes effect in 12 days ({effective}) · comments closed on {closed}" in page
    assert "effective &lt;b&gt;soon&lt;/b&gt;" in page and "<b>soon</b>" not in page
    assert f"Takes effect in 12 days ({effective})" in client.get(f"/impacts/{impact_id}").text
    with session_scope(engine) as s:
        other = s.exec(select(Change).where(col(Change.id) != change_id)).first()
        assert other is not None and other.effective_on is None
        other_id = other.id
    assert "akes effect" not in client.get(f"/changes/{other_id}").text
