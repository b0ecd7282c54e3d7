"""People who use the web UI, with their roles, and the web UI's generated signing key."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tracker.db import UTCDateTime, utcnow


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
