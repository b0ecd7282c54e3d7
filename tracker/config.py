"""Settings, read from TRACKER_* environment variables and an optional settings file.

A bad setting is a SettingsError whose message names the variable, the value given and what it
must be, so `tracker` can print it on one line (the CLI's error mapping) instead of pydantic's
field names or a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, cast, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "TRACKER_"
# The database backends the tracker is built and tested for (URL scheme, before any "+driver").
DATABASE_SCHEMES = ("sqlite", "postgresql")

DEFAULT_MAX_NOTE_CHARS = 10_000


class SettingsError(ValueError):
    """One or more settings are invalid; the message names each variable and what it must be."""


def _env_file() -> str | None:
    # TRACKER_SETTINGS_FILE points at a dotenv-style file; ./tracker.env is read when present.
    explicit = os.environ.get("TRACKER_SETTINGS_FILE")
    if explicit:
        return explicit
    return "tracker.env" if Path("tracker.env").is_file() else None


class Settings(BaseSettings):
    """Every setting of the tracker: the one list, which docs/settings.md is generated from."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    database_url: str = Field("sqlite:///tracker.db", description="SQLite file in the working directory, or "
                              "`postgresql+psycopg://user:pass@host/db`")

    # Crawling and politeness.
    concurrency: int = Field(8, ge=1, description="requests in flight overall")
    concurrency_per_domain: int = Field(2, ge=1, description="requests in flight per host")
    download_delay: float = Field(1.0, ge=0, description="seconds between requests to one host (randomised "
                                  "0.5–1.5×)")
    download_timeout: float = Field(30.0, gt=0, description="seconds per request")
    retry_times: int = Field(2, ge=0, description="retries of 429/5xx/timeouts")
    retry_backoff_base: float = Field(1.0, ge=0, description="first retry waits this long, then doubling (or "
                                      "`Retry-After`)")
    retry_backoff_max: float = Field(60.0, ge=0, description="longest wait before a retry")
    obey_robots: bool = Field(True, description="obey robots.txt (per source: `options.obey_robots`)")
    user_agent: str = Field("policy-tracker/0.1 (+https://github.com/; compliance monitoring)",
                            description="the User-Agent sent")
    max_page_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="larger responses are refused, "
                                "compressed or after decompression: the download stops and the source's error "
                                "names the limit and the size")
    max_blocks: int = Field(20_000, ge=1, description="blocks one version may hold; a page whose selected text "
                            "makes more fails with an error naming the setting, and the baseline stays")
    max_text_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="bytes of text (UTF-8) one version may "
                                "hold; past it the check fails the same way")
    browser_path: str = Field("/usr/bin/chromium", description="the Chromium that renders `render: browser` "
                              "sources (Debian's package: apt-get install chromium; never downloaded)")
    browser_concurrency: int = Field(2, ge=1, description="rendered pages open at once (each is a Chromium "
                                     "tab: memory, not bandwidth, is the limit)")
    browser_wait_timeout: float = Field(15.0, gt=0, description="seconds a rendered page may take to show its "
                                        "`wait_for` selector before the check fails")
    crawl_log_level: str = Field("WARNING", description="Scrapy's log level")
    record_batch: int = Field(100, ge=1, description="fetches recorded together in one transaction during a "
                              "crawl (a crash loses at most one batch of check results; the sources are checked "
                              "again next time)")
    record_interval: float = Field(0.5, ge=0, description="seconds a fetch waits at most for its batch to fill "
                                   "before it is recorded")

    # Workflow.
    actor: str | None = Field(None, description="who CLI commands act as in the audit trail when --by is not "
                              "given (an email)")
    default_review_days: int = Field(5, ge=0, description="days to act on an impact when an SOP does not say")
    effective_lead_days: int = Field(14, ge=0, description="an impact is due this many days before its "
                                     "change takes effect, when that is sooner than its review days")
    default_schedule: str = Field("6h", description="schedule of a source that does not say")
    max_note_chars: int = Field(DEFAULT_MAX_NOTE_CHARS, ge=1, description="longest note or dismissal reason, "
                                "in characters, in the forms, the JSON API (413) and the CLI (exit 2)")

    # Digest and mail.
    base_url: str = Field("http://127.0.0.1:8000", description="where the web UI is, for links in digests "
                          "and exports")
    smtp_host: str = Field("localhost", description="the SMTP server's host")
    smtp_port: int = Field(25, description="the SMTP server's port")
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        "none", description="`none`, `starttls` (upgrade a plain connection, usually port 587) or `tls` (TLS "
        "from the start, usually 465); certificates are verified")
    smtp_username: str | None = Field(None, description="log in to the SMTP server when a username is set")
    smtp_password: str | None = Field(None, description="the password for `TRACKER_SMTP_USERNAME`")
    smtp_timeout: float = Field(30.0, description="seconds per SMTP operation")
    mail_from: str = Field("policy-tracker@localhost", description="the sender address")
    digest_everything_to: list[str] = Field(default_factory=list, description="JSON list of addresses that get "
                                            "every impact, change and source, e.g. `[\"compliance@example.com\"]`")
    digest_send_empty: bool = Field(False, description="send a \"nothing new\" digest too")
    digest_lookback_days: int = Field(7, ge=1, description="how far back a first digest reaches for changes "
                                      "that touched no SOP")
    digest_at: str = Field("07:00", description="local time of the daily digest (in `TRACKER_TIMEZONE`)")
    digest_retry_seconds: float = Field(120.0, gt=0, description="seconds before the service retries a daily "
                                        "digest skipped because another run was sending (only that outcome; "
                                        "never past the next daily digest)")
    timezone: str = Field("UTC", description="IANA time zone of the digest's times, the daily digest and cron "
                          "schedules, e.g. `Europe/Berlin`")

    # Notifications (team channels, immediate alerts, feeds).
    notify_retries: int = Field(2, ge=0, le=10, description="retries of a failed channel delivery within one "
                                "send, before it is recorded as failed (a later send tries it again)")
    notify_backoff: float = Field(2.0, ge=0, description="seconds before the first retry of a channel delivery, "
                                  "then doubling; a recorded failure waits this long times 2^attempts "
                                  "(at most an hour) before a later send retries it")
    notify_max_attempts: int = Field(12, ge=1, description="attempts of one channel delivery in all before it "
                                     "stays failed (see `tracker notify log`)")
    notify_alert_hours: float = Field(24.0, gt=0, description="how old an impact may be and still get its "
                                      "immediate alert (older ones, e.g. when `alert: immediate` is first set, "
                                      "go to the digest only)")
    notify_failures_after: int = Field(1, ge=1, description="consecutive failed checks of a source before its "
                                       "teams' channels are told it is failing (and later that it recovered)")

    # Service.
    sources_file: str | None = Field(None, description="sources file the service syncs at start and whenever "
                                     "it changes")
    sops_file: str | None = Field(None, description="SOP file the service syncs at start and whenever it "
                                  "changes")
    crawl_timeout: float = Field(900.0, gt=0, description="seconds before a crawl batch is killed and its "
                                 "unchecked sources marked failed")
    schedule_spread: float = Field(300.0, ge=0, description="seconds over which the sources of one host are "
                                   "spread")
    service_poll_interval: float = Field(10.0, gt=0, description="seconds between heartbeats and "
                                         "file/database polls")
    shutdown_grace: float = Field(30.0, ge=0, description="seconds an in-flight crawl may finish after "
                                  "SIGTERM before it is killed")
    secret_key: str | None = Field(None, description="signs session cookies; unset: generated once and stored "
                                   "in the database")

    # Executors: where crawl batches run (docs/scaling.md).
    executor: Literal["local", "celery"] = Field("local", description="`local`: `tracker run` crawls due batches "
                                               "itself, one at a time; `celery`: it sends them to "
                                               "`TRACKER_BROKER_URL` and `tracker worker` processes crawl them")
    broker_url: str = Field("redis://127.0.0.1:6379/0", description="the Celery broker of `TRACKER_EXECUTOR=celery`: "
                            "`redis://HOST:6379/0` or `amqp://USER:PASS@HOST:5672//`")
    task_batch: int = Field(100, ge=1, description="most sources in one Celery crawl task (a host's due sources "
                            "are split into tasks of this size; one host's tasks run one at a time)")
    task_expires: float = Field(3600.0, gt=0, description="seconds a Celery crawl task may wait for a worker; an "
                                "expired task is discarded and its unchecked sources sent again")
    broker_visibility_timeout: float = Field(1200.0, gt=0, description="Redis broker: seconds before a task taken "
                                             "by a worker that vanished is delivered again (longer than "
                                             "`TRACKER_CRAWL_TIMEOUT`; RabbitMQ redelivers when the connection drops)")
    host_lease_seconds: float = Field(30.0, gt=1, description="a worker's claim on a host while it crawls it, "
                                      "renewed every third of it; a killed worker's host is free this long after")
    worker_heartbeat: float = Field(10.0, gt=0, description="seconds between a `tracker worker`'s heartbeats "
                                    "(`tracker status` calls it lost after three missed)")

    # Web UI (tracker serve).
    web_secure_cookies: bool = Field(False, description="always mark the session cookie `Secure` (set it behind "
                                     "HTTPS)")
    web_session_hours: float = Field(12.0, gt=0, description="how long a login lasts")
    web_login_max_failures: int = Field(5, ge=1, description="failed logins per client address and email "
                                        "within `TRACKER_WEB_LOGIN_WINDOW_SECONDS` before logins pause (HTTP 429)")
    web_login_window_seconds: int = Field(300, ge=1, description="the window failed logins are counted in "
                                          "(in the database, shared by every server process)")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a known time zone: give an IANA name such as UTC, Europe/Paris or "
                             "America/New_York") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0].lower() if ":" in value else ""
        if scheme not in DATABASE_SCHEMES:
            raise ValueError(f"the {scheme or 'missing'} scheme is not supported: use sqlite:///PATH or "
                             "postgresql+psycopg://USER:PASSWORD@HOST/NAME")
        return value


