"""`newsletter senders --check` and `send --dry-run` log in to a real SMTP server (aiosmtpd, STARTTLS + AUTH)
and send nothing; a maildir sender with SMTP settings around says so before sending."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from smtp_fault_server import FaultController, FaultHandler
from test_senders_smtp import _server_context, certificate  # noqa: F401 (a fixture, used by name)

PASSWORD = "s3cret pass"  # the one FaultHandler accepts for "user"
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@pytest.fixture
def server(certificate):
    """aiosmtpd requiring STARTTLS before AUTH, accepting user / PASSWORD."""
    handler = FaultHandler()
    controller = FaultController(handler, tls_context=_server_context(certificate), require_starttls=True, auth_required=True, auth_require_tls=True)
    controller.start()
    yield controller
    controller.stop()


def smtp_env(server, certificate, password: str = PASSWORD, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_") or k == "NEWSLETTER_CACHE_DIR"}  # the cache: the session's (conftest)
    env.update(NEWSLETTER_SMTP_HOST="127.0.0.1", NEWSLETTER_SMTP_PORT=str(server.port), NEWSLETTER_SMTP_SECURITY="starttls",
               NEWSLETTER_SMTP_USERNAME="user", NEWSLETTER_SMTP_PASSWORD=password, NEWSLETTER_SMTP_CAFILE=str(certificate[0]),
               NEWSLETTER_SECRET="a test secret that is long enough", **extra)
    return env


def newsletter(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "newsletter", *args], cwd=folder, env=env, input="", capture_output=True, text=True, timeout=60)


def test_check_logs_in_over_starttls_and_sends_nothing(folder: Path, server, certificate) -> None:
    proc = newsletter(folder, smtp_env(server, certificate), "senders", "--check", "smtp")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"smtp: connected to 127.0.0.1:{server.port}, STARTTLS, logged in as user; nothing sent\n"
    handler = server.handler
    assert handler.logins == [(b"user", PASSWORD.encode())]
    assert handler.received == [] and "MAIL" not in handler.commands and "RCPT" not in handler.commands
    assert b"STARTTLS\r\n" in handler.connections()[0] and PASSWORD.encode() not in handler.connections()[0]  # no login in clear


def test_check_uses_the_configured_sender(folder: Path, server, certificate) -> None:
    config = folder / "newsletter.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("sender: maildir", "sender: smtp"), encoding="utf-8")
    proc = newsletter(folder, smtp_env(server, certificate), "-C", str(folder), "senders", "--check")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("smtp: connected to 127.0.0.1:")


def test_check_with_a_wrong_password_fails_clearly_without_showing_it(folder: Path, server, certificate) -> None:
    proc = newsletter(folder, smtp_env(server, certificate, password="wrong-horse-battery"), "senders", "--check", "smtp")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: 127.0.0.1:{server.port} refused the login for user: 535")
    assert "hint: check smtp.username and NEWSLETTER_SMTP_PASSWORD" in proc.stderr
    assert "wrong-horse-battery" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
    assert server.handler.received == []


def test_dry_run_with_the_smtp_sender_logs_in_too(folder: Path, server, certificate) -> None:
    good = newsletter(folder, smtp_env(server, certificate), "send", "2026-11", "--to", "subscribers.example.csv", "--sender", "smtp", "--dry-run")
    assert good.returncode == 0, good.stderr
    assert f"sender checked: connected to 127.0.0.1:{server.port}, STARTTLS, logged in as user; nothing sent" in good.stdout
    assert server.handler.logins == [(b"user", PASSWORD.encode())] and server.handler.received == []
    bad = newsletter(folder, smtp_env(server, certificate, password="nope"), "send", "2026-11", "--to", "subscribers.example.csv",
                     "--sender", "smtp", "--dry-run")
    assert bad.returncode == 1
    assert f"error: 127.0.0.1:{server.port} refused the login for user: 535" in bad.stderr
    assert server.handler.received == [] and not (folder / "sends" / "2026-11.sqlite").exists()
    assert not list((folder / "sends").glob(".staging*")) if (folder / "sends").exists() else True


def test_maildir_with_smtp_settings_says_so_before_sending(folder: Path, server, certificate) -> None:
    proc = newsletter(folder, smtp_env(server, certificate), "send", "2026-11", "--to", "subscribers.example.csv", "--yes")
    assert proc.returncode == 0, proc.stderr
    note = (f"note: SMTP settings are present (NEWSLETTER_SMTP_HOST: 127.0.0.1) but the sender is maildir: messages go to the outbox/ folder, "
            "not to 127.0.0.1; set send.sender: smtp in newsletter.yaml (or use --sender smtp) to send through it")
    lines = proc.stdout.splitlines()
    assert note in lines
    assert lines.index(note) < lines.index("this run: 5 sent")  # in the summary, before anything goes
    assert len(list((folder / "outbox" / "new").iterdir())) == 5 and server.handler.received == []
    quiet = newsletter(folder, {k: v for k, v in smtp_env(server, certificate).items() if not k.startswith("NEWSLETTER_SMTP")},
                       "send", "2026-11", "--test", "me@example.org")
    assert "SMTP settings are present" not in quiet.stdout + quiet.stderr
