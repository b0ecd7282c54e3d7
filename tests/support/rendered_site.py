"""Pages whose policy text only a browser sees: a static shell whose script fetches the text (a real
version from tests/fixtures/pga, as the policy site renders it) and inserts it, with fresh noise of its
own on every load (a random promotion inside the article, a session id in an attribute, the render time
in the footer). Served from tests.support.page_server routes.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from tests.support import policy_site
from tests.support.page_server import PageServer, Route

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pga"
JSON = {"Content-Type": "application/json"}


def shell(title: str, api: str, *, pixel: str) -> bytes:
    """The page as served: no policy text in the markup, only the script that loads it."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>
<body><main id="main"><h1 class="page-title">{html.escape(title)}</h1><div id="app">Loading…</div></main>
<img src="{pixel}" alt="">
<footer class="site-footer" id="footer"></footer>
<script>
setTimeout(function () {{
  fetch({json.dumps(api)}).then(function (r) {{ return r.ok ? r.json() : null; }}).then(function (doc) {{
    var app = document.getElementById("app");
    if (!doc) {{ app.textContent = "Something went wrong."; return; }}
    var article = document.createElement("article");
    article.className = "policy";
    article.setAttribute("data-session", Math.random().toString(36).slice(2));
    article.innerHTML = doc.body;
    var promo = document.createElement("div");
    promo.className = "promo";
    promo.textContent = "Offer " + Math.floor(Math.random() * 1e9) + " ends soon";
    article.insertBefore(promo, article.children[Math.floor(Math.random() * article.children.length)] || null);
    app.replaceChildren(article);
    document.getElementById("footer").textContent = "Rendered at " + new Date().toISOString();
  }});
}}, 100);
</script></body></html>""".encode()


def policy(slug: str, version: int) -> bytes:
    """What the page's script fetches: the version's HTML body, as JSON."""
    doc = policy_site.Document(FIXTURES / slug)
    return json.dumps({"body": doc.body(version)}).encode()


def serve_rendered(pages: PageServer, slug: str, version: int, *, path: str | None = None) -> str:
    """Serve a rendered page of the document at version (its shell at /r/<path>); return its URL."""
    name = path or slug
    title = policy_site.Document(FIXTURES / slug).title
    pages.routes[f"/r/{name}"] = Route(shell(title, f"/api/{name}.json", pixel=f"/pixel/{name}.gif"))
    pages.routes[f"/api/{name}.json"] = Route(policy(slug, version), headers=JSON)
    pages.routes[f"/pixel/{name}.gif"] = Route(b"GIF89a", headers={"Content-Type": "image/gif"})
    return pages.url(f"/r/{name}")
