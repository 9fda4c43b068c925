"""The sender protocol: a factory of connections that hand over one message at a time.

The send loop (``send.py``) owns retries, rate limiting, concurrency and the
send record; a sender only says what happened to each hand-over, by returning
or by raising one of the three ``DeliveryError`` kinds below.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Mapping, Protocol, runtime_checkable

from newsletter.content.model import Config


class DeliveryError(Exception):
    """A hand-over that did not succeed; ``reply`` is the server's words (never secrets)."""

    def __init__(self, reply: str, code: int | None = None) -> None:
        super().__init__(reply)
        self.reply = reply
        self.code = code


class TemporaryFailure(DeliveryError):
    """4xx, timeout, or a connection lost before the message was handed over: retry later."""


class PermanentFailure(DeliveryError):
    """5xx for this recipient: record the reply and never retry."""


class UncertainDelivery(DeliveryError):
    """The connection died after the message data was sent but before the server's reply:
    the message may or may not have been accepted."""


@runtime_checkable
class Connection(Protocol):
    """One open channel to the mail system; used by one worker thread at a time."""

    def deliver(self, envelope_from: str, recipient: str, message: bytes) -> str:
        """Hand over one message; return the server's acceptance reply, or raise DeliveryError."""
        ...

    def close(self) -> None:
        """Close politely (QUIT); never raises."""
        ...


@runtime_checkable
class Sender(Protocol):
    """A way of delivering messages, registered in the ``newsletter.senders`` entry-point group.

    Constructed as ``Sender(config=..., folder=..., env=...)``.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, *, config: Config, folder: Path, env: Mapping[str, str]) -> None: ...

    def describe(self) -> str:
        """Where messages go, for the confirmation summary (no secrets)."""
        ...

    def connect(self) -> Connection:
        """Open one connection; raise NewsletterError naming host:port when that fails."""
        ...
