"""Suggested SOPs for a change no watch matched: BM25 over each SOP's title, watches and past impacts.

A change that touched no SOP is either irrelevant or a gap in the watches; ranking the SOPs by how
close the changed words are to what each SOP is about lets an editor close the gap in one click.
Each SOP is one document: its title, its watched sections and keywords, and the changed text of
the changes it had impacts on (the vocabulary it actually reacts to, bounded per SOP). The query
is the change's inserted and deleted words and its sections. BM25 (k1 1.2, b 0.75) is written
here, as scikit-learn is not a dependency; the corpus figure is printed by
tests/integration/test_suggest.py.

Accepting opens an impact whose reason says "suggested, accepted by …"; dismissing records an
audit event, and a dismissed SOP is not suggested for that change again. Both are audited.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from tracker.audit.trail import append_event
from tracker.impacts.workflow import due_date_for
from tracker.store.models import AuditEvent, Change, Impact, Sop
from tracker.store.search import change_text

K1, B = 1.2, 0.75
TOP = 3
PAST_CHARS = 20_000  # changed text of past impacts kept per SOP
QUERY_TERMS = 300
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
STOP = frozenset("""the and for are but not you your with this that from have has was were will would can may
our out any all its their they them than then there these those which who whom what when where how also such
into onto upon about over under more most some other each only same been being does did doing per via use""".split())


def tokens(text: str) -> list[str]:
    """Lower-case words of three letters or more, without the commonest English words."""
    return [w for w in (m.lower() for m in _WORD.findall(text)) if w not in STOP]


@dataclass
class Suggestion:
    """An SOP suggested for a change: its score and the words that weighed most."""

    sop_id: str
    title: str
    score: float
    terms: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"sop_id": self.sop_id, "title": self.title, "score": round(self.score, 3), "terms": self.terms}


def _watch_text(watches: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for w in watches:
        parts += [str(s).replace("*", " ") for s in w.get("sections") or []]
        parts += [str(k) for k in w.get("keywords") or []]
    return " ".join(parts)


def sop_documents(session: Session, *, exclude_change: int | None = None) -> dict[str, tuple[str, list[str]]]:
    """Each enabled SOP's title and tokens (title, watches, and the changes of its past impacts)."""
    sops = list(session.exec(select(Sop).where(col(Sop.enabled).is_(True)).order_by(col(Sop.id))).all())
    past: dict[str, list[str]] = {s.id: [] for s in sops}
    q = select(Impact.sop_id, Change.diff).join(Change, col(Change.id) == col(Impact.change_id)).where(
        col(Impact.status) != "dismissed")
    if exclude_change is not None:
        q = q.where(col(Impact.change_id) != exclude_change)
    for sop_id, diff in session.exec(q).all():
        if sop_id in past and sum(map(len, past[sop_id])) < PAST_CHARS:
            past[sop_id].append(change_text(diff)[:PAST_CHARS])
    return {s.id: (s.title, tokens(f"{s.title} {s.title} {_watch_text(s.watches)} {' '.join(past[s.id])}"))
            for s in sops}


def rank(query: list[str], docs: dict[str, tuple[str, list[str]]], *, k: int = TOP) -> list[Suggestion]:
    """The k documents with the highest BM25 score for the query's terms (none scoring 0)."""
    if not docs or not query:
        return []
    counts = {d: Counter(toks) for d, (_, toks) in docs.items()}
    avg = sum(len(t) for _, t in docs.values()) / len(docs) or 1.0
    df = Counter(term for c in counts.values() for term in c)
    n = len(docs)
    terms = [t for t, _ in Counter(query).most_common(QUERY_TERMS)]
    out: list[Suggestion] = []
    for d, c in counts.items():
        length = len(docs[d][1])
        weights: dict[str, float] = {}
        for t in terms:
            f = c.get(t, 0)
            if f:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                weights[t] = idf * f * (K1 + 1) / (f + K1 * (1 - B + B * length / avg))
        score = sum(weights.values())
        if score > 0:
            best = sorted(weights, key=lambda t: -weights[t])[:5]
            out.append(Suggestion(d, docs[d][0], score, best))
    out.sort(key=lambda s: (-s.score, s.sop_id))
    return out[:k]


def change_query(change: Change) -> list[str]:
    """The tokens a change is searched by: its sections and its inserted and deleted words."""
    return tokens(" ".join(change.sections) + " " + change_text(change.diff))


def dismissed_for(session: Session, change_id: int) -> set[str]:
    """SOPs whose suggestion for this change was dismissed (from the audit trail)."""
    events = session.exec(select(AuditEvent).where(AuditEvent.entity_type == "change",
                                                   AuditEvent.entity_id == str(change_id),
                                                   AuditEvent.action == "suggestion.dismissed")).all()
    return {str((e.after or {}).get("sop_id")) for e in events}


def suggest(session: Session, change: Change, *, k: int = TOP) -> list[Suggestion]:
    """The top SOPs for a change with no impact (technical changes and mapped ones get none)."""
    if change.technical or change.id is None:
        return []
    if session.exec(select(Impact.id).where(Impact.change_id == change.id)).first() is not None:
        return []
    gone = dismissed_for(session, change.id)
    docs = {d: v for d, v in sop_documents(session).items() if d not in gone}
    return rank(change_query(change), docs, k=k)


class SuggestionError(ValueError):
    """A suggestion that cannot be accepted or dismissed (unknown SOP, already mapped)."""


def accept(*, session: Session, change: Change, sop_id: str, by: str) -> Impact:
    """Open an impact of the change on the SOP, with the reason "suggested, accepted by …" (audited)."""
    sop = session.get(Sop, sop_id)
    if sop is None:
        raise SuggestionError(f"no SOP {sop_id!r}")
    if session.exec(select(Impact.id).where(Impact.change_id == change.id, Impact.sop_id == sop_id)).first():
        raise SuggestionError(f"change #{change.id} already has an impact on {sop_id}")
    from tracker.config import get_settings

    settings = get_settings()
    days = sop.review_days if sop.review_days is not None else settings.default_review_days
    impact = Impact(change_id=change.id or 0, sop_id=sop_id, source_id=change.source_id, status="open",
                    reasons=[{"suggested": f"suggested, accepted by {by}"}], assignee=sop.owner,
                    due_date=due_date_for(detected_at=change.detected_at, review_days=days,
                                          effective_on=change.effective_on, lead_days=settings.effective_lead_days))
    session.add(impact)
    session.flush()
    append_event(session=session, actor=by, action="impact.created", entity_type="impact", entity_id=impact.id or 0,
                 after={"change_id": change.id, "sop_id": sop_id, "source_id": change.source_id,
                        "status": impact.status, "reasons": impact.reasons, "assignee": impact.assignee,
                        "due_date": impact.due_date})
    return impact


def dismiss(*, session: Session, change: Change, sop_id: str, by: str) -> None:
    """Record that the SOP is not relevant to the change: it is not suggested for it again."""
    if session.get(Sop, sop_id) is None:
        raise SuggestionError(f"no SOP {sop_id!r}")
    append_event(session=session, actor=by, action="suggestion.dismissed", entity_type="change",
                 entity_id=change.id or 0, after={"sop_id": sop_id})
