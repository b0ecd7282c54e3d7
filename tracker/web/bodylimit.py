"""A cap on request bodies, so a 20 MB POST is refused (413) before anything reads it whole.

The longest legitimate body is a form or JSON object holding one note of TRACKER_MAX_NOTE_CHARS
characters: at most 12 bytes a character once encoded (a 4-byte UTF-8 character is %XX%XX%XX%XX
in a form, two \\uXXXX escapes in JSON), plus room for the other fields. A body that says it is
longer is refused at once; one sent in chunks is read only up to the cap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BYTES_PER_CHAR = 12
OTHER_FIELDS = 16 * 1024


def body_limit(max_note_chars: int) -> int:
    """The largest request body accepted, in bytes, for a note limit in characters."""
    return OTHER_FIELDS + BYTES_PER_CHAR * max_note_chars


# How much of a refused body is read and dropped so that the client sees the 413 (never kept).
DRAIN_BYTES = 8 * 1024 * 1024


class BodyLimit:
    """ASGI middleware: bodies over `max_bytes` get `refuse(request, max_bytes)` instead of the app."""

    def __init__(self, app: ASGIApp, *, max_bytes: int,
                 refuse: Callable[[Request, int], Awaitable[Response]]) -> None:
        self.app, self.max_bytes, self.refuse = app, max_bytes, refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, more=True)
            return
        body, more = await self._read(receive)
        if body is None:
            await self._refuse(scope, receive, send, more=more)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> tuple[bytes | None, bool]:
        """The whole body, or None as soon as it passes the cap; and whether more of it is coming."""
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return None, more
            chunks.append(chunk)
        return b"".join(chunks), False

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, *, more: bool) -> None:
        # Read (and drop) a bounded part of what is still coming before answering: a socket closed with
        # unread bytes is reset by the kernel, and the reset can reach the client before the 413 does.
        drained = 0
        while more and drained <= DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                break
            drained += len(message.get("body", b""))
            more = message.get("more_body", False)
        response = await self.refuse(Request(scope), self.max_bytes)
        response.headers["Connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then whatever comes next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
