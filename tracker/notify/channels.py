"""The channel registry: which sender delivers a channel URL.

`CHANNELS` is the one list of channel kinds (validation, `tracker notify test` and the docs read
it). A team's `notify:` entry goes to the first channel that accepts it, the catch-all `apprise`
last whatever the order: `email` for `mailto:someone@example.com` (the tracker's own SMTP
settings, like the digest), `apprise` for every other Apprise URL (`slack://…`, `msteams://…`,
`json://…`, `ntfy://…`, `mailto://user:pass@host`).
"""

from __future__ import annotations

from tracker.notify.apprise_channel import AppriseChannel
from tracker.notify.email_channel import EmailChannel
from tracker.notify.message import Channel, ChannelError, Message

# The channel that takes any URL the others do not: asked last.
FALLBACK = "apprise"

CHANNELS: dict[str, Channel] = {"email": EmailChannel(), "apprise": AppriseChannel()}


def channel_for(url: str) -> Channel:
    """The channel that delivers a URL: the first that accepts it, the fallback (Apprise) last."""
    for name, channel in CHANNELS.items():
        if name != FALLBACK and channel.accepts(url):
            return channel
    return CHANNELS[FALLBACK]


__all__ = ["CHANNELS", "FALLBACK", "Channel", "ChannelError", "Message", "channel_for"]
