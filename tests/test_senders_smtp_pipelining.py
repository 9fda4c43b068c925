"""The smtp sender's pipelined hand-over (issue 15): with DATA the next message's envelope rides
in the same write as the previous message's data; with CHUNKING (BDAT) each message goes whole
behind its envelope and its replies are read after the next one left.  Every reply still goes to
its own message.

Real aiosmtpd servers on 127.0.0.1 advertising PIPELINING (and CHUNKING, which the test server
adds), with faults scripted per recipient; assertions are on the outcome each message gets and on
what the server received.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.content.config import load_config
from newsletter.errors import SendError
from newsletter.senders import load_sender
from newsletter.senders.base import Outcome, PermanentFailure, PipeliningConnection, TemporaryFailure, UncertainDelivery, pipelining
from smtp_fault_server import FaultController, FaultHandler

FROM = "notes@example.org"


@pytest.fixture(params=[False, True], ids=["data", "bdat"])
def server(request):
    """PIPELINING, once with DATA and once with CHUNKING (BDAT) offered as well."""
    handler = FaultHandler(pipelining=True, chunking=request.param)
    controller = FaultController(handler)
    controller.start()
    yield controller
    controller.stop()


def connect(folder: Path, port: int):
    env = {"NEWSLETTER_SMTP_HOST": "127.0.0.1", "NEWSLETTER_SMTP_PORT": str(port), "NEWSLETTER_SMTP_SECURITY": "none"}
    return load_sender("smtp", load_config(folder, env=env), folder, env).connect()


def message(to: str) -> bytes:
    return f"From: {FROM}\r\nTo: {to}\r\nSubject: test\r\n\r\nHello {to}.\r\n".encode()


def send_all(connection: PipeliningConnection, recipients: list[str]) -> tuple[dict[str, Outcome], list[str]]:
    """Submit each recipient in turn, then flush; the outcomes, and the order of events
    ('handing <to>' just before content leaves, 'done <to>' when its outcome is known)."""
    outcomes: dict[str, Outcome] = {}
    events: list[str] = []
    for to in recipients:
        def done(outcome: Outcome, to: str = to) -> None:
            assert to not in outcomes, "an outcome is given once"
            outcomes[to] = outcome
            events.append(f"done {to}")
        connection.submit(FROM, to, message(to), handing_over=lambda to=to: events.append(f"handing {to}"), done=done)
    connection.flush()
    return outcomes, events


def sent(outcome: Outcome) -> bool:
    """The server accepted it (its 250 reply)."""
    return isinstance(outcome, str) and outcome.startswith("250 ")


def run(folder: Path, server, faults: dict[str, list[str]], recipients: list[str]) -> tuple[dict[str, Outcome], list[str]]:
    """Send ``recipients`` over one pipelining connection with the server's ``faults`` scripted."""
    server.handler.faults = faults
    connection = connect(folder, server.port)
    try:
        return send_all(connection, recipients)
    finally:
        connection.close()


def test_next_envelope_rides_with_the_previous_data(folder: Path, server) -> None:
    connection = connect(folder, server.port)
    assert isinstance(connection, PipeliningConnection) and pipelining(connection) is connection
    recipients = ["ada@example.org", "bob@example.org", "cy@example.org"]
    outcomes, events = send_all(connection, recipients)
    connection.close()
    assert all(sent(o) for o in outcomes.values()), outcomes
    assert [m.rcpt_tos for m in server.handler.received] == [[r] for r in recipients]
    assert [m.content for m in server.handler.received] == [message(r) for r in recipients]
    if server.handler.chunking:
        # the whole message right behind its envelope, no 354 to wait for (and no dot-stuffing)
        body = message("bob@example.org")
        assert any(b"RSET\r\nMAIL FROM:<notes@example.org>\r\nRCPT TO:<bob@example.org>\r\nBDAT %d LAST\r\n" % len(body) + body in c
                   for c in server.handler.chunks)
        # two on their way at once: a message's outcome is read after the next one has left
        assert events == ["handing ada@example.org", "handing bob@example.org", "done ada@example.org", "handing cy@example.org",
                          "done bob@example.org", "done cy@example.org"]
    else:
        # the data of one message and the next envelope arrived in one piece: no wait between them
        assert any(b"\r\n.\r\nMAIL FROM:<notes@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n" in c for c in server.handler.chunks)
        assert any(b"\r\n.\r\nMAIL FROM:<notes@example.org>\r\nRCPT TO:<cy@example.org>\r\nDATA\r\n" in c for c in server.handler.chunks)
        # a message is marked handed over before its content leaves, and done after
        assert events == ["handing ada@example.org", "done ada@example.org", "handing bob@example.org", "done bob@example.org",
                          "handing cy@example.org", "done cy@example.org"]


