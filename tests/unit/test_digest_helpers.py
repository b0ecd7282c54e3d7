"""Digest test helpers (real fixture pages through the real ingest path, a real SMTP sink) and unit tests
of the pure parts: excerpts, reasons, subjects."""

from __future__ import annotations

import asyncio
import email
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword
from aiosmtpd.smtp import Session as SmtpSession
from markdown_it import MarkdownIt
from sqlmodel import Session

from spiders import KINDS
from tracker.check.diff import BlockChange
from tracker.check.record import Fetch, record_check
from tracker.notify.render import DigestContent, ImpactItem, describe_reason, excerpt_of, subject_for
from tracker.store.models import Change, Impact, Sop, Source, Team

PGA = Path(__file__).resolve().parent.parent / "fixtures" / "pga"
_md = MarkdownIt("commonmark").enable("table")


# ---------------------------------------------------------------- building data the real way


def page(markdown_or_html: str, *, is_html: bool = False) -> bytes:
    """A policy page like the policy site serves: the text inside <article class="policy">, plus noise."""
    body = markdown_or_html if is_html else _md.render(markdown_or_html)
    return (f"<!doctype html><html><head><title>Policy</title><script>track()</script></head><body>"
            f"<nav>Home</nav><main><article class=\"policy\">{body}</article></main>"
            f"<footer>generated now</footer></body></html>").encode()


def fixture_page(slug: str, v: int) -> bytes:
    """Version v of a tests/fixtures/pga document, as a page."""
    return page((PGA / slug / f"{v:04d}.md").read_text())


def add_source(session: Session, source_id: str, name: str, url: str) -> Source:
    src = Source(id=source_id, name=name, url=url, select=["article.policy"], remove=["nav"])
    session.add(src)
    session.flush()
    return src


def check(session: Session, source: Source, body: bytes, at: datetime) -> int | None:
    """Record one fetch through the real ingest path; returns the new change id, if any."""
    out = record_check(kinds=KINDS, session=session, source=source,
                       fetch=Fetch(source_id=source.id, url=source.url, status=200,
                                   headers={"content-type": "text/html; charset=utf-8"}, body=body, fetched_at=at))
    session.flush()
    return out.change_id


def fail_check(session: Session, source: Source, at: datetime, error: str = "HTTP 500 from the server") -> None:
    """Record a failed fetch (the source's health goes bad from `at`)."""
    record_check(kinds=KINDS, session=session, source=source,
                 fetch=Fetch(source_id=source.id, url=source.url, status=500, error=error, fetched_at=at))
    session.flush()


def add_impact(session: Session, *, change_id: int, sop: Sop, status: str = "open", due: date | None = None,
               at: datetime | None = None) -> Impact:
    """An impact as the mapping would open it, with reasons naming the sections the change touched."""
    change = session.get(Change, change_id)
    assert change is not None
    impact = Impact(change_id=change_id, sop_id=sop.id, source_id=change.source_id, status=status,
                    reasons=[{"watch": 0, "source": change.source_id, "sections": change.sections,
                              "keywords": []}], due_date=due)
    if at is not None:
        impact.created_at = impact.updated_at = at
    session.add(impact)
    session.flush()
    return impact


def add_sop(session: Session, sop_id: str, title: str, owner: str, sources: list[str],
            team: Team | None = None) -> Sop:
    sop = Sop(id=sop_id, title=title, owner=owner, team_id=team.id if team else None,
              watches=[{"source": s, "sections": ["*"], "keywords": []} for s in sources])
    session.add(sop)
    session.flush()
    return sop


# ---------------------------------------------------------------- a real SMTP server


@dataclass
class Received:
    """One message as the SMTP server received it."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class SmtpSink:
    """An aiosmtpd handler that keeps what arrives and can refuse chosen recipients."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: SMTP, session: SmtpSession, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.lower() in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        msg = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), msg))
        return "250 Message accepted"

    def to(self, recipient: str) -> list[EmailMessage]:
        return [r.message for r in self.received if recipient in r.rcpt_tos]


@contextmanager
def running_smtp(sink: SmtpSink, *, ssl_context: ssl.SSLContext | None = None, implicit_tls: bool = False,
                 users: dict[str, str] | None = None) -> Iterator[SmtpSink]:
    """Run aiosmtpd for `sink` on 127.0.0.1, port 0: plain, STARTTLS (ssl_context) or TLS (implicit_tls),
    with AUTH LOGIN/PLAIN against `users` when given (required then)."""

    def authenticator(server: SMTP, session: SmtpSession, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and users is not None and \
            users.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False)

    def factory() -> SMTP:
        return SMTP(sink, hostname="smtp.test", loop=loop,
                    tls_context=None if implicit_tls else ssl_context,
                    require_starttls=bool(ssl_context and not implicit_tls),
                    authenticator=authenticator if users is not None else None,
                    # Implicit TLS: aiosmtpd cannot tell the socket is already encrypted.
                    auth_required=users is not None, auth_require_tls=not implicit_tls)

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(factory, "127.0.0.1", 0,
                                                        ssl=ssl_context if implicit_tls else None))
    sink.port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        async def stop() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(name="smtp_sink")
