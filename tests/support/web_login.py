"""Logging in to the web app from a test client, as the seeded users (tests/support/web_seed.py).

One copy of what several web test files did each their own way: read the login form's token,
post the password, and hand back what a mutation needs (the session's CSRF token).
"""

from __future__ import annotations

import re
from typing import Any

from argon2 import PasswordHasher

from tests.support.web_seed import PASSWORD, USERS

# Real argon2 with cheap parameters, so that logins in tests take milliseconds (monkeypatch it over
# tracker.accounts._hasher).
CHEAP = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


def login_form_token(c: Any) -> str:
    """The login form's one-time token (a TestClient or an httpx.Client on a running server)."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
    assert found, "no login form"
    return found.group(1)


def login(c: Any, role: str, password: str = PASSWORD) -> str:
    """Log in as the seeded user of a role; the session's CSRF token."""
    r = c.post("/login", data={"email": USERS[role], "password": password, "csrf_token": login_form_token(c)})
    assert r.status_code == 303, r.text
    me = c.get("/api/me").json()
    assert me["email"] == USERS[role], me
    return str(me["csrf_token"])


def csrf_headers(c: Any, role: str) -> dict[str, str]:
    """Log in; the headers an API client sends on mutations."""
    return {"X-CSRF-Token": login(c, role)}


def page_csrf(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no form with a CSRF token on the page"
    return found.group(1)
