"""The Apprise channel: any Apprise URL (Slack, Teams, Discord, ntfy, generic JSON webhooks …).

Apprise knows each service's format and length limit (`body_maxlen`); the message is cut to it
with a link to the rest. Apprise reports failures only in its log, so the log of one send is
captured and kept (masked) as the service's answer.
"""

from __future__ import annotations

import logging
from typing import Any

from tracker.config import Settings
from tracker.notify.message import ChannelError, Message
from tracker.notify.secrets import Resolved, mask_url

MAX_ANSWER = 500


def _plugin(url: str) -> Any:
    import apprise

    # Apprise logs request URLs (tokens and all) at debug level: its records stay in the capture
    # below, and only the masked answer reaches the tracker's own log.
    logging.getLogger("apprise").propagate = False
    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


class AppriseChannel:
    """Every URL Apprise understands (https://github.com/caronc/apprise/wiki)."""

    name = "apprise"
    description = ("any Apprise URL: `slack://…`, `msteams://…`, `discord://…`, `ntfy://…`, `json://host/path` "
                   "(a generic JSON webhook), `mailto://user:pass@host` and the rest")

    def accepts(self, url: str) -> bool:
        return "://" in url

    def problem(self, url: str) -> str | None:
        if _plugin(url) is None:
            return (f"{mask_url(url)} is not a URL Apprise understands: check its scheme and parts "
                    "(see Apprise's list of services)")
        return None

    def send(self, target: Resolved, message: Message, settings: Settings) -> str:
        import apprise

        plugin = _plugin(target.url)
        if plugin is None:
            raise ChannelError(f"{mask_url(target.url)} is not a URL Apprise understands")
        title_max = int(getattr(plugin, "title_maxlen", 0) or 0)
        body_max = int(getattr(plugin, "body_maxlen", 0) or 0)
        if title_max:
            title, body = message.title[:title_max], message.fitted(body_max)
        else:  # a service without titles (Mattermost): the title leads the body, within the same limit
            title = ""
            body = f"{message.title}\n\n{message.fitted(max(0, body_max - len(message.title) - 2))}"
        with apprise.LogCapture(level=logging.INFO) as log:  # type: ignore[no-untyped-call]
            ok = plugin.notify(body=body, title=title, body_format=apprise.NotifyFormat.MARKDOWN)
            answer = target.mask(str(log.getvalue()).strip())[-MAX_ANSWER:]
        if not ok:
            raise ChannelError(answer or f"{mask_url(target.url)} did not accept the message")
        return answer or "sent"