def test_5xx_for_the_next_envelope_is_that_message_s(folder: Path, server) -> None:
    outcomes, events = run(folder, server, {"gone@example.org": ["rcpt:550"]}, ["ada@example.org", "gone@example.org", "bob@example.org"])
    assert sent(outcomes["ada@example.org"])
    gone = outcomes["gone@example.org"]
    assert isinstance(gone, PermanentFailure) and gone.code == 550 and "<gone@example.org>: Recipient address rejected" in gone.reply
    assert sent(outcomes["bob@example.org"])
    assert [m.rcpt_tos for m in server.handler.received] == [["ada@example.org"], ["bob@example.org"]]
    if server.handler.chunking:  # every transaction starts with RSET: the one before may have failed
        assert server.handler.commands.count("RSET") == 3
    else:
        assert "handing gone@example.org" not in events  # its content never left
        assert server.handler.commands.count("RSET") == 1  # the refused transaction was reset before bob's


def test_drop_between_messages(folder: Path, server) -> None:
    """The server takes ada's message, then drops the connection at bob's RCPT: ada is sent.
    With DATA, bob's content never left (temporary) and cy goes over a new session.  With BDAT,
    bob's and cy's whole messages had left with no reply: uncertain, not resent blindly."""
    outcomes, events = run(folder, server, {"bob@example.org": ["rcpt:drop"]}, ["ada@example.org", "bob@example.org", "cy@example.org"])
    assert sent(outcomes["ada@example.org"])
    bob, cy = outcomes["bob@example.org"], outcomes["cy@example.org"]
    if server.handler.chunking:
        assert isinstance(bob, UncertainDelivery) and "may have been delivered" in bob.reply
        assert isinstance(cy, (UncertainDelivery, TemporaryFailure))  # uncertain if its write went out before the close was seen
        assert [m.rcpt_tos for m in server.handler.received] == [["ada@example.org"]]
    else:
        assert isinstance(bob, TemporaryFailure) and "before the message was handed over" in bob.reply
        assert sent(cy)
        assert [m.rcpt_tos for m in server.handler.received] == [["ada@example.org"], ["cy@example.org"]]
        assert [m.session for m in server.handler.received] == [1, 2]
        assert "handing bob@example.org" not in events


def test_drop_after_data_makes_that_message_uncertain(folder: Path, server) -> None:
    """ada's whole message arrives, then the server closes without replying: ada may have been
    delivered (uncertain).  bob: with DATA only its envelope went out (temporary); with BDAT its
    whole message had (uncertain)."""
    outcomes, _ = run(folder, server, {"ada@example.org": ["data:drop"]}, ["ada@example.org", "bob@example.org", "cy@example.org"])
    assert isinstance(outcomes["ada@example.org"], UncertainDelivery)
    if server.handler.chunking:
        assert isinstance(outcomes["bob@example.org"], UncertainDelivery)
    else:
        assert isinstance(outcomes["bob@example.org"], TemporaryFailure) and "before this message was handed over" in outcomes["bob@example.org"].reply
    assert sent(outcomes["cy@example.org"])


def test_421_mid_pipeline(folder: Path, server) -> None:
    """A 421 for bob's RCPT (the server shutting down): ada is sent, bob is a temporary failure
    with code 421 (the loop counts it as the server going away).  With DATA cy goes over a new
    session; with BDAT cy had been written behind bob, and the server took nothing after its 421:
    temporary, retried by the loop."""
    outcomes, _ = run(folder, server, {"bob@example.org": ["rcpt:421"]}, ["ada@example.org", "bob@example.org", "cy@example.org"])
    assert sent(outcomes["ada@example.org"])
    bob = outcomes["bob@example.org"]
    assert isinstance(bob, TemporaryFailure) and bob.code == 421 and "421 4.3.2" in bob.reply
    if server.handler.chunking:
        cy = outcomes["cy@example.org"]
        assert isinstance(cy, TemporaryFailure) and "the session ended before this message was handed over" in cy.reply
        assert [m.rcpt_tos for m in server.handler.received] == [["ada@example.org"]]
    else:
        assert sent(outcomes["cy@example.org"])
        assert [m.rcpt_tos for m in server.handler.received] == [["ada@example.org"], ["cy@example.org"]]
        assert server.handler.sessions == 2  # cy came over a new session


