"""Web UI users: roles, argon2 password hashes, audited additions and role changes, sessions.

A session is a row keyed by the SHA-256 of a random id that only the user's (signed) cookie
holds, so the server can end it: logout deletes the row, a password change or disabling the
user deletes all of theirs, and every request looks the row up.

Like every service here, functions take the caller's session and never commit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from tracker.audit.trail import SYSTEM, append_event
from tracker.store.db import utcnow
from tracker.store.models import User, WebSecret, WebSession

ROLES = ("viewer", "editor", "admin")
_RANK = {role: n for n, role in enumerate(ROLES)}
MIN_PASSWORD = 8
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SESSION_KEY_NAME = "session_signing_key"


class UserError(ValueError):
    """A user action was refused; the message says what is wrong and what to do."""


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Verified against when the email is unknown, so a wrong email costs as long as a wrong password.
    return _hasher().hash(secrets.token_urlsafe(16))


def normalise_email(email: str) -> str:
    """An email address as stored: trimmed and lower-cased."""
    return (email or "").strip().lower()


def check_role(role: str) -> str:
    """The role if it is one of viewer, editor, admin; UserError otherwise."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return role


def role_allows(role: str, needed: str) -> bool:
    """True when `role` is at least `needed` (viewer < editor < admin)."""
    return _RANK.get(role, -1) >= _RANK[needed]


def hash_password(password: str) -> str:
    """An argon2id hash of the password (at least MIN_PASSWORD characters)."""
    if len(password or "") < MIN_PASSWORD:
        raise UserError(f"the password must be at least {MIN_PASSWORD} characters long")
    return _hasher().hash(password)


def get_user(*, session: Session, email: str) -> User | None:
    """The user with this email address, if any."""
    return session.exec(select(User).where(User.email == normalise_email(email))).first()


def list_users(*, session: Session) -> list[User]:
    """Every user, by email."""
    return list(session.exec(select(User).order_by(col(User.email))).all())


def add_user(*, session: Session, email: str, password: str, role: str, by: str = SYSTEM) -> User:
    """Create a user (audited as user.added; the hash never enters the audit trail)."""
    email = normalise_email(email)
    if not _EMAIL.match(email):
        raise UserError(f"{email!r} is not an email address")
    check_role(role)
    if get_user(session=session, email=email) is not None:
        raise UserError(f"user {email} already exists; change the role with `tracker users role {email} ROLE`")
    user = User(email=email, password_hash=hash_password(password), role=role)
    session.add(user)
    session.flush()
    append_event(
        session=session,
        actor=by,
        action="user.added",
        entity_type="user",
        entity_id=email,
        after={"email": email, "role": role},
    )
    return user


def set_role(*, session: Session, email: str, role: str, by: str = SYSTEM) -> User:
    """Give a user another role (audited as user.role)."""
    check_role(role)
    user = get_user(session=session, email=email)
    if user is None:
        raise UserError(f"no user {normalise_email(email)}; add one with `tracker users add EMAIL --role ROLE`")
    if user.role == role:
        return user
    before = user.role
    user.role, user.updated_at = role, utcnow()
    session.add(user)
    session.flush()
    append_event(
        session=session,
        actor=by,
        action="user.role",
        entity_type="user",
        entity_id=user.email,
        before={"role": before},
        after={"role": role},
    )
    return user


def authenticate(*, session: Session, email: str, password: str) -> User | None:
    """The enabled user whose password this is, else None (same cost whether or not the email exists)."""
    user = get_user(session=session, email=email)
    stored = user.password_hash if user is not None and user.enabled else _dummy_hash()
    try:
        _hasher().verify(stored, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return user if user is not None and user.enabled else None


def session_signing_key(*, session: Session) -> str:
    """The generated session signing key kept in the database, created on first use."""
    row = session.get(WebSecret, SESSION_KEY_NAME)
    if row is not None:
        return row.value
    value = secrets.token_urlsafe(48)
    try:
        with session.begin_nested():
            session.add(WebSecret(name=SESSION_KEY_NAME, value=value))
    except IntegrityError:
        # Another process created it first: use theirs.
        row = session.get(WebSecret, SESSION_KEY_NAME)
        if row is None:
            raise
        return row.value
    return value


def set_password(*, session: Session, email: str, password: str, by: str = SYSTEM) -> User:
    """Give a user a new password (audited as user.password, without the hash); their sessions end."""
    user = get_user(session=session, email=email)
    if user is None:
        raise UserError(f"no user {normalise_email(email)}; add one with `tracker users add EMAIL --role ROLE`")
    user.password_hash, user.updated_at = hash_password(password), utcnow()
    session.add(user)
    session.flush()
    end_sessions(session=session, user_id=user.id or 0)
    append_event(session=session, actor=by, action="user.password", entity_type="user", entity_id=user.email)
    return user


def set_enabled(*, session: Session, email: str, enabled: bool, by: str = SYSTEM) -> User:
    """Disable a user (they can no longer log in; their sessions end) or enable them again (audited)."""
    user = get_user(session=session, email=email)
    if user is None:
        raise UserError(f"no user {normalise_email(email)}; see `tracker users list`")
    if user.enabled == enabled:
        return user
    user.enabled, user.updated_at = enabled, utcnow()
    session.add(user)
    session.flush()
    if not enabled:
        end_sessions(session=session, user_id=user.id or 0)
    append_event(
        session=session,
        actor=by,
        action="user.enabled" if enabled else "user.disabled",
        entity_type="user",
        entity_id=user.email,
        before={"enabled": not enabled},
        after={"enabled": enabled},
    )
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(*, session: Session, user: User, hours: float) -> str:
    """A new session, with a fresh CSRF token, for a user who just logged in: the id for the cookie.

    Expired sessions are deleted here, so the table holds only live ones.
    """
    now = utcnow()
    session.exec(delete(WebSession).where(col(WebSession.expires_at) <= now))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    session.add(WebSession(id_hash=_token_hash(token), user_id=user.id or 0, csrf=csrf, created_at=now,
                           expires_at=now + timedelta(hours=hours)))
    session.flush()
    return token


def session_user(*, session: Session, token: str) -> tuple[User, str] | None:
    """The enabled user of a live session and its CSRF token, or None (ended, expired or unknown)."""
    row = session.exec(
        select(User, WebSession.csrf)
        .join(WebSession, col(WebSession.user_id) == col(User.id))
        .where(WebSession.id_hash == _token_hash(token), col(WebSession.expires_at) > utcnow(), col(User.enabled))
    ).first()
    return (row[0], row[1]) if row is not None else None


def end_session(*, session: Session, token: str) -> None:
    """End one session (logout): the cookie that holds it no longer logs anyone in."""
    session.exec(delete(WebSession).where(col(WebSession.id_hash) == _token_hash(token)))


def end_sessions(*, session: Session, user_id: int) -> None:
    """End every session of a user (their password changed, or they were disabled)."""
    session.exec(delete(WebSession).where(col(WebSession.user_id) == user_id))
