"""The sender protocol: a factory of connections that hand over one message at a time.

The send loop (``send.py``) owns retries, rate limiting, concurrency and the
send record; a sender only says what happened to each hand-over, by returning
or by raising one of the three ``DeliveryError`` kinds below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, ClassVar, Mapping, Protocol, Union, runtime_checkable

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


Outcome = Union[str, DeliveryError]
"""What became of one hand-over: the server's acceptance reply, or the DeliveryError."""


@runtime_checkable
class PipeliningConnection(Connection, Protocol):
    """Optionally, a connection that overlaps messages to save round trips (the smtp sender does).

    ``submit`` starts a hand-over whose outcome may come later.  The connection calls
    ``handing_over()`` just before the message's content leaves (the send record marks the
    recipient then) and ``done(outcome)`` once its outcome is known, exactly once each, in the
    calling thread, during this ``submit`` or a later ``submit``/``flush``.  ``flush`` returns
    once every submitted message is done.  A sender with only ``deliver`` works as before.

    A connection whose class sets ``takes_pieces = True`` is given the message as the sequence of
    byte pieces that make it up (joined, they are the message), so that it can reuse work on the
    pieces every copy shares; any other gets the message whole.
    """

    def submit(self, envelope_from: str, recipient: str, message: bytes, *,
               handing_over: Callable[[], None], done: Callable[[Outcome], None]) -> None:
        """Start handing over one message."""
        ...

    def flush(self) -> None:
        """Finish every message submitted so far."""
        ...


def pipelining(connection: Connection) -> PipeliningConnection:
    """The connection itself when it pipelines, else one that hands over one message at a time
    through ``deliver`` (what the send loop uses, so plug-ins need only ``deliver``)."""
    return connection if isinstance(connection, PipeliningConnection) else _OneAtATime(connection)


class _OneAtATime:
    """``submit`` for a connection that has only ``deliver``: the outcome comes at once."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def deliver(self, envelope_from: str, recipient: str, message: bytes) -> str:
        """The wrapped connection's ``deliver``."""
        return self.connection.deliver(envelope_from, recipient, message)

    def submit(self, envelope_from: str, recipient: str, message: bytes, *,
               handing_over: Callable[[], None], done: Callable[[Outcome], None]) -> None:
        """``deliver`` now; its reply or DeliveryError goes to ``done``."""
        handing_over()
        try:
            reply = self.connection.deliver(envelope_from, recipient, message)
        except DeliveryError as exc:
            done(exc)
        else:
            done(reply)

    def flush(self) -> None:
        """Nothing waits."""

    def close(self) -> None:
        """The wrapped connection's ``close``."""
        self.connection.close()


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
