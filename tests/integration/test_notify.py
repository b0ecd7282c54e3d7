"""Channel deliveries for real: Apprise to a local HTTP receiver, retries, never twice, secrets masked."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tests.notify_support import Receiver, receiver, seed_with_channels
from tests.unit.test_digest_helpers import SmtpSink, smtp_sink_fixture  # noqa: F401  (smtp_sink)
from tracker.config import Settings
from tracker.notify import CHANNELS
from tracker.notify.alerts import send_alerts, send_digest_summaries
from tracker.notify.message import Message
from tracker.notify.secrets import mask_url, resolve, template_problem
from tracker.store.models import AuditEvent, Delivery, Impact

SECRET = "s3cr3t-T0KEN-abcdef123456"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, hook: Receiver) -> Settings:
    monkeypatch.setenv("TRACKER_TEST_HOOK", f"json://127.0.0.1:{hook.port}/hooks/{SECRET}?rto=1&cto=1")
    return Settings(notify_backoff=0.01, notify_retries=2, base_url="https://tracker.example.com")


def alert_impacts(engine: Engine) -> list[int]:
    with Session(engine) as s:
        rows = s.exec(select(Impact).where(col(Impact.sop_id).in_(["SOP-TS-001", "SOP-TS-007"]))
                      .order_by(col(Impact.id))).all()
        return [r.id or 0 for r in rows]


def test_registry_lists_email_first_then_apprise() -> None:
    assert list(CHANNELS) == ["email", "apprise"]


def test_immediate_alerts_reach_the_json_webhook_once_per_impact(engine: Engine, session: Session,
                                                                  settings: Settings, hook: Receiver) -> None:
    seed_with_channels(session, ["${TRACKER_TEST_HOOK}"])
    impacts = alert_impacts(engine)
    assert impacts
    report = send_alerts(engine=engine, settings=settings)
    assert len(report.sent) == len(impacts) and not report.failed
    bodies = hook.bodies()
    assert {r["path"] for r in hook.requests} == {f"/hooks/{SECRET}"}
    assert sorted(b["title"] for b in bodies)[0].startswith("Review SOP-TS-")
    links = {f"https://tracker.example.com/impacts/{i}" for i in impacts}
    assert {next(link for link in links if link in b["message"]) for b in bodies} == links
    # A second pass, and a third, send nothing more.
    again = send_alerts(engine=engine, settings=settings)
    assert not again.sent and again.skipped == len(impacts)
    assert len(hook.requests) == len(impacts)
    with Session(engine) as s:
        rows = s.exec(select(Delivery)).all()
        assert {r.status for r in rows} == {"sent"} and {r.kind for r in rows} == {"alert"}
        assert all(SECRET not in (r.target + r.channel + (r.response or "")) for r in rows)
        sent = s.exec(select(AuditEvent).where(AuditEvent.action == "notify.sent")).all()
        assert len(sent) == len(impacts) and all(SECRET not in str(e.after) for e in sent)


def test_sops_without_immediate_alert_send_nothing(engine: Engine, session: Session, settings: Settings,
                                                   hook: Receiver) -> None:
    seed_with_channels(session, ["${TRACKER_TEST_HOOK}"], alert=None)
    assert not send_alerts(engine=engine, settings=settings).sent
    assert hook.requests == []


def test_two_concurrent_senders_deliver_each_message_once(engine: Engine, session: Session, settings: Settings,
                                                          hook: Receiver) -> None:
    seed_with_channels(session, ["${TRACKER_TEST_HOOK}"])
    impacts = alert_impacts(engine)
    start = threading.Barrier(2)
    reports: list[Any] = []

    def run() -> None:
        start.wait()
        reports.append(send_alerts(engine=engine, settings=settings))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(len(r.sent) for r in reports) == len(impacts)
    assert len(hook.requests) == len(impacts)


@pytest.mark.parametrize("mode", ["500", "slow"])
def test_a_failing_receiver_is_retried_recorded_and_retried_later(engine: Engine, session: Session,
                                                                  settings: Settings, hook: Receiver,
                                                                  mode: str) -> None:
    seed_with_channels(session, ["${TRACKER_TEST_HOOK}"])
    impacts = alert_impacts(engine)[:1]
    with Session(engine) as s:  # one impact keeps the test short
        for imp in s.exec(select(Impact).where(col(Impact.id).not_in(impacts))).all():
            imp.status = "dismissed"
            s.add(imp)
        s.commit()
    hook.mode = mode
    report = send_alerts(engine=engine, settings=settings)
    assert report.failed and not report.sent
    assert len(hook.requests) == settings.notify_retries + 1  # first try and two retries
    with Session(engine) as s:
        (row,) = s.exec(select(Delivery)).all()
        assert row.status == "failed" and row.attempts == 3 and row.error and SECRET not in row.error
        assert row.next_attempt_at is not None
        failed = s.exec(select(AuditEvent).where(AuditEvent.action == "notify.failed")).all()
        assert len(failed) == 1 and SECRET not in str(failed[0].after)
    # The receiver recovers; a later pass (once the wait is over) delivers it, once.
    hook.mode = "ok"
    later = send_alerts(engine=engine, settings=settings, now=row.next_attempt_at)
    assert later.sent == [f"{row.channel} impact:{impacts[0]}"]
    assert not send_alerts(engine=engine, settings=settings, now=row.next_attempt_at).sent
    with Session(engine) as s:
        (row,) = s.exec(select(Delivery)).all()
        assert row.status == "sent" and row.attempts == 4


def test_one_failing_channel_does_not_stop_the_others(engine: Engine, session: Session, settings: Settings,
                                                      hook: Receiver) -> None:
    seed_with_channels(session, ["json://127.0.0.1:9/down?cto=1&rto=1", "${TRACKER_TEST_HOOK}"])
    impacts = alert_impacts(engine)
    report = send_alerts(engine=engine, settings=settings)
    assert len(report.failed) == len(impacts) and len(report.sent) == len(impacts)
    assert len(hook.requests) == len(impacts)


def test_a_slack_webhook_pointed_at_the_receiver_gets_slack_payloads(
        engine: Engine, session: Session, settings: Settings, hook: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    # Apprise's Slack plugin posts to hooks.slack.com; pointed at the local receiver, the payload is real.
    from apprise.plugins.slack import NotifySlack

    monkeypatch.setattr(NotifySlack, "webhook_url", f"{hook.base}/services")
    token = "TIiajkdnlazkcOXrIdevi7Secret"  # Slack tokens are alphanumeric
    monkeypatch.setenv("TRACKER_SLACK_TS", f"slack://T1JJ3T3L2/A1BRTD4JD/{token}/#trust-safety")
    seed_with_channels(session, ["${TRACKER_SLACK_TS}"])
    report = send_digest_summaries(engine=engine, settings=settings)
    assert len(report.sent) == 1
    (req,) = hook.requests
    assert req["path"] == f"/services/T1JJ3T3L2/A1BRTD4JD/{token}"
    payload = req["json"]
    assert payload["channel"] == "#trust-safety"
    text = str(payload)
    assert "SOP impact(s) to review" in text and "https://tracker.example.com/impacts/" in text
    with Session(engine) as s:
        (row,) = s.exec(select(Delivery)).all()
        assert token not in row.target + row.channel + (row.response or "") + row.body
    # The daily summary is sent once a day per channel.
    assert not send_digest_summaries(engine=engine, settings=settings).sent


def test_a_long_summary_is_cut_to_the_service_limit_with_a_link() -> None:
    msg = Message(key="k", kind="digest", title="t", body="\n".join(f"- line {n}" for n in range(2000)),
                  link="https://tracker.example.com/")
    cut = msg.fitted(4000)
    assert len(cut) <= 4000 and cut.endswith("more: https://tracker.example.com/")


def test_secrets_are_resolved_only_when_sending_and_masked_when_shown() -> None:
    url = "slack://T1/B2/${TRACKER_X}/#c"
    assert template_problem(url) is None
    assert template_problem("${HOME}") is not None
    assert template_problem("not a url") is not None
    resolved = resolve(url, {"TRACKER_X": SECRET})
    assert SECRET in resolved.url and SECRET not in resolved.mask(f"failed {resolved.url}")
    assert SECRET not in mask_url(f"json://127.0.0.1:80/hooks/{SECRET}")
    assert SECRET not in mask_url(f"https://user:{SECRET}@example.com/")


def test_scraped_text_cannot_mention_everyone_or_forge_links() -> None:
    from tracker.notify.alerts import clean

    out = clean("<!channel> [Click](http://evil.example) `x`\x07\u202e" + "y" * 500, 100)
    assert "<!channel>" not in out and "](" not in out and "\x07" not in out and "\u202e" not in out
    assert len(out) == 100 and out.endswith("…")


def test_a_message_longer_than_the_service_allows_is_cut_with_a_link(settings: Settings, hook: Receiver) -> None:
    # Mattermost's incoming webhooks take Slack's payload; Apprise knows their limit is 4000 characters.
    from tracker.notify.apprise_channel import AppriseChannel

    msg = Message(key="k", kind="digest", title="Digest", body="\n".join(f"- item {n}" for n in range(3000)),
                  link="https://tracker.example.com/")
    answer = AppriseChannel().send(resolve(f"mmost://127.0.0.1:{hook.port}/{SECRET}"), msg, settings)
    assert SECRET not in answer
    (req,) = hook.requests
    assert req["path"] == f"/hooks/{SECRET}"
    text = req["json"]["text"]
    assert len(text) <= 4000 and text.endswith("more: https://tracker.example.com/") and "- item 1\n" in text


def test_the_email_channel_mails_through_the_tracker_smtp_settings(engine: Engine, session: Session,
                                                                    settings: Settings, hook: Receiver,
                                                                    smtp_sink: SmtpSink) -> None:
    seed_with_channels(session, ["mailto:ts-oncall@example.com", "${TRACKER_TEST_HOOK}"])
    mail = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": smtp_sink.port})
    report = send_digest_summaries(engine=engine, settings=mail)
    assert len(report.sent) == 2 and not report.failed
    (got,) = smtp_sink.received
    assert got.rcpt_tos == ["ts-oncall@example.com"]
    assert got.message["Subject"].startswith("Policy tracker digest ")
    assert "SOP impact(s) to review" in got.message.get_content()
    assert len(hook.requests) == 1  # the other channel of the team got its copy too
