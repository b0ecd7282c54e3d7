"""full-text search: search_doc rows for changes and sources' current text, FTS5 or tsvector + GIN

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 07:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tracker.store.db
from tracker.store.search import MAX_BODY_CHARS, change_text, version_text

revision: str = '0018'
down_revision: str | Sequence[str] | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_FTS = [
    "CREATE VIRTUAL TABLE search_fts USING fts5(title, body, content='search_doc', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER search_doc_ai AFTER INSERT ON search_doc BEGIN "
    "INSERT INTO search_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
    "CREATE TRIGGER search_doc_ad AFTER DELETE ON search_doc BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body); END",
    "CREATE TRIGGER search_doc_au AFTER UPDATE ON search_doc BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body); "
    "INSERT INTO search_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END",
]
_POSTGRES_FTS = [
    "ALTER TABLE search_doc ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
    "(setweight(to_tsvector('english', title), 'A') || to_tsvector('english', left(body, 1000000))) STORED",
    "CREATE INDEX ix_search_doc_tsv ON search_doc USING gin (tsv)",
]


def upgrade() -> None:
    op.create_table(
        'search_doc',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('ref', sa.String(length=120), nullable=False),
        sa.Column('source_id', sa.String(length=120), nullable=False),
        sa.Column('at', tracker.store.db.UTCDateTime(), nullable=False),
        sa.Column('title', sa.String(), nullable=False),
        sa.Column('body', sa.String(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('kind', 'ref', name='uq_search_doc_kind_ref'),
    )
    op.create_index('ix_search_doc_source_id', 'search_doc', ['source_id'])
    op.create_index('ix_search_doc_at', 'search_doc', ['at'])
    for statement in (_SQLITE_FTS if op.get_bind().dialect.name == 'sqlite' else _POSTGRES_FTS):
        op.execute(statement)
    _backfill()


def _backfill() -> None:
    """Index every change, and each source's newest version, as the crawl would have."""
    import re

    bind = op.get_bind()
    control = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
    doc = sa.table('search_doc', sa.column('kind'), sa.column('ref'), sa.column('source_id'),
                   sa.column('at', tracker.store.db.UTCDateTime()), sa.column('title'), sa.column('body'))
    version = sa.table('version', sa.column('id'), sa.column('source_id'),
                       sa.column('created_at', tracker.store.db.UTCDateTime()), sa.column('blocks', sa.JSON()))
    change = sa.table('change', sa.column('id'), sa.column('source_id'),
                      sa.column('detected_at', tracker.store.db.UTCDateTime()), sa.column('sections', sa.JSON()),
                      sa.column('diff', sa.JSON()))

    def clean(text: str) -> str:
        return control.sub(" ", text)[:MAX_BODY_CHARS]

    newest = sa.select(version.c.source_id, sa.func.max(version.c.id).label('id')).group_by(version.c.source_id)
    for row in bind.execute(newest).all():
        v = bind.execute(sa.select(version).where(version.c.id == row.id)).one()
        bind.execute(doc.insert().values(kind='source', ref=v.source_id, source_id=v.source_id, at=v.created_at,
                                         title=v.source_id, body=clean(version_text(v.blocks or {}))))
    for c in bind.execute(sa.select(change).order_by(change.c.id)).all():
        bind.execute(doc.insert().values(kind='change', ref=str(c.id), source_id=c.source_id, at=c.detected_at,
                                         title=clean("; ".join(c.sections or [])), body=clean(change_text(c.diff or {}))))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for name in ('search_doc_au', 'search_doc_ad', 'search_doc_ai'):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_index('ix_search_doc_at', table_name='search_doc')
    op.drop_index('ix_search_doc_source_id', table_name='search_doc')
    op.drop_table('search_doc')
