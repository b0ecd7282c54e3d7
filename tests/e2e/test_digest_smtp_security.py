"""SMTP security modes against a real aiosmtpd: STARTTLS and TLS with a login, certificates verified."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_tracker
from tests.e2e.test_digest_send import ALICE, BASE, BOB, BOSS, CAROL, DAVE, build_world, env
from tests.unit.test_digest_helpers import SmtpSink, parts, running_smtp
from tracker.store.db import make_engine, upgrade

USERS = {"digest-bot": "s3cret pass"}


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the client trusts it through SSL_CERT_FILE)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(crt), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return crt, key


def server_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


@pytest.fixture
def world_url(sqlite_url: str) -> str:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    build_world(engine)
    engine.dispose()
    return sqlite_url


# With implicit TLS aiosmtpd cannot tell the socket is encrypted, so the test server allows AUTH "without TLS".
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_security_modes_with_login(world_url: str, cert: tuple[Path, Path], security: str) -> None:
    with running_smtp(SmtpSink(), ssl_context=server_context(cert), implicit_tls=security == "tls",
                      users=USERS) as sink:
        extra = {"TRACKER_SMTP_SECURITY": security, "TRACKER_SMTP_USERNAME": "digest-bot",
                 "SSL_CERT_FILE": str(cert[0])}
        wrong = run_tracker(world_url, "digest", "--send", **env(sink, **extra, TRACKER_SMTP_PASSWORD="nope"))
        assert wrong.returncode == 3 and "0 sent, 5 failed" in wrong.stdout
        assert "rejected the login of 'digest-bot'" in wrong.stdout and "TRACKER_SMTP_PASSWORD" in wrong.stdout
        assert sink.received == []

        out = run_tracker(world_url, "digest", "--send", **env(sink, **extra, TRACKER_SMTP_PASSWORD="s3cret pass"))
        assert out.returncode == 0, out.stdout + out.stderr
        assert sorted(r for m in sink.received for r in m.rcpt_tos) == sorted([ALICE, BOB, CAROL, DAVE, BOSS])
        text, html = parts(sink.to(DAVE)[0])
        assert f"{BASE}/sources" in text and f"{BASE}/sources" in html


def test_untrusted_certificate_is_refused(world_url: str, cert: tuple[Path, Path]) -> None:
    with running_smtp(SmtpSink(), ssl_context=server_context(cert), implicit_tls=True) as sink:
        out = run_tracker(world_url, "digest", "--send", **env(sink, TRACKER_SMTP_SECURITY="tls"))
        assert out.returncode == 3 and "CERTIFICATE_VERIFY_FAILED" in out.stdout
        assert sink.received == []
