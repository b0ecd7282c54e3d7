"""Per-user feed tokens: a feed reader cannot log in, so the feed URL carries a token.

Only the SHA-256 of a token is stored; the token itself is shown once, when it is created. A
token reads as its user: it stops working when revoked, when the user is disabled, or removed.
Creating and revoking are audited (by token id, never the token).
"""

from __future__ import annotations

import hashlib
import secrets

from sqlmodel import Session, col, select

from tracker.audit.trail import append_event
from tracker.store.db import utcnow
from tracker.store.models import FeedToken, User


class FeedTokenError(ValueError):
    """A token that cannot be revoked (not this user's, or unknown)."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(*, session: Session, user: User) -> str:
    """A new token for the user (returned once, never stored in clear); audited as feed_token.created."""
    token = secrets.token_urlsafe(32)
    row = FeedToken(user_id=user.id or 0, token_hash=_hash(token))
    session.add(row)
    session.flush()
    append_event(session=session, actor=user.email, action="feed_token.created", entity_type="feed_token",
                 entity_id=row.id or 0, after={"user": user.email})
    return token


def revoke_token(*, session: Session, user: User, token_id: int) -> None:
    """Revoke one of the user's tokens; audited as feed_token.revoked."""
    row = session.get(FeedToken, token_id)
    if row is None or row.user_id != user.id:
        raise FeedTokenError(f"no feed token #{token_id} of {user.email}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        append_event(session=session, actor=user.email, action="feed_token.revoked", entity_type="feed_token",
                     entity_id=token_id, after={"user": user.email})


def tokens_of(*, session: Session, user_id: int) -> list[FeedToken]:
    """A user's tokens, newest first."""
    return list(session.exec(select(FeedToken).where(FeedToken.user_id == user_id)
                             .order_by(col(FeedToken.id).desc())).all())


def user_for_token(*, session: Session, token: str | None) -> User | None:
    """The enabled user a live token belongs to, else None."""
    if not token or len(token) > 200:
        return None
    row = session.exec(select(FeedToken).where(FeedToken.token_hash == _hash(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    user = session.get(User, row.user_id)
    return user if user is not None and user.enabled else None
