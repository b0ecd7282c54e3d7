"""The default part of a page to watch when a source declares no `select`: its main content.

A page without a select rule used to be watched whole, so its navigation order, its "page
generated at" footer and its "trending now" aside changed on every fetch and each fetch was a
false change. Without select, the extractor now drops what is never policy text (navigation,
site header and footer, asides, forms, `[aria-hidden]`, cookie and consent banners) and keeps
the page's main content: the `main` element (or `[role=main]`), narrowed to the one `article`
in it that holds nearly all of its text, or, on a page with neither, the densest text container
(the element whose own paragraphs hold the most text, readability-style). With a select rule
none of this applies: the rules say what to keep.

trafilatura and readability-lxml were not installed where this was written, so the choice is
hand-written; tests/integration/test_default_extraction.py holds it to the policy site's pages
(no change over 20 re-fetches, the same sections as `select: article.policy`).
"""

from __future__ import annotations

import lxml.etree

# Bump when the default choice changes: the rules of every source without select then differ
# from its stored versions', which are re-extracted and the difference recorded as technical.
MAIN_CONTENT_VERSION = "1"

# Never policy text, wherever it stands (a header inside an article is its title: kept).
_BOILERPLATE = lxml.etree.XPath(
    "//nav | //aside | //footer | //form | //dialog | //header[not(ancestor::article)]"
    " | //*[@aria-hidden='true'] | //*[@role='navigation' or @role='banner' or @role='contentinfo'"
    " or @role='complementary' or @role='search' or @role='dialog' or @role='alertdialog']")
_BANNER_WORDS = ("cookie", "consent", "gdpr", "cmp-")
# A banner is short and has no section heading of its own: a policy section id="cookies" is kept.
_MAX_BANNER_CHARS = 1000
_HAS_SECTION_HEADING = lxml.etree.XPath("boolean(.//h1 | .//h2 | .//h3)")
_TEXT_LENGTH = lxml.etree.XPath("string-length(normalize-space(.))")
_MARKED = lxml.etree.XPath("//*[@id or @class]")
_MAINS = lxml.etree.XPath("//main | //*[@role='main']")
_ARTICLES = lxml.etree.XPath(".//article")
_CONTAINERS = lxml.etree.XPath("//div | //section | //td")
# What counts as a container's own text: its paragraphs, list items, headings, rows, quotes.
_OWN_BLOCKS = frozenset("p li ul ol dl dt dd h1 h2 h3 h4 h5 h6 table pre blockquote".split())
# An article holding this share of the main element's text is the page's content.
_ARTICLE_SHARE = 0.8
# The densest container must hold this share of the body's text, else the whole body is kept.
_DENSEST_SHARE = 0.5


def text_length(el: lxml.etree._Element) -> int:
    """The length of an element's text, whitespace collapsed (counted in libxml2)."""
    return int(_TEXT_LENGTH(el))


def boilerplate(root: lxml.etree._Element) -> list[lxml.etree._Element]:
    """The elements of a page that are never policy text, outermost first."""
    found = list(_BOILERPLATE(root))
    for el in _MARKED(root):
        assert isinstance(el, lxml.etree._Element)
        marks = f"{el.get('id', '')} {el.get('class', '')}".lower()
        if (any(w in marks for w in _BANNER_WORDS) and text_length(el) <= _MAX_BANNER_CHARS
                and not _HAS_SECTION_HEADING(el)):
            found.append(el)
    return _outermost(found)


def _outermost(elements: list[lxml.etree._Element]) -> list[lxml.etree._Element]:
    """The elements not inside another one of them (each dropped once, with what it holds)."""
    ids = {id(e) for e in elements}
    seen: set[int] = set()
    out = []
    for el in elements:
        if id(el) in seen or any(id(a) in ids for a in el.iterancestors()):
            continue
        seen.add(id(el))
        out.append(el)
    return out


def main_content(root: lxml.etree._Element) -> lxml.etree._Element:
    """The element holding the page's main content (boilerplate already dropped)."""
    body = root.find("body")
    page = body if body is not None else root
    mains = [m for m in _MAINS(root) if isinstance(m, lxml.etree._Element) and text_length(m)]
    if mains:
        return _narrowed(max(mains, key=text_length))
    articles = [a for a in _ARTICLES(page) if isinstance(a, lxml.etree._Element)]
    if len(articles) == 1 and text_length(articles[0]):
        return articles[0]
    return _densest(page)


def _narrowed(main: lxml.etree._Element) -> lxml.etree._Element:
    """The one article of main that holds nearly all its text (a page title above it is left out), else main."""
    articles = [a for a in _ARTICLES(main) if isinstance(a, lxml.etree._Element)]
    outer = _outermost(articles)
    if len(outer) == 1 and text_length(outer[0]) >= _ARTICLE_SHARE * text_length(main):
        return outer[0]
    return main


def _own_text(el: lxml.etree._Element) -> int:
    """How much text an element's own block children (paragraphs, lists, headings, tables) hold."""
    return sum(text_length(c) for c in el if isinstance(c.tag, str) and c.tag.lower() in _OWN_BLOCKS)


def _densest(page: lxml.etree._Element) -> lxml.etree._Element:
    """The container whose own paragraphs hold the most text, when it holds most of the page; else the page."""
    best, score = page, _own_text(page)
    for el in _CONTAINERS(page):
        assert isinstance(el, lxml.etree._Element)
        own = _own_text(el)
        if own > score:
            best, score = el, own
    if best is page or text_length(best) < _DENSEST_SHARE * text_length(page):
        return page
    return best
