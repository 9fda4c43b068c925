"""A real aiosmtpd server on 127.0.0.1 that records what it received and injects faults on request.

Faults are scripted per recipient address as a list of actions, consumed one per
attempt, so "greylist once, then accept" is ``["rcpt:451"]``.  Actions:

- ``mail:553`` (scripted on the envelope sender): refuse MAIL FROM
- ``rcpt:451`` / ``rcpt:550`` / ``rcpt:550-multi``: reply to RCPT TO with that code
- ``rcpt:421``: reply 421 and close the connection (the server is going away)
- ``rcpt:drop``: close the connection without replying
- ``rcpt:slow``: wait ``slow_seconds`` before replying (longer than the client's timeout)
- ``data:554`` / ``data:451``: reply to the end of the data with that code
- ``data:drop``: receive the whole message, then close without replying
- ``data:slow``: receive the whole message, then wait before replying
- ``data:354``: receive the whole message, then answer 354 (a broken server: neither yes nor no)
- ``data:trickle``: receive the whole message, then send the first line of a two-line 250 reply
  one byte every ``trickle_seconds`` (each byte well within the client's timeout, the reply not)

Every raw chunk each connection received is kept in ``wire`` (one bytes per
connection) so tests can assert on the bytes on the wire, not only on what the
server's parser made of them; ``chunks`` keeps each read as it arrived, so a
test can see what a client sent in one write (a small write arrives in one piece).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    """One message the server accepted (or received completely before a fault)."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    session: int


@dataclass
class FaultHandler:
    """aiosmtpd handler: records messages, applies scripted faults."""

    pipelining: bool = False
    chunking: bool = False  # offer CHUNKING (BDAT, RFC 3030); faults at "data" apply to BDAT LAST alike
    esmtp: bool = True
    slow_seconds: float = 2.0
    trickle_seconds: float = 0.25
    faults: dict[str, list[str]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    sessions: int = 0
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)  # each read from any connection, as it arrived
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _action(self, address: str, stage: str) -> str | None:
        with self.lock:
            queue = self.faults.get(address.lower())
            if queue and queue[0].startswith(stage + ":"):
                return queue.pop(0).split(":", 1)[1]
        return None

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.sessions += 1
        session.number = self.sessions
        session.host_name = hostname
        self.commands.append("EHLO")
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        if self.chunking:
            responses.insert(1, "250-CHUNKING")
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        self.sessions += 1
        session.number = self.sessions
        session.host_name = hostname
        self.commands.append("HELO")
        return f"250 {server.hostname}"

    async def handle_RSET(self, server, session, envelope):
        self.commands.append("RSET")
        return "250 OK"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.commands.append(f"MAIL {address} {' '.join(mail_options)}".rstrip())
        if self._action(address, "mail") == "553":  # scripted by the envelope sender's address
            return "553 5.7.1 <%s>: Sender address rejected: not owned by user" % address
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.commands.append(f"RCPT {address}")
        action = self._action(address, "rcpt")
        if action == "451":
            return "451 4.7.1 <%s>: Recipient address rejected: Greylisted, try again in 1 minute" % address
        if action == "550":
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if action == "550-multi":
            return "550-5.1.1 <%s>: no such user here\r\n550 5.1.1 see the postmaster" % address
        if action == "421":
            await server.push("421 4.3.2 mx.test Service shutting down, closing transmission channel")
            server.transport.close()
            return "250 never seen"
        if action == "drop":
            server.transport.close()
            return "250 never seen"
        if action == "slow":
            await asyncio.sleep(self.slow_seconds)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.commands.append("DATA-END")
        message = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content or b""), getattr(session, "number", 0))
        action = self._action(envelope.rcpt_tos[0], "data") if envelope.rcpt_tos else None
        if action == "554":
            return "554 5.7.1 Message rejected as spam"
        if action == "451":
            return "451 4.3.0 Error: queue file write error"
        self.received.append(message)
        if action == "drop":
            server.transport.close()
            return "250 never seen"
        if action == "slow":
            await asyncio.sleep(self.slow_seconds)
        if action == "354":
            return "354 End data with <CR><LF>.<CR><LF>"
        if action == "trickle":
            for byte in b"250-2.0.0 taking my time over this reply\r\n":
                if server.transport is None or server.transport.is_closing():
                    return "250 never seen"
                server.transport.write(bytes([byte]))
                await asyncio.sleep(self.trickle_seconds)
        return "250 2.0.0 Ok: queued as TEST%04d" % len(self.received)

    def connections(self) -> list[bytes]:
        """The raw bytes of each connection that sent anything (the controller's readiness probe sends nothing)."""
        return [bytes(w) for w in self.wire if w]  # type: ignore[attr-defined]

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        """aiosmtpd authenticator: remembers the credentials; accepts user/secret only."""
        self.logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == b"user" and auth_data.password == b"s3cret pass"
        return AuthResult(success=ok, handled=False)


class _RecordingSMTP(SMTP):
    """aiosmtpd's SMTP that keeps the raw bytes it received, and can pretend to be pre-ESMTP."""

    def connection_made(self, transport):
        self._wire = bytearray()
        self.event_handler.wire.append(self._wire)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._wire += data
        self.event_handler.chunks.append(data)
        super().data_received(data)

    async def smtp_BDAT(self, arg: str) -> None:
        """RFC 3030 BDAT, enough for the tests: read the chunk, and at LAST answer as DATA would
        (the handler's handle_DATA, so the same faults apply)."""
        size, _, last = arg.partition(" ")
        chunk = await self._reader.readexactly(int(size))
        self._chunks = getattr(self, "_chunks", b"") + chunk
        if last.strip().upper() != "LAST":
            await self.push("250 2.0.0 chunk of %d bytes received" % len(chunk))
            return
        content, self._chunks = self._chunks, b""
        if not self.envelope.rcpt_tos:
            self._set_post_data_state()
            await self.push("554 5.5.1 Error: no valid recipients")
            return
        self.envelope.original_content = self.envelope.content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push(status)

    async def smtp_EHLO(self, arg: str) -> None:
        if not self.event_handler.esmtp:
            await self.push("502 5.5.2 Error: command not recognized")
            return
        await super().smtp_EHLO(arg)


class FaultController(Controller):
    """A Controller on 127.0.0.1:<free port> with the recording server class."""

    def __init__(self, handler: FaultHandler, **smtp_kwargs) -> None:
        handler.wire = []  # type: ignore[attr-defined]
        smtp_kwargs.setdefault("authenticator", handler.authenticate)
        smtp_kwargs.setdefault("auth_require_tls", False)
        super().__init__(handler, hostname="127.0.0.1", port=free_port(), server_hostname="mx.test", **smtp_kwargs)

    def factory(self):
        return _RecordingSMTP(self.handler, **self.SMTP_kwargs)
