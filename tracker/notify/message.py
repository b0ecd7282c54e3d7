"""What every channel takes and raises: the Message, the ChannelError, the Channel protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tracker.config import Settings
from tracker.notify.secrets import Resolved

ELLIPSIS = "…"


class ChannelError(Exception):
    """A delivery failed; the text is masked and says what the service answered."""


@dataclass(frozen=True)
class Message:
    """One thing to tell a channel: key (never sent twice per channel), title, Markdown body, link."""

    key: str
    kind: str  # alert | failure | recovery | digest | test
    title: str
    body: str
    link: str

    def fitted(self, limit: int) -> str:
        """The body cut to `limit` characters, ending with a link to the rest in the web UI."""
        if limit <= 0 or len(self.body) <= limit:
            return self.body
        tail = f"\n{ELLIPSIS} more: {self.link}"
        room = max(0, limit - len(tail))
        cut = self.body[:room].rsplit("\n", 1)[0] if "\n" in self.body[:room] else self.body[:room]
        return (cut + tail)[:limit]


class Channel(Protocol):
    """A sender of messages to one kind of channel URL."""

    name: str
    description: str

    def accepts(self, url: str) -> bool:
        """Whether this channel delivers this (resolved or template) URL."""
        ...

    def problem(self, url: str) -> str | None:
        """Why a resolved URL cannot be used (masked), or None."""
        ...

    def send(self, target: Resolved, message: Message, settings: Settings) -> str:
        """Deliver, returning the service's answer (masked); raise ChannelError on failure."""
        ...
