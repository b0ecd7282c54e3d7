"""The channel registry: which sender delivers a channel URL, and the message shape they all take.

`CHANNELS` is the one list of channel kinds (validation, `tracker notify test` and the docs read
it). A team's `notify:` entry goes to the first channel that accepts it: `email` for
`mailto:someone@example.com` (the tracker's own SMTP settings, like the digest), `apprise` for
every Apprise URL (`slack://…`, `msteams://…`, `json://…`, `ntfy://…`, `mailto://user:pass@host`).
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Protocol

from tracker.config import Settings
from tracker.notify.messages import ChannelError, Message
from tracker.notify.secrets import Resolved
from tracker.store.db import utcnow


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


class EmailChannel:
    """`mailto:address`: one plain-text mail through the tracker's SMTP settings (TRACKER_SMTP_*)."""

    name = "email"
    description = "`mailto:team@example.com`: a plain-text mail through the tracker's own SMTP settings"

    def accepts(self, url: str) -> bool:
        return url.lower().startswith("mailto:") and not url.startswith("mailto://")

    def problem(self, url: str) -> str | None:
        address = url.split(":", 1)[1].split("?", 1)[0]
        return None if "@" in address and " " not in address else f"{url!r} is not mailto:an@address"

    def send(self, target: Resolved, message: Message, settings: Settings) -> str:
        from tracker.notify.email import Mailer, MailError

        recipient = target.url.split(":", 1)[1].split("?", 1)[0]
        msg = EmailMessage()
        msg["Subject"] = message.title
        msg["From"] = settings.mail_from
        msg["To"] = recipient
        msg["Date"] = format_datetime(utcnow())
        msg["Message-ID"] = make_msgid("notify", domain=settings.mail_from.rpartition("@")[2] or "localhost")
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(f"{message.body}\n\n{message.link}\n")
        try:
            with Mailer(settings) as mailer:
                mailer.send(msg, recipient=recipient)
        except MailError as exc:
            raise ChannelError(target.mask(str(exc))) from exc
        return f"accepted by {settings.smtp_host}:{settings.smtp_port}"


def _registry() -> dict[str, Channel]:
    from tracker.notify.apprise_channel import AppriseChannel

    return {"email": EmailChannel(), "apprise": AppriseChannel()}


CHANNELS: dict[str, Channel] = _registry()


def channel_for(url: str) -> Channel:
    """The channel that delivers a URL (Apprise takes whatever email does not)."""
    for channel in CHANNELS.values():
        if channel.accepts(url):
            return channel
    return CHANNELS["apprise"]