def test_data_reply_goes_to_its_message(folder: Path, server) -> None:
    """A 554 for ada's data, read in the same round trip as bob's envelope replies, is ada's."""
    outcomes, _ = run(folder, server, {"ada@example.org": ["data:554"]}, ["ada@example.org", "bob@example.org"])
    assert isinstance(outcomes["ada@example.org"], PermanentFailure) and outcomes["ada@example.org"].code == 554
    assert sent(outcomes["bob@example.org"])


def test_sender_refused_after_a_pipelined_message_still_reports_it(folder: Path, server) -> None:
    """A 5xx for MAIL FROM stops the send (SendError), after the previous message got its outcome."""
    refused = "bounces+x@example.org"  # a VERP sender the server refuses
    server.handler.faults = {refused: ["mail:553"]}
    connection = connect(folder, server.port)
    outcomes: dict[str, Outcome] = {}
    connection.submit(FROM, "ada@example.org", message("ada@example.org"), handing_over=lambda: None, done=lambda o: outcomes.setdefault("ada", o))
    with pytest.raises(SendError, match="refused the sender address bounces"):
        connection.submit(refused, "bob@example.org", message("bob@example.org"), handing_over=lambda: None, done=lambda o: outcomes.setdefault("bob", o))
        connection.flush()  # with BDAT the refusal is read here
    assert sent(outcomes["ada"]) and "bob" not in outcomes
    connection.close()


class OnlyDeliver:
    """A plug-in connection with only deliver() and close(), as before pipelining."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def deliver(self, envelope_from: str, recipient: str, message: bytes) -> str:
        self.calls.append(recipient)
        if recipient.startswith("no"):
            raise PermanentFailure("550 no")
        return "250 ok"

    def close(self) -> None:
        self.calls.append("close")


def test_a_deliver_only_connection_is_adapted() -> None:
    plain = OnlyDeliver()
    connection = pipelining(plain)
    assert not isinstance(plain, PipeliningConnection)
    outcomes, events = send_all(connection, ["ada@example.org", "no@example.org"])
    connection.close()
    assert outcomes["ada@example.org"] == "250 ok" and isinstance(outcomes["no@example.org"], PermanentFailure)
    assert events == ["handing ada@example.org", "done ada@example.org", "handing no@example.org", "done no@example.org"]
    assert plain.calls == ["ada@example.org", "no@example.org", "close"]


class _FailsAfterTheData:
    """The connection's real socket, except that a write carrying a message's final "." and the
    next envelope leaves only up to the "." and then fails, as when a server stops reading and
    the timeout fires on the last bytes.  No real server fails a write at an exact byte, so this
    one fault is injected; everything else goes through the real socket to the real server."""

    def __init__(self, sock) -> None:
        self._sock = sock

    def sendall(self, data: bytes) -> None:
        end = bytes(data).find(b"\r\n.\r\n")
        if end >= 0 and b"MAIL FROM" in bytes(data[end:]):
            self._sock.sendall(data[: end + 5])
            raise BrokenPipeError(32, "Broken pipe")
        self._sock.sendall(data)

    def send(self, data) -> int:
        """A partial write up to the "." (as a kernel may accept), then the failure on the rest."""
        if self._failing:
            raise BrokenPipeError(32, "Broken pipe")
        end = bytes(data).find(b"\r\n.\r\n")
        if end >= 0 and b"MAIL FROM" in bytes(data[end:]):
            self._failing = True
            return self._sock.send(data[: end + 5])
        return self._sock.send(data)

    _failing = False

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def test_a_write_failing_after_the_previous_message_s_final_dot_makes_it_uncertain(folder: Path) -> None:
    """The previous message's whole content had left when the write failed: the server may
    deliver it, so it is uncertain (never resent blindly), not a temporary failure to retry."""
    handler = FaultHandler(pipelining=True, chunking=False)
    controller = FaultController(handler)
    controller.start()
    try:
        connection = connect(folder, controller.port)
        connection._sock = _FailsAfterTheData(connection._sock)
        try:
            outcomes, _ = send_all(connection, ["ada@example.org", "bob@example.org"])
        finally:
            connection.close()
    finally:
        controller.stop()
    # ada's whole message, final "." included, reached the server (aiosmtpd drops a transaction
    # whose client then vanishes; a real MTA may well deliver it)
    assert b"Hello ada@example.org.\r\n.\r\n" in b"".join(bytes(w) for w in handler.wire)
    assert isinstance(outcomes["ada@example.org"], UncertainDelivery), outcomes["ada@example.org"]
    assert isinstance(outcomes["bob@example.org"], TemporaryFailure) and "before" in outcomes["bob@example.org"].reply
