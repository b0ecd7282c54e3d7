"""People who use the web UI, their roles and sessions, login attempts, and the generated signing key."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tracker.store.db import UTCDateTime, utcnow


class User(SQLModel, table=True):
    """A web UI user: an email address, an argon2 password hash and a role (viewer, editor, admin)."""

    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_column=sa.Column(sa.String(320), nullable=False, unique=True))
    password_hash: str
    role: str = Field(default="viewer", max_length=20)
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))


class WebSecret(SQLModel, table=True):
    """A secret the tracker generated for itself (the session signing key when none is configured)."""

    __tablename__ = "web_secret"

    name: str = Field(primary_key=True, max_length=60)
    value: str
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))


class WebSession(SQLModel, table=True):
    """One login: the signed cookie holds a random id, the database keeps only its SHA-256.

    Deleting the row ends the session everywhere (logout, password change, disabling the user);
    a copied cookie is worthless from then on. Someone reading the table cannot log in with it.
    """

    __tablename__ = "web_session"

    id_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    csrf: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))


class LoginAttempt(SQLModel, table=True):
    """Failed-or-pending logins of one client address and email in the current window.

    Counted in the database, so every server process on one database shares the limit, and
    rows whose window has passed are deleted, so the table holds only the current window's keys.
    """

    __tablename__ = "login_attempt"

    address: str = Field(primary_key=True, max_length=64)
    email: str = Field(primary_key=True, max_length=320)
    attempts: int = 0
    window_start: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))
