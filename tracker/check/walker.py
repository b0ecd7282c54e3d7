"""The Python walk: an element tree to blocks with heading paths, one element at a time.

The XSLT pass (tracker.check.xslt) makes the same blocks faster; this walk is what it is held to,
and it takes the pages that pass cannot: text holding its marker characters, trees nested deeper
than libxslt's C recursion allows. Iterative, with its own stack: hostile pages nest thousands deep.
"""

from __future__ import annotations

import lxml.etree

from tracker.check.blocks import Block, OverLimit, normalise_text
from tracker.check.limits import DEFAULT_LIMITS, Limits, blocks_over, clip_heading

HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Elements that end the running paragraph; everything else is inline text.
BLOCK_TAGS = frozenset(
    "address article aside blockquote body caption center dd details dialog dir div dl dt fieldset "
    "figcaption figure footer form header hgroup hr html li main menu nav ol p pre section summary "
    "table tbody td tfoot th thead tr ul br".split()
)
KIND_OF = {"li": "list_item", "dt": "term", "dd": "definition", "pre": "preformatted",
           "blockquote": "quote", "caption": "caption", "figcaption": "caption"}


class Walker:
    """Turns an element tree into blocks, tracking the heading path."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.blocks: list[Block] = []
        self.headings: list[tuple[int, str]] = []
        self.buffer: list[str] = []
        self.kind_stack: list[str] = ["paragraph"]
        self._path: tuple[str, ...] = ()

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self.headings)

    def flush(self) -> None:
        buffer = self.buffer
        if buffer:
            text = "".join(buffer)
            buffer.clear()
            if not text.isspace():  # whitespace between blocks normalises to nothing
                text = normalise_text(text)
                if text:
                    self._add(Block(self.kind_stack[-1], text, self._path))

    def _add(self, block: Block) -> None:
        """Keep a block, or raise OverLimit when it is one more than the limit allows."""
        if len(self.blocks) >= self.limits.max_blocks:
            raise OverLimit(blocks_over(self.limits))
        self.blocks.append(block)

    # The walk is the hot path of every fetch that is extracted: one loop, local names, the
    # heading path kept as a tuple (rebuilt only when a heading is seen), flush only when the
    # buffer holds text.
    def walk(self, root: lxml.etree._Element) -> None:
        """Turn root's subtree into blocks (iteratively: hostile pages nest thousands deep)."""
        self._path = self.path
        if not self._open(root):
            return
        buffer = self.buffer
        kind_stack = self.kind_stack
        block_tags, kind_of = BLOCK_TAGS, KIND_OF
        stack = [(root, iter(root))]
        push, pop = stack.append, stack.pop
        while stack:
            el, children = stack[-1]
            for child in children:
                # Open the child; headings and table rows are taken whole, never entered.
                tag = child.tag
                tag = tag.lower() if isinstance(tag, str) else ""
                if tag in block_tags:
                    if tag == "tr":
                        self._row(child)
                    else:
                        if buffer:
                            self.flush()
                        if tag in kind_of:
                            kind_stack.append(kind_of[tag])
                        text = child.text
                        if text:
                            buffer.append(text)
                        push((child, iter(child)))
                        break
                elif tag in HEADINGS:
                    self._heading(child, tag)
                else:
                    text = child.text
                    if text:
                        buffer.append(text)
                    push((child, iter(child)))
                    break
                tail = child.tail
                if tail:
                    buffer.append(tail)
            else:
                pop()
                tag = el.tag
                tag = tag.lower() if isinstance(tag, str) else ""
                if tag in block_tags:
                    if buffer:
                        self.flush()
                    if tag in kind_of:
                        kind_stack.pop()
                elif tag == "img":
                    alt = el.get("alt")
                    if alt:
                        buffer.append(" " + alt + " ")
                if stack:  # the tail belongs to the parent, still open
                    tail = el.tail
                    if tail:
                        buffer.append(tail)

    def _open(self, el: lxml.etree._Element) -> bool:
        """Start an element; False when it was taken whole (heading, table row)."""
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if tag in HEADINGS:
            self._heading(el, tag)
            return False
        if tag == "tr":
            self._row(el)
            return False
        if tag in BLOCK_TAGS:
            self.flush()
            if tag in KIND_OF:
                self.kind_stack.append(KIND_OF[tag])
        if el.text:
            self.buffer.append(el.text)
        return True

    def _heading(self, el: lxml.etree._Element, tag: str) -> None:
        self.flush()
        text = normalise_text(_text_content(el))
        if text:
            level = HEADINGS[tag]
            while self.headings and self.headings[-1][0] >= level:
                self.headings.pop()
            self.headings.append((level, clip_heading(text)))
            self._path = self.path
            self._add(Block("heading", text, self._path))

    def _row(self, el: lxml.etree._Element) -> None:
        self.flush()
        cells = [normalise_text(_text_content(c)) for c in el if isinstance(c.tag, str)]
        if any(cells):
            self._add(Block("table_row", " | ".join(cells), self._path))


# What lxml.html's HtmlElement.text_content() evaluates: every text node inside the element.
_text_content = lxml.etree.XPath("string()")
