"""web sessions kept server-side (revocable) and login attempts counted in the database

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02 06:00:00

Sessions used to live only in the signed cookie, so logging out could not end a copied cookie.
Now the cookie holds a random id whose SHA-256 is a web_session row; logout, a password change
and disabling the user delete rows. Cookies issued before this revision name no row: their users
log in once more. login_attempt replaces the per-process, in-memory login limiter.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tracker.store.db

revision: str = '0010'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'web_session',
        sa.Column('id_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('csrf', sa.String(length=64), nullable=False),
        sa.Column('created_at', tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id_hash'),
    )
    op.create_index('ix_web_session_user_id', 'web_session', ['user_id'])
    op.create_index('ix_web_session_expires_at', 'web_session', ['expires_at'])
    op.create_table(
        'login_attempt',
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('window_start', tracker.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('address', 'email'),
    )
    op.create_index('ix_login_attempt_window_start', 'login_attempt', ['window_start'])


def downgrade() -> None:
    op.drop_index('ix_login_attempt_window_start', table_name='login_attempt')
    op.drop_table('login_attempt')
    op.drop_index('ix_web_session_expires_at', table_name='web_session')
    op.drop_index('ix_web_session_user_id', table_name='web_session')
    op.drop_table('web_session')
