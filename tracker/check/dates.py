"""Dates a regulation or policy text announces: when it takes effect, when it was last updated,
when comments close. Each found date keeps the sentence it came from, for a reader to check.

Pure and bounded: only the first MAX_SCAN characters of a text are looked at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

MAX_SCAN = 200_000
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_DATE = (r"(?P<month>Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
         r"|Sept?(?:ember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?\s+(?P<day>\d{1,2}),?\s+(?P<year>\d{4})"
         r"|(?P<iso>\d{4}-\d{2}-\d{2})")
_CUES = {
    "effective_on": re.compile(r"\b(effective|take[s]? effect|come[s]? into (?:force|effect)|in force)\b", re.I),
    "updated_on": re.compile(r"\b(last (?:updated|modified|revised)|updated on|revised on)\b", re.I),
    "comments_close_on": re.compile(r"\bcomments?\b.*\b(by|before|on or before|no later than|close)\b", re.I),
}
_DATE_RE = re.compile(_DATE)


@dataclass(frozen=True)
class FoundDate:
    """A date and the sentence that announced it."""

    on: date
    sentence: str


def _to_date(m: re.Match[str]) -> date | None:
    try:
        if m.group("iso"):
            return date.fromisoformat(m.group("iso"))
        return date(int(m.group("year")), _MONTHS[m.group("month")[:3].lower()], int(m.group("day")))
    except ValueError:
        return None


def find_dates(text: str) -> dict[str, FoundDate]:
    """The first effective, last-updated and comments-close dates a text states, by field name."""
    found: dict[str, FoundDate] = {}
    # A sentence ends at . ! or ? before a capital letter ("Sept. 21" stays whole).
    for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z\"“(])|\n+", text[:MAX_SCAN]):
        if len(found) == len(_CUES):
            break
        m = _DATE_RE.search(sentence)
        if m is None or (when := _to_date(m)) is None:
            continue
        for name, cue in _CUES.items():
            if name in found or not cue.search(sentence):
                continue
            if name == "effective_on" and _CUES["updated_on"].search(sentence):
                continue  # "Last updated: ... effective" is an update stamp, kept apart
            found[name] = FoundDate(when, " ".join(sentence.split())[:500])
            break
    return found


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def takes_effect(effective_on: date | None, today: date) -> str:
    """"takes effect in 12 days (2027-01-01)", "takes effect today", "took effect on 2024-01-01", or ""."""
    if effective_on is None:
        return ""
    days = (effective_on - today).days
    if days > 0:
        return f"takes effect in {_days(days)} ({effective_on.isoformat()})"
    return "takes effect today" if days == 0 else f"took effect on {effective_on.isoformat()}"


def comments_close(comments_close_on: date | None, today: date) -> str:
    """"comments close in 5 days (2027-01-01)", "comments close today", "comments closed on …", or ""."""
    if comments_close_on is None:
        return ""
    days = (comments_close_on - today).days
    if days > 0:
        return f"comments close in {_days(days)} ({comments_close_on.isoformat()})"
    return "comments close today" if days == 0 else f"comments closed on {comments_close_on.isoformat()}"


def date_phrases(effective_on: date | None, comments_close_on: date | None, today: date) -> list[str]:
    """What a change's dates mean today, for the web pages and the digest alike (empty when none are known)."""
    return [p for p in (takes_effect(effective_on, today), comments_close(comments_close_on, today)) if p]
