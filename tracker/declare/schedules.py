"""Source schedules: a five-field cron expression or an interval such as '6h'."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.I)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: exactly one of interval and cron is set."""

    text: str
    interval: timedelta | None = None
    cron: str | None = None


def parse_schedule(text: str) -> Schedule:
    """Parse '6h', '30m', '1d', '45s' or a cron expression such as '0 6 * * *'; ValueError if neither."""
    if m := _INTERVAL.match(text):
        seconds = float(m.group(1)) * _UNITS[m.group(2).lower()]
        if seconds < 1:
            raise ValueError(f"interval {text!r} is shorter than one second")
        return Schedule(text=text, interval=timedelta(seconds=seconds))
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"schedule {text!r} is neither an interval (e.g. '6h', '30m') nor a 5-field cron expression"
        )
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(text)
    except ValueError as exc:
        raise ValueError(f"schedule {text!r} is not a valid cron expression: {exc}") from exc
    return Schedule(text=text, cron=text)
