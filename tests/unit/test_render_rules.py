"""What `render` and `wait_for` may say, and how a rendered source's kind reads (tracker.check.render)."""

from __future__ import annotations

import pytest

from tracker.check.kinds import rule_problems
from tracker.check.render import kind_label, render_problems


@pytest.mark.parametrize(("kind", "render", "wait_for", "problem"), [
    ("html", "browser", None, None),
    ("html", "browser", "article.policy > h2", None),
    ("html", None, None, None),
    ("html", "firefox", None, "render: unknown renderer 'firefox' (known: browser)"),
    ("json", "browser", None, "render: applies to kind html only, not json"),
    ("html", None, "main", "wait_for: applies to rendered pages only (add `render: browser`)"),
    ("html", "browser", "main[", "wait_for: invalid CSS selector 'main['"),
])
def test_render_problems(kind: str, render: str | None, wait_for: str | None, problem: str | None) -> None:
    found = render_problems(kind, render=render, wait_for=wait_for)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith(problem), found


def test_rule_problems_include_the_render_problems_with_the_others() -> None:
    from spiders import KINDS

    found = rule_problems(KINDS["html"], select=["article["], remove=[], link_select=None, kinds=KINDS,
                          render="chrome")
    assert [p.split(":")[0] for p in found] == ["render", "select"]


@pytest.mark.parametrize(("kind", "options", "label"), [
    ("html", {"render": "browser", "wait_for": "main"}, "html (browser)"),
    ("html", {}, "html"),
    ("html", None, "html"),
    ("pdf", {"link_select": "a"}, "pdf"),
])
def test_kind_label(kind: str, options: dict[str, str] | None, label: str) -> None:
    assert kind_label(kind, options) == label
