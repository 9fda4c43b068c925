"""The ``web:`` block of newsletter.yaml: where `newsletter serve` is reachable, and what it changes in emails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.content.config import check_config, load_config


def _configure(folder: Path, web: str, *, keep_unsubscribe_url: bool = False) -> None:
    path = folder / "newsletter.yaml"
    text = path.read_text(encoding="utf-8").split("\nweb:")[0].rstrip("\n") + "\n"  # replaces an earlier web: block
    if not keep_unsubscribe_url:
        text = text.replace("  url: https://notes.example.org/unsubscribe\n", "")
    path.write_text(text + web, encoding="utf-8")


def _errors(folder: Path) -> list[str]:
    _config, problems = check_config(folder, {})
    return [str(p) for p in problems if p.is_error]


def test_base_url_makes_the_unsubscribe_link_and_gets_its_slash(folder: Path) -> None:
    _configure(folder, "web:\n  base_url: https://notes.example.org/letter\n")
    config = load_config(folder, {})
    assert config.web.base_url == "https://notes.example.org/letter/"
    assert config.unsubscribe_url == "https://notes.example.org/letter/unsubscribe"


def test_loopback_may_use_plain_http_but_nothing_else(folder: Path) -> None:
    _configure(folder, "web:\n  base_url: http://127.0.0.1:8080/\n")
    assert load_config(folder, {}).unsubscribe_url == "http://127.0.0.1:8080/unsubscribe"
    _configure(folder, "web:\n  base_url: http://notes.example.org/\n")
    (error,) = _errors(folder)
    assert error.startswith("newsletter.yaml:") and "web.base_url must start with https://" in error
    assert "plain http is only for 127.0.0.1 or localhost" in error


def test_a_different_unsubscribe_url_beside_base_url_is_an_error_at_its_line(folder: Path) -> None:
    _configure(folder, "web:\n  base_url: https://list.example.org/\n", keep_unsubscribe_url=True)
    lines = (folder / "newsletter.yaml").read_text(encoding="utf-8").splitlines()
    url_line = next(i for i, line in enumerate(lines, 1) if line.strip().startswith("url: https://notes.example.org/unsubscribe"))
    (error,) = _errors(folder)
    assert error.startswith(f"newsletter.yaml:{url_line}:")
    assert "unsubscribe.url is https://notes.example.org/unsubscribe but web.base_url makes the unsubscribe link https://list.example.org/unsubscribe" in error


def test_the_same_unsubscribe_url_is_fine(folder: Path) -> None:
    _configure(folder, "web:\n  base_url: https://notes.example.org/\n", keep_unsubscribe_url=True)
    assert _errors(folder) == []


@pytest.mark.parametrize(
    ("web", "message"),
    [
        ("web:\n  base_url: notes.example.org\n", "web.base_url must be an address like https://notes.example.org/"),
        ("web:\n  base_url: https://notes.example.org/?x=1\n", "web.base_url must be an address like"),
        ("web:\n  base_url: https://notes.example.org/\n  trusted_proxy: my-proxy\n", "web.trusted_proxy must be the IP address of your reverse proxy"),
        ("web:\n  base_url: https://notes.example.org/\n  subscribe_limit: 0\n", "web.subscribe_limit must be a whole number"),
        ("web:\n  base_url: https://notes.example.org/\n  consent_text: [a]\n", "web.consent_text must be the text a subscriber agrees to"),
        ("web: https://notes.example.org/\n", "'web' must be a mapping"),
    ],
)
def test_bad_web_settings_are_reported(folder: Path, web: str, message: str) -> None:
    _configure(folder, web)
    errors = _errors(folder)
    assert any(message in e for e in errors), errors


def test_check_command_reports_the_conflict_without_a_traceback(folder: Path) -> None:
    _configure(folder, "web:\n  base_url: https://list.example.org/\n", keep_unsubscribe_url=True)
    result = subprocess.run([sys.executable, "-m", "newsletter", "check", "--folder", str(folder)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "error: unsubscribe.url is https://notes.example.org/unsubscribe but web.base_url" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_sent_emails_link_to_the_endpoint(folder: Path) -> None:
    """The List-Unsubscribe header and the footer link of a built email point at <base_url>unsubscribe?t=."""
    import email
    import email.policy

    _configure(folder, "web:\n  base_url: https://list.example.org/n/\n")
    env = {"NEWSLETTER_SECRET": "k" * 32}
    from newsletter.delivery.send import SendOptions, execute, prepare

    plan = prepare(folder, SendOptions(issue="2026-10", to=None, test=("reader@example.org",)), env=env)
    execute(plan)
    (sent,) = list((folder / "outbox" / "new").iterdir())
    message = email.message_from_bytes(sent.read_bytes(), policy=email.policy.default)
    header = str(message["List-Unsubscribe"])
    assert "<https://list.example.org/n/unsubscribe?t=" in header
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = message.get_body(("html",)).get_content()
    assert 'href="https://list.example.org/n/unsubscribe?t=' in html
