"""Settings, read from TRACKER_* environment variables and an optional settings file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env_file() -> str | None:
    # TRACKER_SETTINGS_FILE points at a dotenv-style file; ./tracker.env is read when present.
    explicit = os.environ.get("TRACKER_SETTINGS_FILE")
    if explicit:
        return explicit
    return "tracker.env" if Path("tracker.env").is_file() else None


class Settings(BaseSettings):
    """Every setting of the tracker; see README "Settings"."""

    model_config = SettingsConfigDict(env_prefix="TRACKER_", extra="ignore")

    database_url: str = "sqlite:///tracker.db"

    # Crawling and politeness.
    concurrency: int = Field(8, ge=1, description="requests in flight overall")
    concurrency_per_domain: int = Field(2, ge=1, description="requests in flight per host")
    download_delay: float = Field(1.0, ge=0, description="seconds between requests to one host")
    download_timeout: float = Field(30.0, gt=0)
    retry_times: int = Field(2, ge=0)
    retry_backoff_base: float = Field(1.0, ge=0, description="first retry waits this long, doubling")
    retry_backoff_max: float = Field(60.0, ge=0)
    obey_robots: bool = True
    user_agent: str = "policy-tracker/0.1 (+https://github.com/; compliance monitoring)"
    max_page_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    crawl_log_level: str = "WARNING"
    record_batch: int = Field(100, ge=1, description="fetches recorded per transaction during a crawl")
    record_interval: float = Field(0.5, ge=0, description="seconds a fetch may wait for its batch to fill")

    # Workflow.
    default_review_days: int = Field(5, ge=0)
    effective_lead_days: int = Field(14, ge=0, description="an impact is due this many days before its "
                                     "change takes effect, when that is sooner than its review days")
    default_schedule: str = "6h"

    # Digest and mail.
    base_url: str = "http://127.0.0.1:8000"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout: float = 30.0
    mail_from: str = "policy-tracker@localhost"
    digest_everything_to: list[str] = Field(default_factory=list)
    digest_send_empty: bool = False
    digest_lookback_days: int = Field(7, ge=1, description="how far back a first digest reaches for changes")
    digest_at: str = "07:00"
    digest_retry_seconds: float = Field(120.0, gt=0, description="seconds before the service retries a digest "
                                        "skipped because another run was sending")
    timezone: str = "UTC"

    # Service.
    sources_file: str | None = None
    sops_file: str | None = None
    crawl_timeout: float = Field(900.0, gt=0, description="seconds before a crawl batch is killed")
    schedule_spread: float = Field(300.0, ge=0, description="seconds over which one host's sources are spread")
    service_poll_interval: float = Field(10.0, gt=0, description="seconds between heartbeats and file/DB polls")
    shutdown_grace: float = Field(30.0, ge=0, description="seconds an in-flight crawl may finish on shutdown")
    secret_key: str | None = None

    # Web UI (tracker serve).
    web_secure_cookies: bool = Field(False, description="always mark the session cookie Secure (behind HTTPS)")
    web_session_hours: float = Field(12.0, gt=0, description="a login lasts this long")
    web_login_max_failures: int = Field(5, ge=1, description="failed logins per IP and email before a pause")
    web_login_window_seconds: int = Field(300, ge=1, description="the window failed logins are counted in")


def get_settings(**overrides: object) -> Settings:
    """Build settings now (never at import time), from the environment and the settings file."""
    # _env_file is pydantic-settings' own init keyword, which the class signature does not declare.
    factory: Any = Settings
    return cast(Settings, factory(_env_file=_env_file(), **overrides))
