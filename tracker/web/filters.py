"""Query-string filters the pages and the API share: date ranges, and refusing filters that do not apply.

A filter a page does not know used to be ignored (`/changes?since=…` showed every change), which
reads as "nothing matched" or "all of these match" when neither is true: a page now answers 400
naming the filters it has.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from fastapi import Request

from tracker.web.context import Problem

# Parameters any page takes that are not filters.
NOT_FILTERS = frozenset({"page", "view", "before", "limit", "format", "next"})


def only_filters(request: Request, allowed: Iterable[str]) -> None:
    """Refuse query parameters the page does not filter by, naming the ones it does."""
    known = set(allowed)
    unknown = sorted(k for k in request.query_params if k not in known and k not in NOT_FILTERS)
    if unknown:
        raise Problem(400, f"{request.url.path} has no filter {', '.join(repr(u) for u in unknown)}; "
                           f"its filters are {', '.join(sorted(known)) or 'none'}")


def parse_when(value: str, name: str, *, end: bool = False) -> datetime | None:
    """An ISO 8601 date or time as aware UTC; a bare date as `until` means the end of that day."""
    if not value:
        return None
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            at = datetime.combine(d, time.min, tzinfo=UTC)
            return at + timedelta(days=1) if end else at
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Problem(400, f"{name}={value!r} is not an ISO 8601 date or time (e.g. 2026-11-01 or "
                           "2026-11-01T06:00:00Z)") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@dataclass
class DateRange:
    """A half-open range [since, until) of aware UTC times; either end may be open."""

    since: datetime | None = None
    until: datetime | None = None
    since_text: str = ""
    until_text: str = ""

    @classmethod
    def parse(cls, since: str, until: str) -> DateRange:
        """The range from the since= and until= parameters (400 when unreadable or reversed)."""
        rng = cls(parse_when(since, "since"), parse_when(until, "until", end=True), since, until)
        if rng.since and rng.until and rng.since >= rng.until:
            raise Problem(400, f"since={since} is not before until={until}")
        return rng

    def active(self) -> bool:
        return self.since is not None or self.until is not None
