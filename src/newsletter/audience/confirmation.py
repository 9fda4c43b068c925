"""The double opt-in email: "confirm your subscription", sent through the configured sender.

Sending happens on one background thread fed by a queue, so ``POST
/subscribe`` answers at once and in the same time whether or not an email
goes out (the answer must not reveal who is on the list, not even by its
timing), and a slow SMTP server never holds a web worker. A message that
cannot be handed over is reported on standard error without the address; the
person can ask again once the 15 minutes have passed.
"""

from __future__ import annotations

import email.utils
import queue
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Callable, Mapping

from newsletter.content.addresses import domain_of, sendable
from newsletter.content.model import Config
from newsletter.errors import NewsletterError
from newsletter.mail.headers import mailbox_value, unstructured_value
from newsletter.mail.message import WIRE_POLICY, message_bytes
from newsletter.mail.tokens import CONFIRM_MAX_AGE
from newsletter.senders import load_sender
from newsletter.senders.base import DeliveryError

CONFIRM_DAYS = round(CONFIRM_MAX_AGE / 86400)


def confirmation_message(config: Config, address: str, confirm_url: str, *, now: float | None = None) -> bytes:
    """The confirmation email for ``address`` (plain text, UTF-8), as wire bytes."""
    msg = EmailMessage(policy=WIRE_POLICY)
    msg.set_raw("Subject", unstructured_value("Subject", f"Confirm your subscription to {config.name}"))
    msg.set_raw("From", mailbox_value("From", config.sender_name, config.sender_email))
    msg.set_raw("To", mailbox_value("To", None, sendable(address)))
    if config.reply_to:
        msg.set_raw("Reply-To", mailbox_value("Reply-To", config.sender_name, config.reply_to))
    msg.set_raw("Date", email.utils.formatdate(now if now is not None else time.time(), usegmt=True))
    msg.set_raw("Message-ID", email.utils.make_msgid(domain=domain_of(config.sender_email)))
    msg.set_raw("Auto-Submitted", "auto-generated")  # RFC 3834: no auto-replies to this
    body = (
        f"Someone, hopefully you, asked to receive {config.name} at this address.\n"
        "\n"
        f"To confirm, open this link within {CONFIRM_DAYS} days:\n"
        "\n"
        f"{confirm_url}\n"
        "\n"
        "If it was not you, ignore this email: you will not be added, and nothing more will be sent.\n"
        "\n"
        "-- \n"
        f"{config.name}\n"
        f"{config.postal_address.strip()}\n"
    )
    msg.set_content(body, charset="utf-8", cte="quoted-printable")
    return message_bytes(msg)


class Mailer:
    """Hands confirmation emails to the configured sender, one at a time, off the request threads."""

    def __init__(self, config: Config, folder: Path, env: Mapping[str, str], *, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.sender = load_sender(config.sender or "maildir", config, folder, env)
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=10_000)
        self._thread = threading.Thread(target=self._run, name="confirmation-mailer", daemon=True)
        self._thread.start()

    def send(self, address: str, message: bytes) -> bool:
        """Queue one message; False when the queue is full (a flood: the sign-up is still recorded)."""
        try:
            self._queue.put_nowait((address, message))
            return True
        except queue.Full:
            self.log("confirmation email not queued: the queue is full")
            return False

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            address, message = item
            try:
                connection = self.sender.connect()
                try:
                    connection.deliver(self.config.sender_email, sendable(address), message)
                finally:
                    connection.close()
            except (NewsletterError, DeliveryError, OSError) as exc:
                # the reply or error only: the address stays out of the server's log
                self.log(f"confirmation email not sent ({self.config.sender}): {exc}")
