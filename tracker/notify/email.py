"""Mail out: one multipart/alternative message per recipient, over SMTP (none, STARTTLS or TLS)."""

from __future__ import annotations

import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from types import TracebackType

from tracker.config import Settings
from tracker.notify.render import Rendered


class MailError(Exception):
    """A message could not be delivered; the text says to whom, what the server said, and what to check."""


def build_message(*, rendered: Rendered, sender: str, recipient: str, now: datetime) -> EmailMessage:
    """The digest as a multipart/alternative message: plain text first, then HTML."""
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = sender
    msg["To"] = recipient
    msg["Date"] = format_datetime(now)
    domain = sender.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = make_msgid("digest", domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


class Mailer:
    """An SMTP connection opened on first use and reopened after a failure; use as a context manager."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self._broken: str | None = None

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _where(self) -> str:
        s = self.settings
        return f"{s.smtp_host}:{s.smtp_port} (TRACKER_SMTP_SECURITY={s.smtp_security})"

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp: smtplib.SMTP
        if s.smtp_security == "tls":
            smtp = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
        try:
            smtp.ehlo()
            if s.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, msg: EmailMessage, *, recipient: str) -> None:
        """Deliver one message to one recipient, or raise MailError saying why."""
        if self._broken is not None:
            # The server could not be reached or refused the login: fail fast, do not wait again.
            raise MailError(f"not sent to {recipient}: {self._broken}")
        if self._smtp is None:
            try:
                self._smtp = self._connect()
            except smtplib.SMTPAuthenticationError as exc:
                self._broken = (f"{self._where()} rejected the login of {self.settings.smtp_username!r}: "
                                f"{exc.smtp_code} {_text(exc.smtp_error)}; "
                                "check TRACKER_SMTP_USERNAME and TRACKER_SMTP_PASSWORD")
                raise MailError(self._broken) from exc
            except (smtplib.SMTPException, OSError) as exc:
                self._broken = (f"cannot connect to {self._where()}: {exc or type(exc).__name__}; "
                                "check TRACKER_SMTP_HOST, TRACKER_SMTP_PORT and TRACKER_SMTP_SECURITY")
                raise MailError(self._broken) from exc
        try:
            self._smtp.send_message(msg, from_addr=self.settings.mail_from, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused as exc:
            # The connection stays usable: smtplib reset the transaction.
            code, text = next(iter(exc.recipients.values()), (0, b""))
            raise MailError(f"{self._where()} refused recipient {recipient}: {code} "
                            f"{_text(text)}; check the address") from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise MailError(f"{self._where()} refused the message to {recipient}: {exc.smtp_code} "
                            f"{_text(exc.smtp_error)}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            # The connection broke mid-session: the next recipient reconnects.
            raise MailError(f"cannot deliver to {recipient} via {self._where()}: {exc or type(exc).__name__}") from exc

    def close(self) -> None:
        """Say goodbye to the server if connected (errors while closing are ignored)."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
