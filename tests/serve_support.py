"""`newsletter serve` as a real child process on a free loopback port, and a plain HTTP client for it."""

from __future__ import annotations

import email
import email.policy
import http.client
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from process_support import restore_ctrl_c
from smtp_fault_server import free_port

SECRET = "test secret, long and random enough: 7f3a9c0e51b2"


def configure_web(folder: Path, port: int, extra: str = "") -> str:
    """Point web.base_url at 127.0.0.1:port (dropping the example's unsubscribe.url); return the base URL."""
    path = folder / "newsletter.yaml"
    text = path.read_text(encoding="utf-8").split("\nweb:")[0].rstrip("\n") + "\n"  # replaces an earlier web: block
    text = text.replace("  url: https://notes.example.org/unsubscribe\n", "")
    base = f"http://127.0.0.1:{port}/"
    path.write_text(f"{text}web:\n  base_url: {base}\n{extra}", encoding="utf-8")
    return base


def serve_env(**extra: str) -> dict[str, str]:
    """The environment of a child: ours, with the secret and without a user's SMTP settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_") or k == "NEWSLETTER_CACHE_DIR"}  # the cache: the session's (conftest)
    env["NEWSLETTER_SECRET"] = SECRET
    env.update(extra)
    return env


@dataclass
class Served:
    """A running `newsletter serve`; ``stop()`` ends it with SIGTERM and returns its standard error."""

    folder: Path
    base: str
    proc: subprocess.Popen[str]
    log: Path  # its standard error: a pipe read only at the end would fill up and stall the server

    @property
    def port(self) -> int:
        return urlsplit(self.base).port or 80

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        return self.log.read_text(encoding="utf-8")


def start_serve(folder: Path, *, extra_config: str = "", env: dict[str, str] | None = None, port: int | None = None) -> Served:
    """Configure the folder for a free port and start `newsletter serve` there; wait until it listens."""
    port = port or free_port()
    base = configure_web(folder, port, extra_config)
    log = folder.parent / f"serve-{port}.log"
    with open(log, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "serve", "--port", str(port), "--folder", str(folder)],
            env=env or serve_env(), stdout=subprocess.PIPE, stderr=err, text=True, preexec_fn=restore_ctrl_c,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "serving ... on http://127.0.0.1:PORT/" once it listens
    if not line.startswith("serving"):
        proc.wait(timeout=10)
        raise AssertionError(f"newsletter serve did not start: {line}{log.read_text(encoding='utf-8')}")
    return Served(folder, base, proc, log)


@dataclass
class Reply:
    """One HTTP answer."""

    status: int
    headers: http.client.HTTPMessage
    body: str

    @property
    def title(self) -> str:
        match = re.search(r"<h1>(.*?)</h1>", self.body, re.S)
        return match.group(1).strip() if match else ""


def request(base: str, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
    """One request on a new connection (as a mail provider's one-click POST arrives)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read().decode("utf-8", "replace"))
    finally:
        conn.close()


def one_click(base: str, path_and_query: str) -> Reply:
    """The RFC 8058 POST exactly as Gmail sends it: urlencoded body List-Unsubscribe=One-Click, no cookies."""
    return request(base, "POST", path_and_query, body=b"List-Unsubscribe=One-Click",
                   headers={"Content-Type": "application/x-www-form-urlencoded"})


def outbox_messages(folder: Path, to: str | None = None) -> list[email.message.EmailMessage]:
    """Messages in the Maildir outbox (oldest first), optionally only those to ``to``."""
    new = folder / "outbox" / "new"
    found = []
    for path in sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns) if new.is_dir() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if to is None or message["To"].addresses[0].addr_spec.lower() == to.lower():
            found.append(message)
    return found  # type: ignore[return-value]


def wait_for_messages(folder: Path, to: str | None, count: int = 1, timeout: float = 20.0) -> list[email.message.EmailMessage]:
    """Wait until the outbox holds ``count`` messages to ``to`` (confirmations go out on a background thread)."""
    deadline = time.monotonic() + timeout
    while True:
        found = outbox_messages(folder, to)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def confirm_link(message: email.message.EmailMessage) -> str:
    """The confirmation URL in a confirmation email's text."""
    text = message.get_content()
    match = re.search(r"(http://127\.0\.0\.1:\d+/confirm\?t=[A-Za-z0-9_-]+)\s", text)
    assert match, text
    return match.group(1)


def unsubscribe_link(message: email.message.EmailMessage) -> str:
    """The https-or-loopback URL in an issue's List-Unsubscribe header."""
    match = re.search(r"<(http[^>]+/unsubscribe\?t=[A-Za-z0-9_-]+)>", str(message["List-Unsubscribe"]))
    assert match, message["List-Unsubscribe"]
    return match.group(1)
