"""newsletter.yaml limits: numbers that are not numbers (NaN, infinity, 1e-300) are problems, not tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.content.config import check_config


def set_config(folder: Path, extra: str) -> None:
    path = folder / "newsletter.yaml"
    path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")


def errors(folder: Path) -> list[str]:
    _, problems = check_config(folder, {})
    return [str(p) for p in problems if p.is_error]


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "0", "1e-300", "5000"])
def test_smtp_timeout_must_be_a_sensible_number(folder: Path, value: str) -> None:
    set_config(folder, f"smtp:\n  host: 127.0.0.1\n  timeout: {value}\n")
    (message,) = errors(folder)
    assert message.endswith(f"error: smtp timeout must be a number of seconds from 0.05 to 3600, not '{value}'")


@pytest.mark.parametrize(("value", "shown"), [(".nan", "nan"), (".inf", "inf"), ("1e-300", "1e-300"), ("0", "0"), ("fast", "fast")])
def test_send_rate_in_the_config(folder: Path, value: str, shown: str) -> None:
    path = folder / "newsletter.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("send:\n", f"send:\n  rate: {value}\n", 1), encoding="utf-8")
    (message,) = errors(folder)
    assert message.endswith(f"error: send.rate must be a number of messages per second from 0.001 to 100000, not {shown}")


@pytest.mark.parametrize("value", ["nan", "inf", "1e-300", "-1"])
def test_rate_option_is_refused_with_a_message(folder: Path, value: str) -> None:
    result = CliRunner().invoke(
        main, ["send", "2026-11", "--to", str(folder / "subscribers.example.csv"), "--dry-run", f"--rate={value}", "--folder", str(folder)],
        env={"NEWSLETTER_SECRET": "s"},
    )
    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert f"error: --rate must be a number of messages per second from 0.001 to 100000, not {value}" in result.output


@pytest.mark.parametrize("url", ["https://notes.example.org/u x", 'https://notes.example.org/u"x', "https://notes.example.org/u>, <https://evil.example/x"])
def test_a_url_with_spaces_quotes_or_angle_brackets_is_refused_in_the_config(folder: Path, url: str) -> None:
    """Such a URL cannot go in a List-Unsubscribe header or an href as it is: refused where it is written,
    not later as a missing footer link (or an extra URL in the header)."""
    path = folder / "newsletter.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("url: https://notes.example.org/unsubscribe", f"url: '{url}'", 1), encoding="utf-8")
    (message,) = errors(folder)
    assert "unsubscribe.url cannot contain spaces, quotes, angle brackets or control characters" in message
    path.write_text(text.replace("archive_url: https://notes.example.org/archive/", f"archive_url: '{url}'", 1), encoding="utf-8")
    (message,) = errors(folder)
    assert "archive_url cannot contain spaces, quotes, angle brackets or control characters" in message
