"""The email channel: `mailto:address`, sent through the tracker's own SMTP settings (TRACKER_SMTP_*)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from tracker.config import Settings
from tracker.notify.message import ChannelError, Message
from tracker.notify.secrets import Resolved
from tracker.store.db import utcnow


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
