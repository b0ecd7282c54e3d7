"""Channel URLs and their secrets: `${TRACKER_…}` substitution at send time, masking everywhere else.

A channel URL usually is a credential (a Slack webhook's path, a Teams connector's tokens). The
SOP file, the database, the audit trail and every output keep the template (`${TRACKER_SLACK_TS}`)
or a masked form; only the sender resolves it, in memory, and every text it hands back
(service answers, errors) passes through `mask()` with the resolved values first.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ALLOWED_VAR = re.compile(r"^TRACKER_[A-Z0-9_]+$")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]{1,30}:")
MASK = "***"
MAX_URL = 2000


class SecretMissing(ValueError):
    """A channel URL names an environment variable that is not set."""


def template_problem(template: str) -> str | None:
    """Why a `notify:` entry is unusable (checked when the SOP file is loaded), or None."""
    if not template or len(template) > MAX_URL:
        return f"must be a channel URL of 1 to {MAX_URL} characters"
    if any(ord(c) < 32 or c == "\x7f" for c in template):
        return "must not contain control characters"
    for name in PLACEHOLDER.findall(template):
        if not ALLOWED_VAR.match(name):
            return f"${{{name}}}: only TRACKER_… variables may be substituted (e.g. ${{TRACKER_SLACK_TS}})"
    if PLACEHOLDER.fullmatch(template):
        return None  # the whole URL comes from the environment
    if not SCHEME.match(template.lower()):
        return f"{mask_url(template)!r} is not a URL: use an Apprise URL such as slack://… or mailto:someone@…"
    return None


@dataclass(frozen=True)
class Resolved:
    """A channel URL with its variables filled in, and the values that must never be shown."""

    url: str
    secrets: tuple[str, ...] = field(default=())

    def mask(self, text: str) -> str:
        """text with every secret value and the whole URL replaced by ***."""
        return mask(text, (self.url, *self.secrets))


def resolve(template: str, env: Mapping[str, str] | None = None) -> Resolved:
    """Fill in `${TRACKER_…}` from the environment; raises SecretMissing naming the variable."""
    env = os.environ if env is None else env
    secrets: list[str] = []

    def fill(m: re.Match[str]) -> str:
        value = env.get(m.group(1))
        if not value:
            raise SecretMissing(f"{m.group(1)} is not set: export it where the tracker runs "
                                "(the channel URL in the SOP file refers to it)")
        secrets.append(value)
        return value

    url = PLACEHOLDER.sub(fill, template)
    secrets.extend(_url_secrets(url))
    return Resolved(url=url, secrets=tuple(s for s in secrets if len(s) >= 4))


def _url_secrets(url: str) -> list[str]:
    """The parts of a URL that usually are credentials: its user info and path segments."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [p for p in (parts.username, parts.password) if p]
    found += [seg for seg in parts.path.split("/") if len(seg) >= 8]
    found += [v for kv in parts.query.split("&") for v in kv.split("=")[1:] if len(v) >= 8]
    return found


def mask(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """text with each secret (longest first) replaced by ***."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def mask_url(template: str) -> str:
    """A channel URL safe to show: scheme and host kept, user info, path and query masked.

    `${TRACKER_…}` placeholders are no secret and stay as written.
    """
    if PLACEHOLDER.fullmatch(template):
        return template
    try:
        parts = urlsplit(template)
    except ValueError:
        return MASK
    if not parts.scheme:
        return MASK
    host = parts.hostname or ""
    if parts.scheme == "mailto":
        return template.split("?", 1)[0]
    port = f":{parts.port}" if _port(parts) else ""
    user = f"{MASK}@" if parts.username or parts.password else ""
    rest = f"/{MASK}" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{user}{host}{port}{rest}"


def _port(parts: Any) -> int | None:
    try:
        return int(parts.port) if parts.port else None
    except ValueError:
        return None


def channel_key(team_id: str, template: str) -> str:
    """The stable name deliveries are recorded under: team plus a hash of the template, no secret."""
    return f"{team_id}:{hashlib.sha256(template.encode()).hexdigest()[:16]}"


def mask_templates(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """A team's audited fields with each `notify` URL masked."""
    if not values or "notify" not in values:
        return values
    return {**values, "notify": [mask_url(str(u)) for u in values["notify"] or []]}