def _raw_values(env_file: str | None) -> dict[str, str]:
    """TRACKER_* values as given (the settings file, overridden by the environment)."""
    values: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        from dotenv import dotenv_values

        values.update({k.upper(): v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update({k.upper(): v for k, v in os.environ.items()})
    return values


def _json_list_problems(raw: dict[str, str]) -> list[str]:
    # pydantic-settings parses list settings as JSON and reports a failure without the variable.
    problems = []
    for name, info in Settings.model_fields.items():
        var = ENV_PREFIX + name.upper()
        if get_origin(info.annotation) is not list or var not in raw:
            continue
        try:
            ok = isinstance(json.loads(raw[var]), list)
        except ValueError:
            ok = False
        if not ok:
            problems.append(f"{var}={raw[var]!r}: must be a JSON list, e.g. [\"ops@example.com\"]")
    return problems


# Values never echoed in an error: a database URL may hold a password.
_SECRET = ("database_url", "smtp_password", "secret_key", "broker_url")


def _named(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "?"
        msg = str(err["msg"]).removeprefix("Value error, ")
        given = "" if name in _SECRET else f"={err.get('input')!r}"
        out.append(f"{ENV_PREFIX}{name.upper()}{given}: {msg}")
    return out


def get_settings(**overrides: object) -> Settings:
    """Build settings now (never at import time), from the environment and the settings file;
    raises SettingsError naming each bad variable."""
    env_file = _env_file()
    problems = _json_list_problems(_raw_values(env_file))
    if problems:
        raise SettingsError("; ".join(problems))
    # _env_file is pydantic-settings' own init keyword, which the class signature does not declare.
    factory: Any = Settings
    try:
        return cast(Settings, factory(_env_file=env_file, **overrides))
    except ValidationError as exc:
        raise SettingsError("; ".join(_named(exc))) from None
