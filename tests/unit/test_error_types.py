"""Refusals map to HTTP codes by their type, in one place (tracker.web.errors.HTTP_CODES), never by their text."""

from __future__ import annotations

from tracker.declare.managed import InvalidSpec, ManagedElsewhere
from tracker.impacts.statuses import FINAL, STATUSES, TRANSITIONS, ImpactStatus
from tracker.impacts.workflow import Conflict, NoteTooLong, NotFound, WorkflowError
from tracker.web.errors import http_code


def test_the_code_follows_the_class_not_the_message() -> None:
    assert http_code(NotFound("change 7 has no impacts")) == 404
    assert http_code(NotFound("anything at all")) == 404
    # Worded like a missing impact, but a conflict: the text no longer decides.
    assert http_code(Conflict("no impact can go from open to updated")) == 409
    assert http_code(NoteTooLong("impact 1", 5000, 4000)) == 413
    assert http_code(WorkflowError("who is acting must be an email address")) == 409
    assert http_code(InvalidSpec("source x", ["url: must be an absolute http(s) URL"])) == 422
    assert http_code(ManagedElsewhere("source", "x")) == 409


def test_statuses_are_an_enum_whose_members_are_their_text() -> None:
    assert STATUSES == ("open", "needs_update", "in_progress", "updated", "dismissed")
    assert ImpactStatus("dismissed") in FINAL and "updated" in FINAL and "open" not in FINAL
    assert f"{ImpactStatus.IN_PROGRESS}" == "in_progress"
    assert ", ".join(TRANSITIONS["open"]) == "needs_update, dismissed"
