"""search_pending: sources whose newest version the search index has not taken in yet (the crawl queues
them; tracker.store.search.index_pending indexes them after a crawl and before a search)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 01:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0022'
down_revision: str | Sequence[str] | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Empty at first: until now every version was indexed in the transaction that recorded it.
    op.create_table(
        'search_pending',
        sa.Column('source_id', sa.String(length=120), primary_key=True),
        sa.Column('version_id', sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    # What is still queued is indexed first, so that going back leaves the index complete.
    bind = op.get_bind()
    from sqlmodel import Session

    from tracker.store.search import index_pending

    with Session(bind=bind) as session:
        index_pending(session)
    op.drop_table('search_pending')
