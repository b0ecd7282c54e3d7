"""versions store each heading path once, and headings enter paths clipped to 300 characters

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 06:10:00

Every block used to carry its full heading path: a 54 KB <h1> above 5,000 paragraphs made 270 MB
of JSON per version. Version.blocks becomes {"paths": [[parent, heading], ...], "blocks": [[kind,
text, path], ...]} (a path is an index into "paths", -1 for none; a path entry names its parent
entry, so a path of six levels costs its six headings once). Extraction now clips a heading to
tracker.check.limits.MAX_HEADING_CHARS where it enters a path: stored paths are clipped the same
way, and a version whose paths changed gets the text hash of its clipped blocks, the hash a fresh
extraction of the same page gives, so the next check finds no change. Versions without such long
headings keep their hash. The downgrade writes the list form back (the clipped paths stay clipped).
"""

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The limit as it was when this migration was written (the extractor's own constant may move on).
MAX_HEADING_CHARS = 300

_version = sa.table("version", sa.column("id", sa.Integer), sa.column("blocks", sa.JSON),
                    sa.column("text_hash", sa.String))


def _clip(text: str) -> str:
    if len(text) <= MAX_HEADING_CHARS:
        return text
    return text[: MAX_HEADING_CHARS - 1].rstrip(" ") + "\u2026"


def _rows() -> Iterator[tuple[int, Any]]:
    """Every version, one at a time (a version's blocks may be large: never all of them at once)."""
    bind = op.get_bind()
    ids = [r[0] for r in bind.execute(sa.select(_version.c.id).order_by(_version.c.id))]
    for vid in ids:
        yield vid, bind.execute(sa.select(_version.c.blocks).where(_version.c.id == vid)).scalar()


def _to_table_form(blocks: list[dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """The list form as the path-table form, and whether any heading was clipped."""
    table: list[list[Any]] = []
    ids: dict[tuple[str, ...], int] = {(): -1}
    clipped = False

    def path_id(path: tuple[str, ...]) -> int:
        found = ids.get(path)
        if found is None:
            parent = path_id(path[:-1])
            found = ids[path] = len(table)
            table.append([parent, path[-1]])
        return found

    out = []
    for b in blocks:
        raw = tuple(b.get("path", ()))
        path = tuple(_clip(h) for h in raw)
        clipped = clipped or path != raw
        out.append([b["kind"], b["text"], path_id(path)])
    return {"paths": table, "blocks": out}, clipped


def upgrade() -> None:
    from tracker.check.blocks import blocks_from_json, blocks_hash

    bind = op.get_bind()
    for vid, blocks in _rows():
        if isinstance(blocks, dict):
            continue  # already in the table form
        stored, clipped = _to_table_form(blocks or [])
        values: dict[str, Any] = {"blocks": stored}
        if clipped:
            values["text_hash"] = blocks_hash(blocks_from_json(stored))
        bind.execute(sa.update(_version).where(_version.c.id == vid).values(**values))


def downgrade() -> None:
    bind = op.get_bind()
    for vid, blocks in _rows():
        if not isinstance(blocks, dict):
            continue
        paths: list[list[str]] = []
        for parent, heading in blocks.get("paths", ()):
            paths.append([*paths[parent], heading] if parent >= 0 else [heading])
        listed = [{"kind": k, "text": t, "path": paths[p] if p >= 0 else []} for k, t, p in blocks.get("blocks", ())]
        bind.execute(sa.update(_version).where(_version.c.id == vid).values(blocks=listed))
