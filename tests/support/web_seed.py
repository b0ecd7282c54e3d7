"""A demo database for the web UI tests and screenshots: the fixture policies' real versions,
teams, SOPs watching them, impacts mapped by the real mapper, users of each role, and (on request)
a source whose scraped text is hostile."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from spiders import KINDS
from tests.support.policy_site import Document, page
from tracker.accounts import add_user
from tracker.audit.trail import append_event
from tracker.check.blocks import Block, blocks_hash, blocks_to_json
from tracker.check.diff import diff_blocks
from tracker.check.record import record_check
from tracker.check.state import Fetch
from tracker.impacts.mapping import MappingContext, map_change
from tracker.store.db import session_scope
from tracker.store.models import Change, CheckState, Impact, Sop, Source, Team, Version

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pga"
PASSWORD = "correct horse battery"
USERS = {"admin": "admin@example.com", "editor": "editor@example.com", "viewer": "viewer@example.com"}
HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


@dataclass
class Seeded:
    """Ids of what was seeded."""

    changes: dict[str, list[int]] = field(default_factory=dict)
    impacts: list[int] = field(default_factory=list)
    hostile_change: int | None = None
    hostile_impact: int | None = None


@lru_cache(maxsize=8)
def _document(slug: str) -> Document:
    # Rendering the markdown is the slow part of seeding; a Document keeps its rendered versions.
    return Document(FIXTURES / slug)


def _source(session: Session, slug: str, name: str) -> Source:
    src = Source(
        id=slug,
        name=name,
        url=f"https://policies.example.com/{slug}",
        select=["article.policy"],
        remove=[".cookie-banner", "nav"],
        schedule="6h",
        tags=["demo"],
    )
    session.add(src)
    session.flush()
    return src


def seed(session: Session, *, versions: int = 5, hostile: bool = False, now: datetime | None = None) -> Seeded:
    """Fill a migrated, empty database (the caller commits)."""
    now = now or datetime.now(UTC)
    out = Seeded()
    session.add(Team(id="trust-safety", name="Trust & Safety", members=["editor@example.com"]))
    session.add(Team(id="support", name="Customer Support", members=["viewer@example.com"]))
    session.flush()  # no ORM relationship orders teams before the SOPs that name them
    session.add(
        Sop(
            id="SOP-TS-001",
            title="Enforcement actions and strikes",
            owner="editor@example.com",
            team_id="trust-safety",
            url="https://wiki.example.com/sop/ts-001",
            review_days=3,
            watches=[{"source": "reddit-community-guidelines", "sections": ["*Enforcement*"], "keywords": []}],
        )
    )
    session.add(
        Sop(
            id="SOP-TS-007",
            title="Vote manipulation and spam reports",
            owner="ana@example.com",
            team_id="trust-safety",
            review_days=10,
            watches=[{"source": "reddit-community-guidelines", "sections": [], "keywords": ["vote", "spam"]}],
        )
    )
    session.add(
        Sop(
            id="SOP-CS-014",
            title="Privacy requests from users",
            owner="viewer@example.com",
            team_id="support",
            review_days=7,
            watches=[{"source": "x-privacy-policy", "sections": [], "keywords": []}],
        )
    )
    session.flush()
    context = MappingContext.load(session, default_review_days=5)
    for slug, name in (
        ("reddit-community-guidelines", "Reddit Community Guidelines"),
        ("x-privacy-policy", "X Privacy Policy"),
    ):
        src = _source(session, slug, name)
        doc = _document(slug)
        out.changes[slug] = []
        for v in range(versions):
            # Spread the checks over the last weeks so some impacts are overdue and some are not.
            when = now - timedelta(days=3 * (versions - 1 - v), hours=1)
            fetch = Fetch(
                source_id=slug,
                url=src.url,
                status=200,
                headers={"Content-Type": "text/html; charset=utf-8"},
                body=page(doc, v).encode(),
                fetched_at=when,
            )
            outcome = record_check(
                kinds=KINDS,
                session=session,
                source=src,
                fetch=fetch,
                on_change=lambda s, c: map_change(s, c, context=context) and None,
            )
            if outcome.change_id is not None:
                out.changes[slug].append(outcome.change_id)
    out.impacts = [i.id or 0 for i in session.exec(Impact.__table__.select()).all()]  # type: ignore[attr-defined]
    if hostile:
        _hostile(session, out, now)
    return out


def _hostile(session: Session, out: Seeded, now: datetime) -> None:
    src = Source(id="evil", name=f"Evil policy {HOSTILE}", url="javascript:alert(1)", schedule="6h")
    session.add(src)
    session.flush()
    session.add(
        CheckState(
            source_id="evil",
            last_checked_at=now,
            last_result="failed",
            last_error=f"HTTP 500: {HOSTILE}",
            error_since=now - timedelta(hours=5),
            consecutive_failures=3,
            checks=4,
        )
    )
    session.add(
        Sop(
            id="SOP-EVIL",
            title=f"Evil SOP {HOSTILE}",
            owner="editor@example.com",
            watches=[{"source": "evil", "sections": [], "keywords": []}],
        )
    )
    session.flush()
    old = [Block("heading", f"Rules {HOSTILE}", ()), Block("paragraph", "Be nice.", (f"Rules {HOSTILE}",))]
    new = [
        Block("heading", f"Rules {HOSTILE}", ()),
        Block("paragraph", f"Be nice. {HOSTILE} now", (f"Rules {HOSTILE}",)),
    ]
    versions = []
    for blocks in (old, new):
        ver = Version(
            source_id="evil",
            created_at=now,
            text_hash=blocks_hash(blocks),
            blocks=blocks_to_json(blocks),
            block_count=len(blocks),
            rules={},
            rules_hash="0" * 64,
        )
        session.add(ver)
        session.flush()
        versions.append(ver)
    diff = diff_blocks(old, new)
    change = Change(
        source_id="evil",
        from_version_id=versions[0].id or 0,
        to_version_id=versions[1].id or 0,
        detected_at=now,
        sections=diff.sections,
        added=diff.added,
        removed=diff.removed,
        modified=diff.modified,
        diff=diff.to_json(),
    )
    session.add(change)
    session.flush()
    impact = map_change(session, change, context=MappingContext.load(session, default_review_days=5))[0]
    append_event(
        session=session,
        actor="editor@example.com",
        action="impact.note",
        entity_type="impact",
        entity_id=impact.id or 0,
        after={"text": HOSTILE},
    )
    out.hostile_change, out.hostile_impact = change.id, impact.id


def add_users(session: Session) -> None:
    """One user of each role, all with PASSWORD."""
    for role, email in USERS.items():
        add_user(session=session, email=email, password=PASSWORD, role=role)


def seed_with_users(engine: Engine, **kwargs: Any) -> Seeded:
    """seed(**kwargs) and add_users in one transaction of its own: the `seeded` fixture of the web tests."""
    with session_scope(engine) as s:
        out = seed(s, **kwargs)
        add_users(s)
    return out
