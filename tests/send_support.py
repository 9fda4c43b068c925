"""Helpers for the send tests: a real aiosmtpd receiver on 127.0.0.1 with scripted faults, and list files."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller

from smtp_fault_server import free_port  # noqa: F401  (one helper for every test server)




@dataclass
class Got:
    """A message the server accepted."""

    rcpt: str
    data: bytes
    at: float

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class Receiver:
    """aiosmtpd handler: keeps every accepted message; faults are consumed one per attempt per address.

    faults[address] is a list of: "451" (greylisting at RCPT), "550" (unknown user),
    "421" (421 at RCPT and disconnect), "drop" (disconnect at RCPT without a reply),
    "data-drop" (take the whole message, then disconnect without replying),
    "data-slow" (take the whole message, reply after ``slow`` seconds).
    ``delay`` slows every DATA reply (a slow server).
    """

    faults: dict[str, list[str]] = field(default_factory=dict)
    delay: float = 0.0
    slow: float = 1.5
    got: list[Got] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _next(self, address: str, stage: str) -> str | None:
        with self.lock:
            queue = self.faults.get(address.lower())
            if queue and (queue[0].startswith("data") == (stage == "data")):
                return queue.pop(0)
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        fault = self._next(address, "rcpt")
        if fault == "451":
            return f"451 4.7.1 <{address}>: Recipient address rejected: Greylisted"
        if fault == "550":
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if fault == "421":
            await server.push("421 4.3.2 Service shutting down")
            server.transport.close()
            return "250 unseen"
        if fault == "drop":
            server.transport.close()
            return "250 unseen"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        fault = self._next(envelope.rcpt_tos[0], "data")
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.got.append(Got(rcpt, bytes(envelope.original_content), time.monotonic()))
        if fault == "data-drop":
            server.transport.close()
            return "250 unseen"
        if fault == "data-slow":
            await asyncio.sleep(self.slow)
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 2.0.0 Ok: queued"

    def received(self) -> list[Got]:
        with self.lock:
            return list(self.got)


class Server:
    """A started aiosmtpd Controller on 127.0.0.1 (use as a context manager)."""

    def __init__(self, receiver: Receiver | None = None) -> None:
        self.receiver = receiver or Receiver()
        self.port = free_port()
        self.controller = Controller(self.receiver, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "Server":
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for the smtp sender pointing here (plain SMTP on loopback)."""
        return {
            "NEWSLETTER_SMTP_HOST": "127.0.0.1",
            "NEWSLETTER_SMTP_PORT": str(self.port),
            "NEWSLETTER_SMTP_SECURITY": "none",
            "NEWSLETTER_SECRET": "test secret",
            **extra,
        }


def write_list(path: Path, rows: list[tuple[str, str]], header: str = "email,name") -> Path:
    """A subscriber CSV."""
    lines = [header] + [f"{a},{n}" for a, n in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def people(n: int) -> list[tuple[str, str]]:
    return [(f"reader{i:04d}@example.org", f"Reader {i}") for i in range(n)]
