"""The shape every channel sender takes and the one error they raise, apart from the registry of them.

tracker.notify.channels lists the senders and each sender module (email, Apprise) imports these, so
the registry can import its senders without any sender importing the registry back.
"""

from __future__ import annotations

from dataclasses import dataclass

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