def smtp_sink_fixture() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1, on a free port, in its own thread."""
    with running_smtp(SmtpSink()) as sink:
        yield sink


def parts(msg: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML parts of a digest message."""
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    return str(plain.get_content()), str(html.get_content())


# ---------------------------------------------------------------- unit tests of the pure parts


def test_excerpt_keeps_a_few_words_around_each_edit() -> None:
    old = "one two three four five six seven eight nine ten eleven twelve remove this please and then more words here"
    new = "one two three four five six seven eight nine ten eleven twelve add that please and then more words here"
    from tracker.check.diff import word_diff

    x = excerpt_of(BlockChange("modified", "p", "A > B", old, new, word_diff(old, new)), context=3)
    assert x.segments[0] == ("gap", "…")
    assert x.segments[1] == ("equal", "ten eleven twelve")
    assert ("delete", "remove this") in x.segments and ("insert", "add that") in x.segments
    assert x.segments[-2:] == [("equal", "please and then"), ("gap", "…")]


def test_excerpt_of_added_and_removed_blocks_is_clipped() -> None:
    long = " ".join(f"w{i}" for i in range(100))
    added = excerpt_of(BlockChange("added", "p", "S", new=long))
    assert added.op == "added" and added.segments[0][0] == "insert" and added.segments[0][1].endswith("…")
    assert len(added.segments[0][1].split()) == 41
    removed = excerpt_of(BlockChange("removed", "p", "S", old="gone"))
    assert removed.segments == [("delete", "gone")]


def test_reasons_read_as_sentences() -> None:
    assert describe_reason({"watch": 0, "source": "x", "sections": ["A > B"], "keywords": ["ban"]}) == \
        'section A > B and keywords "ban"'
    assert describe_reason({"watch": 1, "source": "x", "sections": ["A > Enforcement"], "globs": ["*> Enforcement"]}) \
        == 'section A > Enforcement (watching "*> Enforcement")'
    assert describe_reason({"watch": 1, "source": "x"}) == "watches every change to this source"


def _impact(sop_id: str, overdue: bool, status: str = "open") -> ImpactItem:
    return ImpactItem(impact_id=1, status=status, overdue=overdue, due_date=None, assignee=None, sop_id=sop_id,
                      sop_title=sop_id, sop_owner="o@x", source_id="s", source_name="S", source_url="u",
                      change_id=1, detected_at=datetime(2026, 1, 1, tzinfo=UTC), sections=[], reasons=[],
                      excerpts=[])


def test_subject_says_what_matters() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    content = DigestContent("a@x", now, impacts=[_impact("a", True), _impact("b", True), _impact("c", False),
                                                  _impact("c", False)])
    assert subject_for(content) == "[Policy tracker] 3 SOPs need review — 2 overdue"
    assert subject_for(DigestContent("a@x", now, impacts=[_impact("a", False)])) == \
        "[Policy tracker] 1 SOP needs review"
    assert subject_for(DigestContent("a@x", now)) == "[Policy tracker] nothing new"


def test_big_digest_lists_every_item_and_details_the_first_ones() -> None:
    from tracker.notify.render import DETAIL_ITEMS, Excerpt, render_digest

    now = datetime(2026, 1, 1, tzinfo=UTC)
    impacts = []
    for n in range(1, DETAIL_ITEMS + 6):
        item = _impact(f"sop-{n}", overdue=False)
        item.impact_id = n
        item.excerpts = [Excerpt("S", "modified", [("equal", "keep"), ("delete", f"old{n}"), ("insert", f"new{n}")])]
        impacts.append(item)
    r = render_digest(DigestContent("a@x", now, impacts=impacts), base_url="https://t.example", timezone="UTC")
    for n in range(1, DETAIL_ITEMS + 6):
        assert f"https://t.example/impacts/{n}\"" in r.html and f"https://t.example/impacts/{n}\n" in r.text
    assert f"new{DETAIL_ITEMS}" in r.html and f"new{DETAIL_ITEMS + 1}" not in r.html
    assert f"{{+new{DETAIL_ITEMS}+}}" in r.text and f"new{DETAIL_ITEMS + 1}" not in r.text
