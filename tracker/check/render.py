"""Pages rendered by a browser: the `render` and `wait_for` options of an html source.

A rendered source is fetched by headless Chromium (spiders: scrapy-playwright) and the DOM the
page's scripts built is extracted with the html rules. Only html pages are rendered: a PDF or a
JSON answer is the same bytes with or without a browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracker.check.extract import validate_selector

RENDERERS = ("browser",)
INSTALL_HINT = ("pip install '.[browser]' (scrapy-playwright) and Debian's chromium (apt-get install chromium)")


def render_problems(kind: str, *, render: str | None, wait_for: str | None) -> list[str]:
    """What is wrong with a source's `render` and `wait_for` (empty when nothing is)."""
    problems: list[str] = []
    if render is not None and render not in RENDERERS:
        problems.append(f"render: unknown renderer {render!r} (known: {', '.join(RENDERERS)})")
    elif render is not None and kind != "html":
        problems.append(f"render: applies to kind html only, not {kind}")
    if wait_for is not None:
        if render is None:
            problems.append("wait_for: applies to rendered pages only (add `render: browser`)")
        elif why := validate_selector(wait_for):
            problems.append(f"wait_for: invalid CSS selector {wait_for!r}: {why}")
    return problems


def is_rendered(options: Mapping[str, Any] | None) -> bool:
    """Whether a source's stored options say it is rendered by a browser."""
    return bool(options) and (options or {}).get("render") == "browser"


def kind_label(kind: str, options: Mapping[str, Any] | None) -> str:
    """The kind as people read it: `html (browser)` for a rendered page."""
    return f"{kind} (browser)" if is_rendered(options) else kind
