"""The PM workflow on impacts: every legal and illegal transition, assignment, due dates, notes, audit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from tests.integration.test_mapping import REDDIT, add_sop, record_versions
from tracker.audit.trail import verify
from tracker.impacts.mapping import map_change
from tracker.impacts.workflow import (
    FINAL,
    STATUSES,
    TRANSITIONS,
    WorkflowError,
    add_note,
    due_date_for,
    is_overdue,
    mark_change,
    mark_impact,
)
from tracker.store.models import AuditEvent, Change, Impact, ImpactNote

PM = "pm@example.com"
# The shortest legal way to reach each status from open (with the note dismissal needs).
PATHS: dict[str, list[str]] = {
    "open": [],
    "needs_update": ["needs_update"],
    "in_progress": ["needs_update", "in_progress"],
    "updated": ["needs_update", "in_progress", "updated"],
    "dismissed": ["dismissed"],
}
LEGAL = [(a, b) for a in STATUSES for b in TRANSITIONS[a]]
ILLEGAL = [(a, b) for a in STATUSES for b in STATUSES if b not in TRANSITIONS[a]]


@pytest.fixture
def change(session: Session) -> Change:
    """A real change: Reddit v2 -> v3 (Enforcement)."""
    c = record_versions(session, REDDIT, [2, 3])[0]
    session.commit()
    return c


@pytest.fixture
def impacts(session: Session, change: Change) -> list[Impact]:
    """Two open impacts of one change: SOP-A (owner alice, 3 review days) and SOP-B (owner bob, default)."""
    add_sop(session, "SOP-A", [{"source": REDDIT, "sections": ["Enforcement"]}], review_days=3)
    add_sop(session, "SOP-B", [{"source": REDDIT, "keywords": ["suspension"]}], owner="bob@example.com")
    created = map_change(session, change)
    session.commit()
    assert [i.sop_id for i in created] == ["SOP-A", "SOP-B"]
    return created


def walk(session: Session, impact_id: int, statuses: list[str]) -> Impact:
    impact = session.get(Impact, impact_id)
    assert impact is not None
    for status in statuses:
        impact = mark_impact(session=session, impact_id=impact_id, by=PM, status=status,
                             note="not relevant to us" if status == "dismissed" else None)
    return impact


def events(session: Session, action: str | None = None) -> list[AuditEvent]:
    q = select(AuditEvent).order_by(col(AuditEvent.seq))
    if action:
        q = q.where(AuditEvent.action == action)
    return list(session.exec(q).all())


def test_transition_table_is_as_specified() -> None:
    assert set(LEGAL) == {("open", "needs_update"), ("needs_update", "in_progress"), ("in_progress", "updated"),
                          ("open", "dismissed"), ("needs_update", "dismissed"), ("in_progress", "dismissed"),
                          ("updated", "open"), ("dismissed", "open")}
    assert set(PATHS) == set(STATUSES)


@pytest.mark.parametrize("current,target", LEGAL)
def test_legal_transition(session: Session, impacts: list[Impact], current: str, target: str) -> None:
    impact_id = impacts[0].id or 0
    walk(session, impact_id, PATHS[current])
    before = len(events(session))
    note = "duplicate of SOP-B's impact" if target == "dismissed" else None
    impact = mark_impact(session=session, impact_id=impact_id, by=PM, status=target, note=note)
    session.commit()
    assert impact.status == target
    if target in FINAL:
        assert impact.resolved_by == PM and impact.resolved_at is not None and impact.decision_note == note
    else:
        assert impact.resolved_by is None and impact.resolved_at is None and impact.decision_note is None
    new = events(session)[before:]
    assert [e.action for e in new] == ["impact.status"] + (["impact.note"] if note else [])
    assert new[0].actor == PM and new[0].entity_id == str(impact_id)
    assert new[0].before is not None and new[0].before["status"] == current
    assert new[0].after is not None and new[0].after["status"] == target
    assert verify(session).ok


@pytest.mark.parametrize("current,target", ILLEGAL)
def test_illegal_transition_is_refused(session: Session, impacts: list[Impact], current: str, target: str) -> None:
    impact_id = impacts[0].id or 0
    walk(session, impact_id, PATHS[current])
    session.commit()
    before = len(events(session))
    with pytest.raises(WorkflowError) as err:
        mark_impact(session=session, impact_id=impact_id, by=PM, status=target, note="because")
    message = str(err.value)
    assert f"impact {impact_id}" in message and current in message
    for allowed in TRANSITIONS[current]:
        assert allowed in message
    session.rollback()
    assert session.get(Impact, impact_id).status == current  # type: ignore[union-attr]
    assert len(events(session)) == before


def test_unknown_status_and_missing_things_are_refused(session: Session, impacts: list[Impact]) -> None:
    iid = impacts[0].id or 0
    with pytest.raises(WorkflowError, match="unknown status 'done'; statuses are open, needs_update"):
        mark_impact(session=session, impact_id=iid, by=PM, status="done")
    with pytest.raises(WorkflowError, match="dismissing needs a reason"):
        mark_impact(session=session, impact_id=iid, by=PM, status="dismissed")
    with pytest.raises(WorkflowError, match="dismissing needs a reason"):
        mark_impact(session=session, impact_id=iid, by=PM, status="dismissed", note="   ")
    with pytest.raises(WorkflowError, match="no impact 9999"):
        mark_impact(session=session, impact_id=9999, by=PM, status="needs_update")
    with pytest.raises(WorkflowError, match="nothing to change"):
        mark_impact(session=session, impact_id=iid, by=PM)
    with pytest.raises(WorkflowError, match="must be an email address"):
        mark_impact(session=session, impact_id=iid, by="someone", status="needs_update")
    with pytest.raises(WorkflowError, match="assignee must be an email"):
        mark_impact(session=session, impact_id=iid, by=PM, assignee="bob")


def test_reopening_clears_the_decision(session: Session, impacts: list[Impact]) -> None:
    iid = impacts[0].id or 0
    impact = mark_impact(session=session, impact_id=iid, by=PM, status="dismissed", note="covered by SOP-B")
    assert (impact.status, impact.decision_note, impact.resolved_by) == ("dismissed", "covered by SOP-B", PM)
    impact = mark_impact(session=session, impact_id=iid, by="lead@example.com", status="open", note="it is not")
    session.commit()
    assert (impact.status, impact.decision_note, impact.resolved_by, impact.resolved_at) == ("open", None, None, None)
    reopen = events(session, "impact.status")[-1]
    assert reopen.actor == "lead@example.com"
    assert reopen.before == {"status": "dismissed", "resolved_by": PM, "decision_note": "covered by SOP-B"}
    assert reopen.after == {"status": "open", "note": "it is not"}
    notes = session.exec(select(ImpactNote).where(ImpactNote.impact_id == iid).order_by(col(ImpactNote.id))).all()
    assert [(n.author, n.text) for n in notes] == [(PM, "covered by SOP-B"), ("lead@example.com", "it is not")]


def test_assignee_and_due_date(session: Session, impacts: list[Impact], change: Change) -> None:
    a, b = impacts
    assert a.assignee == "alice@example.com" and b.assignee == "bob@example.com"
    assert a.due_date == due_date_for(detected_at=change.detected_at, review_days=3)
    assert b.due_date == due_date_for(detected_at=change.detected_at, review_days=5)  # settings default
    new_due, old_due = date(2030, 1, 31), a.due_date
    assert old_due is not None
    impact = mark_impact(session=session, impact_id=a.id or 0, by=PM, assignee="carol@example.com", due=new_due,
                         status="needs_update", note="carol knows this SOP")
    session.commit()
    assert (impact.assignee, impact.due_date, impact.status) == ("carol@example.com", new_due, "needs_update")
    new = events(session)[-4:]
    assert [e.action for e in new] == ["impact.status", "impact.assigned", "impact.due_date", "impact.note"]
    assert new[1].before == {"assignee": "alice@example.com"} and new[1].after == {"assignee": "carol@example.com"}
    assert new[2].before == {"due_date": old_due.isoformat()} and new[2].after == {"due_date": "2030-01-31"}
    assert new[3].after is not None and new[3].after["text"] == "carol knows this SOP"
    # Setting the same values again changes nothing and records nothing.
    count = len(events(session))
    mark_impact(session=session, impact_id=a.id or 0, by=PM, assignee="carol@example.com", due=new_due)
    assert len(events(session)) == count
    # '' unassigns.
    assert mark_impact(session=session, impact_id=a.id or 0, by=PM, assignee="").assignee is None
    assert events(session)[-1].after == {"assignee": None}
    assert verify(session).ok


def test_due_dates_and_overdue(session: Session, impacts: list[Impact], change: Change) -> None:
    from datetime import UTC, datetime

    assert due_date_for(detected_at=datetime(2026, 11, 2, 23, 59, tzinfo=UTC), review_days=5) == date(2026, 11, 7)
    assert due_date_for(detected_at=datetime(2026, 12, 30, 1, 0, tzinfo=UTC), review_days=3) == date(2027, 1, 2)
    impact = impacts[0]
    assert impact.due_date is not None
    assert not is_overdue(impact, today=impact.due_date)  # due today is not overdue yet
    assert is_overdue(impact, today=impact.due_date + timedelta(days=1))
    walk(session, impact.id or 0, ["needs_update", "in_progress"])
    assert is_overdue(impact, today=impact.due_date + timedelta(days=1))
    walk(session, impact.id or 0, ["updated"])
    assert not is_overdue(impact, today=impact.due_date + timedelta(days=1))  # decided impacts are never overdue
    assert not is_overdue(impacts[1].model_copy(update={"due_date": None}), today=date(2100, 1, 1))


def test_add_note(session: Session, impacts: list[Impact]) -> None:
    iid = impacts[1].id or 0
    note = add_note(session=session, impact_id=iid, by=PM, text="  asked legal  ")
    session.commit()
    assert (note.author, note.text, note.impact_id) == (PM, "asked legal", iid)
    ev = events(session)[-1]
    assert (ev.action, ev.actor, ev.entity_id) == ("impact.note", PM, str(iid))
    assert ev.after == {"note_id": note.id, "text": "asked legal"}
    with pytest.raises(WorkflowError, match="needs some text"):
        add_note(session=session, impact_id=iid, by=PM, text=" ")
    with pytest.raises(WorkflowError, match="no impact 424242"):
        add_note(session=session, impact_id=424242, by=PM, text="x")


def test_mark_change_moves_every_impact_or_none(session: Session, impacts: list[Impact], change: Change) -> None:
    a, b = impacts
    walk(session, a.id or 0, ["needs_update", "in_progress"])
    session.commit()
    with pytest.raises(WorkflowError) as err:
        mark_change(session=session, change_id=change.id or 0, by=PM, status="needs_update")
    assert f"impact {a.id}: cannot go from in_progress to needs_update" in str(err.value)
    session.rollback()
    assert session.get(Impact, b.id).status == "open"  # type: ignore[union-attr]
    done = mark_change(session=session, change_id=change.id or 0, by=PM, status="dismissed",
                       note="wording only, no procedure change")
    session.commit()
    assert sorted(i.id or 0 for i in done) == sorted([a.id or 0, b.id or 0])
    assert {i.status for i in done} == {"dismissed"}
    # Those already there are left alone.
    assert mark_change(session=session, change_id=change.id or 0, by=PM, status="dismissed", note="again") == []
    with pytest.raises(WorkflowError, match="has no impacts"):
        mark_change(session=session, change_id=987654, by=PM, status="needs_update")
    assert verify(session).ok


# --- the CLI --------------------------------------------------------------------------------------

@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli(db_url: str, *args: str) -> Result:
    """The real `tracker` app, in-process (the end-to-end test runs it as a subprocess)."""
    from typer.testing import CliRunner

    from tracker.cli import app

    out = CliRunner().invoke(app, list(args), env={"TRACKER_DATABASE_URL": db_url}, catch_exceptions=False)
    return Result(out.exit_code, out.stdout, out.stderr)


def test_cli_workflow(db_url: str, session: Session, impacts: list[Impact], tmp_path: Path) -> None:
    a, b = impacts
    bad = cli(db_url, "impacts", "mark", str(a.id), "--status", "updated", "--by", PM)
    assert bad.returncode == 2
    assert f"impact {a.id}: cannot go from open to updated; allowed from open: needs_update, dismissed" in bad.stderr
    no_reason = cli(db_url, "impacts", "mark", str(a.id), "--status", "dismissed", "--by", PM)
    assert no_reason.returncode == 2 and "needs a reason" in no_reason.stderr
    unknown = cli(db_url, "impacts", "mark", str(a.id), "--status", "done", "--by", PM)
    assert unknown.returncode == 2 and "statuses are open, needs_update" in unknown.stderr
    bad_due = cli(db_url, "impacts", "mark", str(a.id), "--due", "31/01/2030", "--by", PM)
    assert bad_due.returncode == 2 and "YYYY-MM-DD" in bad_due.stderr

    ok = cli(db_url, "impacts", "needs-update", str(a.id), "--by", PM, "--note", "section 3 changes")
    assert ok.returncode == 0, ok.stderr
    again = cli(db_url, "impacts", "needs-update", str(a.id), "--by", PM)
    assert again.returncode == 2 and "already needs_update" in again.stderr
    moved = cli(db_url, "impacts", "mark", str(a.id), "--status", "in_progress", "--by", PM,
                        "--assignee", "carol@example.com", "--due", "2030-01-31")
    assert moved.returncode == 0, moved.stderr
    dismissed = cli(db_url, "impacts", "dismiss", str(b.id), "--reason", "not our market", "--by", PM)
    assert dismissed.returncode == 0, dismissed.stderr
    noted = cli(db_url, "impacts", "note", str(b.id), "checked with legal", "--by", PM)
    assert noted.returncode == 0, noted.stderr

    listed = cli(db_url, "impacts", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert rows[a.id]["status"] == "in_progress" and rows[a.id]["assignee"] == "carol@example.com"
    assert rows[a.id]["due_date"] == "2030-01-31" and rows[a.id]["overdue"] is False
    assert rows[a.id]["allowed_next"] == ["updated", "dismissed"]
    assert rows[b.id]["status"] == "dismissed" and rows[b.id]["decision_note"] == "not our market"
    for r in rows.values():
        assert {"id", "change_id", "sop_id", "source_id", "status", "reasons", "assignee", "due_date",
                "overdue"} <= set(r)
        assert r["reasons"] and r["reasons"][0]["source"] == REDDIT

    filtered = json.loads(cli(db_url, "impacts", "list", "--status", "dismissed", "--json").stdout)
    assert [r["id"] for r in filtered] == [b.id]
    by_sop = json.loads(cli(db_url, "impacts", "list", "--sop", "SOP-A", "--json").stdout)
    assert [r["id"] for r in by_sop] == [a.id]
    assert json.loads(cli(db_url, "impacts", "list", "--overdue", "--json").stdout) == []
    assert cli(db_url, "impacts", "list", "--sop", "NOPE").returncode == 2

    shown = cli(db_url, "impacts", "show", str(b.id))
    assert shown.returncode == 0 and "not our market" in shown.stdout and "checked with legal" in shown.stdout

    text = cli(db_url, "impacts", "list")
    assert text.returncode == 0 and "SOP-A" in text.stdout and "sections Reddit Content Policy > Enforcement" \
        in text.stdout

    session.expire_all()
    tail = [(e.actor, e.action, e.entity_id) for e in events(session)][-8:]
    assert tail == [(PM, "impact.status", str(a.id)), (PM, "impact.note", str(a.id)),
                    (PM, "impact.status", str(a.id)), (PM, "impact.assigned", str(a.id)),
                    (PM, "impact.due_date", str(a.id)),
                    (PM, "impact.status", str(b.id)), (PM, "impact.note", str(b.id)),
                    (PM, "impact.note", str(b.id))]
    assert verify(session).ok


def test_cli_overdue(db_url: str, session: Session, impacts: list[Impact]) -> None:
    a, b = impacts
    past = cli(db_url, "impacts", "mark", str(a.id), "--due", "2020-01-01", "--by", PM)
    assert past.returncode == 0, past.stderr
    future = cli(db_url, "impacts", "mark", str(b.id), "--due", "2999-01-01", "--by", PM)
    assert future.returncode == 0, future.stderr
    overdue = json.loads(cli(db_url, "impacts", "list", "--overdue", "--json").stdout)
    assert [r["id"] for r in overdue] == [a.id] and overdue[0]["overdue"] is True
    cli(db_url, "impacts", "dismiss", str(a.id), "--reason", "n/a", "--by", PM)
    assert json.loads(cli(db_url, "impacts", "list", "--overdue", "--json").stdout) == []


def test_two_people_deciding_at_once_do_not_lose_an_update(engine: Any, session: Session,
                                                            impacts: list[Impact]) -> None:
    """The second decision waits for the first and sees it: one transition, the other refused."""
    import threading

    iid = impacts[0].id or 0
    first = Session(engine, expire_on_commit=False)
    mark_impact(session=first, impact_id=iid, by="first@example.com", status="needs_update")  # holds the lock
    outcome: list[object] = []

    def second() -> None:
        with Session(engine, expire_on_commit=False) as s:
            try:
                mark_impact(session=s, impact_id=iid, by="second@example.com", status="needs_update")
                s.commit()
                outcome.append("marked")
            except WorkflowError as exc:
                s.rollback()
                outcome.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(0.5)  # it cannot finish while the first transaction is open
    first.commit()
    first.close()
    thread.join(30)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], WorkflowError)
    assert "already needs_update" in str(outcome[0])
    session.expire_all()
    status_events = events(session, "impact.status")
    assert [(e.actor, e.after) for e in status_events] == [("first@example.com", {"status": "needs_update"})]
    assert verify(session).ok
