"""The service's structured logs: one event per line, as JSON objects or logfmt key=value pairs.

Every service event is a name and key/value fields (`event`), so a log shipper can filter on
the name and read the fields without parsing prose.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from typing import Any

log = logging.getLogger("tracker.service")


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event: a name and key/value fields."""
    log.log(level, name, extra={"fields": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {"ts": datetime.fromtimestamp(record.created).astimezone().isoformat(
            timespec="milliseconds"), "level": record.levelname.lower(), "logger": record.name,
            "event": record.getMessage()}
        data.update(getattr(record, "fields", {}))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """logfmt: ts=… level=… event=… key=value …, values quoted when they need it."""

    def format(self, record: logging.LogRecord) -> str:
        parts = {"ts": datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "event": record.getMessage(),
                 **getattr(record, "fields", {})}
        if record.exc_info:
            parts["exception"] = self.formatException(record.exc_info)
        return " ".join(f"{k}={_kv(v)}" for k, v in parts.items())


def _kv(value: Any) -> str:
    if isinstance(value, list | tuple):
        value = ",".join(map(str, value))
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


def configure_logging(fmt: str = "json", level: int = logging.INFO) -> None:
    """Send tracker and APScheduler logs to stderr as JSON lines or key=value lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    for name in ("tracker", "apscheduler"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level if name == "tracker" else max(level, logging.WARNING))
        logger.propagate = False

