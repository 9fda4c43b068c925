"""The smtp sender against real aiosmtpd servers on 127.0.0.1, with injected faults.

Assertions are on what the server received (parsed envelopes and the raw bytes
on the wire) and on the exact outcome the send loop would see.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.mail.build import render_issue
from newsletter.content.config import load_config
from newsletter.errors import ConfigError, SendError
from newsletter.senders import load_sender
from newsletter.senders.base import Connection, PermanentFailure, Sender, TemporaryFailure, UncertainDelivery
from newsletter.senders.smtp import SMTPSender, WireCache, is_loopback, wire_data, wire_pieces
from smtp_fault_server import FaultController, FaultHandler, free_port
from terminal_support import run_on_terminal

# aiosmtpd warns when AUTH is allowed without TLS; on loopback that is exactly what we test.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

FROM = "notes@example.org"
PASSWORD = "s3cret pass"


def smtp_env(port: int, **extra: str) -> dict[str, str]:
    env = {"NEWSLETTER_SMTP_HOST": "127.0.0.1", "NEWSLETTER_SMTP_PORT": str(port), "NEWSLETTER_SMTP_SECURITY": "none"}
    env.update(extra)
    return env


def make_sender(folder: Path, env: dict[str, str], timeout: float | None = None) -> SMTPSender:
    """The sender as the CLI makes it: config from newsletter.yaml + environment, through the registry."""
    if timeout is not None:
        with (folder / "newsletter.yaml").open("a", encoding="utf-8") as handle:
            handle.write(f"smtp:\n  timeout: {timeout}\n")
    sender = load_sender("smtp", load_config(folder, env=env), folder, env)
    assert isinstance(sender, SMTPSender) and isinstance(sender, Sender)
    return sender


@pytest.fixture
def issue_bytes(folder: Path) -> bytes:
    """The example issue's real message bytes (CRLF, quoted-printable, lines starting with '.')."""
    return render_issue(folder, "2026-11")[2]


@pytest.fixture(params=[False, True], ids=["plain", "pipelining"])
def server(request):
    """An aiosmtpd server, once without and once with PIPELINING advertised."""
    handler = FaultHandler(pipelining=request.param)
    controller = FaultController(handler)
    controller.start()
    yield controller
    controller.stop()


def small_message(to: str, body: str = "Hello.\r\n") -> bytes:
    return f"From: {FROM}\r\nTo: {to}\r\nSubject: test\r\n\r\n{body}".encode()


def test_delivers_many_messages_over_one_session_byte_identical(folder, server, issue_bytes):
    sender = make_sender(folder, smtp_env(server.port))
    connection = sender.connect()
    assert isinstance(connection, Connection)
    recipients = [f"reader{i}@example.com" for i in range(5)]
    replies = [connection.deliver(FROM, to, issue_bytes) for to in recipients]
    connection.close()

    handler = server.handler
    assert replies == [f"250 2.0.0 Ok: queued as TEST{i:04d}" for i in range(1, 6)]
    assert [m.rcpt_tos for m in handler.received] == [[to] for to in recipients]
    assert all(m.mail_from == FROM for m in handler.received)
    assert all(m.content == issue_bytes for m in handler.received)  # dot-stuffing undone exactly
    assert handler.sessions == 1 and len(handler.connections()) == 1
    # on the wire: the lines that start with "." went out doubled, the message ended with CRLF.CRLF
    raw = handler.connections()[0]
    assert issue_bytes.count(b"\r\n.") > 0 and raw.count(b"\r\n..") == 5 * issue_bytes.count(b"\r\n.")
    assert raw.count(b"\r\n.\r\n") == 5
    assert raw.endswith(b"QUIT\r\n")


def test_pipelining_sends_mail_rcpt_data_in_one_write(folder, server):
    sender = make_sender(folder, smtp_env(server.port))
    with sender.connect() as connection:
        connection.deliver(FROM, "ada@example.org", small_message("ada@example.org"))
    raw = server.handler.connections()[0]
    group = b"MAIL FROM:<notes@example.org>\r\nRCPT TO:<ada@example.org>\r\nDATA\r\n"
    assert group in raw
    if server.handler.pipelining:
        # it arrived as one chunk: the server saw the three commands together
        assert raw.index(group) == raw.index(b"MAIL FROM")
    assert b"BODY=8BITMIME" not in raw  # the message is 7-bit


def test_message_with_lone_dot_lines_and_bare_lf_arrives_intact(folder, server):
    body = ".\r\n..\r\n.starts with a dot\r\nlast line without CRLF"
    message = small_message("ada@example.org", body)
    sender = make_sender(folder, smtp_env(server.port))
    with sender.connect() as connection:
        connection.deliver(FROM, "ada@example.org", message)
        connection.deliver(FROM, "bob@example.org", b"Subject: lf\nTo: bob@example.org\n\nline\n.\nend\n")
    first, second = server.handler.received
    assert first.content == message + b"\r\n"
    assert second.content == b"Subject: lf\r\nTo: bob@example.org\r\n\r\nline\r\n.\r\nend\r\n"


def test_smuggled_end_of_data_inside_a_message_stays_inside(folder, server):
    # "\n.\r\n" ends the data on lenient servers unless the dot is doubled (SMTP smuggling)
    smuggled = b"MAIL FROM:<evil@example.net>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: forged\r\n\r\nx\r\n.\r\n"
    message = b"From: notes@example.org\r\nSubject: test\r\n\r\nhello\n.\r\n" + smuggled + b"bye\r\n"
    sender = make_sender(folder, smtp_env(server.port))
    with sender.connect() as connection:
        connection.deliver(FROM, "ada@example.org", message)
    assert [m.rcpt_tos for m in server.handler.received] == [["ada@example.org"]]
    assert not any("evil" in c or "victim" in c for c in server.handler.commands)
    assert server.handler.received[0].content.endswith(b"bye\r\n")
    # on the wire (what a lenient server would act on): the only "<LF>.<CRLF>" is the real end of data
    raw = server.handler.connections()[0]
    assert b"hello\n..\r\nMAIL FROM:<evil" in raw and raw.count(b"\n.\r\n") == 1


def test_wire_data_dot_stuffing():
    assert wire_data(b".a\r\nb\r\n.\r\n..c") == b"..a\r\nb\r\n..\r\n...c\r\n.\r\n"
    assert wire_data(b"a\r\n") == b"a\r\n.\r\n"
    assert wire_data(b"a\n.b\n") == b"a\r\n..b\r\n.\r\n"  # LF-only text is converted
    assert wire_data(b"S: x\r\n\nbody\n") == b"S: x\r\n\r\nbody\r\n.\r\n"  # CRLF header, LF body
    assert wire_data(b"S: x\r\n\r\nmid\n.\r\n") == b"S: x\r\n\r\nmid\n..\r\n.\r\n"  # a stray LF: its dot doubled


_PIECE = st.lists(st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"a", b" ", b"\r\n\r\n", b"\xc3\xa9", b"..", b"\n."]), max_size=8).map(b"".join)


@settings(max_examples=600, deadline=None)
@given(st.lists(_PIECE, max_size=8), st.sampled_from([1, 3, 256]))
def test_wire_pieces_are_wire_data_of_the_whole(pieces, min_size):
    # the pieces path (shared pieces dot-stuffed once per connection) against the whole message's
    cache = WireCache(min_size)
    whole = b"".join(pieces)
    for _ in range(2):  # the second time from the cache
        stuffed, ascii_only = wire_pieces(pieces, cache)
        assert b"".join(stuffed) == wire_data(whole)
        assert ascii_only == whole.isascii()


def test_message_given_as_pieces_arrives_byte_identical(folder, server, issue_bytes):
    # a dot starting a piece after a piece that ended a line, and one inside a piece
    head, body = issue_bytes.split(b"\r\n\r\n", 1)
    pieces = [head + b"\r\n\r\n", b".dot at a piece's start\r\n", body[:500], b"x\r\n.inside\r\n", body[500:]]
    sender = make_sender(folder, smtp_env(server.port))
    with sender.connect() as connection:
        for to in ("ada@example.org", "bob@example.org"):  # the second one's shared pieces come from the cache
            connection.deliver(FROM, to, pieces)
    assert [m.content for m in server.handler.received] == [b"".join(pieces)] * 2
    raw = server.handler.connections()[0]
    assert raw.count(b"\r\n..dot at a piece's start\r\n") == 2 and raw.count(b"\r\n..inside") == 2


def test_550_is_permanent_and_the_session_carries_on(folder, server):
    server.handler.faults = {"gone@example.org": ["rcpt:550"], "multi@example.org": ["rcpt:550-multi"]}
    sender = make_sender(folder, smtp_env(server.port))
    connection = sender.connect()
    connection.deliver(FROM, "ada@example.org", small_message("ada@example.org"))
    with pytest.raises(PermanentFailure) as failure:
        connection.deliver(FROM, "gone@example.org", small_message("gone@example.org"))
    assert failure.value.code == 550
    assert failure.value.reply == f"127.0.0.1:{server.port}: 550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown"
    with pytest.raises(PermanentFailure) as failure:
        connection.deliver(FROM, "multi@example.org", small_message("multi@example.org"))
    assert failure.value.reply.endswith("550 5.1.1 <multi@example.org>: no such user here\n5.1.1 see the postmaster")
    connection.deliver(FROM, "bob@example.org", small_message("bob@example.org"))
    connection.close()
    assert [m.rcpt_tos for m in server.handler.received] == [["ada@example.org"], ["bob@example.org"]]
    assert server.handler.sessions == 1
    # the failed transaction was reset before the next one
    commands = server.handler.commands
    assert commands[commands.index("RCPT bob@example.org") - 2] == "RSET"


def test_451_greylisting_is_temporary_and_a_retry_succeeds(folder, server):
    server.handler.faults = {"grey@example.org": ["rcpt:451"]}
    sender = make_sender(folder, smtp_env(server.port))
    with sender.connect() as connection:
        with pytest.raises(TemporaryFailure) as failure:
            connection.deliver(FROM, "grey@example.org", small_message("grey@example.org"))
        assert failure.value.code == 451 and "Greylisted" in failure.value.reply
        assert connection.deliver(FROM, "grey@example.org", small_message("grey@example.org")).startswith("250 ")
    assert [m.rcpt_tos for m in server.handler.received] == [["grey@example.org"]]


def test_421_and_disconnect_then_the_same_connection_reconnects(folder, server):
    server.handler.faults = {"busy@example.org": ["rcpt:421"]}
    sender = make_sender(folder, smtp_env(server.port))
    connection = sender.connect()
    connection.deliver(FROM, "ada@example.org", small_message("ada@example.org"))
    with pytest.raises(TemporaryFailure) as failure:
        connection.deliver(FROM, "busy@example.org", small_message("busy@example.org"))
    assert failure.value.code == 421 and "Service shutting down" in failure.value.reply
    assert f"127.0.0.1:{server.port}" in failure.value.reply
    # the loop calls deliver again on the same object: it reconnects by itself
    connection.deliver(FROM, "busy@example.org", small_message("busy@example.org"))
    connection.deliver(FROM, "bob@example.org", small_message("bob@example.org"))
    connection.close()
    assert server.handler.sessions == 2
    assert [(m.rcpt_tos, m.session) for m in server.handler.received] == [
        (["ada@example.org"], 1), (["busy@example.org"], 2), (["bob@example.org"], 2)]


def test_drop_before_the_data_is_temporary(folder, server):
    server.handler.faults = {"drop@example.org": ["rcpt:drop"]}
    sender = make_sender(folder, smtp_env(server.port))
    with sender.connect() as connection:
        with pytest.raises(TemporaryFailure) as failure:
            connection.deliver(FROM, "drop@example.org", small_message("drop@example.org"))
        assert "before the message was handed over" in failure.value.reply
        connection.deliver(FROM, "drop@example.org", small_message("drop@example.org"))
    assert [m.rcpt_tos for m in server.handler.received] == [["drop@example.org"]]


def test_drop_after_the_final_dot_is_uncertain(folder, server):
    server.handler.faults = {"maybe@example.org": ["data:drop"]}
    sender = make_sender(folder, smtp_env(server.port))
    with sender.connect() as connection:
        with pytest.raises(UncertainDelivery) as failure:
            connection.deliver(FROM, "maybe@example.org", small_message("maybe@example.org"))
        assert f"127.0.0.1:{server.port}" in failure.value.reply and "may have been delivered" in failure.value.reply
        connection.deliver(FROM, "ada@example.org", small_message("ada@example.org"))
    # the server did receive the whole message: this is why it must not be blindly resent
    assert [m.rcpt_tos for m in server.handler.received] == [["maybe@example.org"], ["ada@example.org"]]


def test_slow_server_times_out_temporary_before_data_uncertain_after(folder, server):
    server.handler.slow_seconds = 1.5
    server.handler.faults = {"slow@example.org": ["rcpt:slow"], "slowdata@example.org": ["data:slow"]}
    sender = make_sender(folder, smtp_env(server.port), timeout=0.4)
    with sender.connect() as connection:
        with pytest.raises(TemporaryFailure) as failure:
            connection.deliver(FROM, "slow@example.org", small_message("slow@example.org"))
        assert "timed out" in failure.value.reply
        with pytest.raises(UncertainDelivery) as uncertain:
            connection.deliver(FROM, "slowdata@example.org", small_message("slowdata@example.org"))
        assert "timed out" in uncertain.value.reply
        connection.deliver(FROM, "ada@example.org", small_message("ada@example.org"))
    assert [m.rcpt_tos for m in server.handler.received] == [["slowdata@example.org"], ["ada@example.org"]]


def test_rejected_data_is_permanent_or_temporary_by_code(folder, server):
    server.handler.faults = {"spam@example.org": ["data:554"], "full@example.org": ["data:451"]}
    sender = make_sender(folder, smtp_env(server.port))
    with sender.connect() as connection:
        with pytest.raises(PermanentFailure) as permanent:
            connection.deliver(FROM, "spam@example.org", small_message("spam@example.org"))
        with pytest.raises(TemporaryFailure) as temporary:
            connection.deliver(FROM, "full@example.org", small_message("full@example.org"))
        connection.deliver(FROM, "ada@example.org", small_message("ada@example.org"))
    assert permanent.value.code == 554 and temporary.value.code == 451
    assert [m.rcpt_tos for m in server.handler.received] == [["ada@example.org"]]


def test_server_gone_mid_send_is_temporary_naming_host_port(folder):
    handler = FaultHandler()
    controller = FaultController(handler)
    controller.start()
    sender = make_sender(folder, smtp_env(controller.port))
    connection = sender.connect()
    connection.deliver(FROM, "ada@example.org", small_message("ada@example.org"))
    controller.stop()
    with pytest.raises(TemporaryFailure) as failure:
        connection.deliver(FROM, "bob@example.org", small_message("bob@example.org"))
    assert failure.value.reply.startswith(f"127.0.0.1:{controller.port}: ")
    # the next attempt tries to reconnect, and says why it could not
    with pytest.raises(TemporaryFailure) as failure:
        connection.deliver(FROM, "bob@example.org", small_message("bob@example.org"))
    assert failure.value.reply == f"127.0.0.1:{controller.port}: connection refused (is the server running on that port?)"
    assert failure.value.code is None
    connection.close()


def test_connection_refused_at_connect_names_host_port(folder):
    port = free_port()
    sender = make_sender(folder, smtp_env(port))
    with pytest.raises(SendError) as error:
        sender.connect()
    assert str(error.value).startswith(f"cannot connect to 127.0.0.1:{port}: connection refused")


def test_envelope_injection_is_refused_before_anything_is_sent(folder, server):
    sender = make_sender(folder, smtp_env(server.port))
    with sender.connect() as connection:
        with pytest.raises(PermanentFailure):
            connection.deliver(FROM, "a@example.org>\r\nRCPT TO:<evil@example.org", small_message("x"))
    assert not any(b"evil" in raw for raw in server.handler.connections())
    assert server.handler.received == []


def test_helo_fallback_for_a_server_without_esmtp(folder):
    handler = FaultHandler(esmtp=False)
    controller = FaultController(handler)
    controller.start()
    try:
        sender = make_sender(folder, smtp_env(controller.port))
        with sender.connect() as connection:
            connection.deliver(FROM, "ada@example.org", small_message("ada@example.org"))
    finally:
        controller.stop()
    raw = handler.connections()[0]
    assert b"EHLO " in raw and b"HELO " in raw
    assert handler.commands[:1] == ["HELO"] and [m.rcpt_tos for m in handler.received] == [["ada@example.org"]]


# -- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_on_loopback_with_password_from_the_environment(folder, mechanism):
    other = {"PLAIN": ["LOGIN"], "LOGIN": ["PLAIN"]}[mechanism]
    handler = FaultHandler()
    controller = FaultController(handler, auth_required=True, auth_exclude_mechanism=other)
    controller.start()
    try:
        env = smtp_env(controller.port, NEWSLETTER_SMTP_USERNAME="user", NEWSLETTER_SMTP_PASSWORD=PASSWORD)
        sender = make_sender(folder, env)
        assert sender.describe() == f"SMTP 127.0.0.1:{controller.port} (none, as user)"
        with sender.connect() as connection:
            connection.deliver(FROM, "ada@example.org", small_message("ada@example.org"))
    finally:
        controller.stop()
    assert handler.logins == [(b"user", PASSWORD.encode())]
    assert f"AUTH {mechanism}".encode() in handler.connections()[0]
    assert [m.rcpt_tos for m in handler.received] == [["ada@example.org"]]


def test_wrong_password_is_a_clear_error_without_the_password(folder):
    handler = FaultHandler()
    controller = FaultController(handler, auth_required=True)
    controller.start()
    try:
        env = smtp_env(controller.port, NEWSLETTER_SMTP_USERNAME="user", NEWSLETTER_SMTP_PASSWORD="wrong-horse-battery")
        with pytest.raises(SendError) as error:
            make_sender(folder, env).connect()
    finally:
        controller.stop()
    text = str(error.value)
    assert f"127.0.0.1:{controller.port} refused the login for user: 535" in text
    assert "wrong-horse-battery" not in text and "NEWSLETTER_SMTP_PASSWORD" in text


def test_password_prompt_is_asked_once_for_all_connections(folder):
    handler = FaultHandler()
    controller = FaultController(handler, auth_required=True)
    controller.start()
    asked = []
    try:
        sender = make_sender(folder, smtp_env(controller.port, NEWSLETTER_SMTP_USERNAME="user"))
        sender.password_prompt = lambda: asked.append(1) or PASSWORD
        for _ in range(3):
            sender.connect().close()
    finally:
        controller.stop()
    assert asked == [1] and len(handler.logins) == 3


def test_password_is_asked_on_a_terminal_without_echo(folder):
    """A real pseudo-terminal: the child process asks, we type, nothing is echoed."""
    handler = FaultHandler()
    controller = FaultController(handler, auth_required=True)
    controller.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_") or k == "NEWSLETTER_CACHE_DIR"}  # the cache: the session's (conftest)
    env.update(smtp_env(controller.port, NEWSLETTER_SMTP_USERNAME="user"))
    script = (
        "import sys\nfrom pathlib import Path\nfrom newsletter.content.config import load_config\nfrom newsletter.senders import load_sender\n"
        f"folder = Path({str(folder)!r})\nenv = {env!r}\n"
        "sender = load_sender('smtp', load_config(folder, env=env), folder, env)\n"
        "with sender.connect() as connection:\n"
        "    print('REPLY', connection.deliver('notes@example.org', 'ada@example.org', b'Subject: x\\r\\n\\r\\nx\\r\\n'))\n"
    )
    prompt = f"SMTP password for user at 127.0.0.1:{controller.port}: ".encode()
    try:
        code, output = run_on_terminal([], answers=[(prompt, PASSWORD.encode())], env=env, timeout=30, python_args=["-c", script])
    finally:
        controller.stop()
    assert prompt in output, output
    assert code == 0, output
    assert b"REPLY 250 " in output and PASSWORD.encode() not in output  # typed, not echoed
    assert handler.logins == [(b"user", PASSWORD.encode())]


def test_no_password_and_no_prompt_says_what_to_set(folder):
    handler = FaultHandler()
    controller = FaultController(handler, auth_required=True)
    controller.start()
    try:
        with pytest.raises(SendError, match="set NEWSLETTER_SMTP_PASSWORD"):
            make_sender(folder, smtp_env(controller.port, NEWSLETTER_SMTP_USERNAME="user")).connect()
    finally:
        controller.stop()


def test_login_in_clear_to_a_remote_host_is_refused_before_connecting(folder):
    # 192.0.2.1 is TEST-NET-1; the refusal happens while constructing the sender, so nothing is sent.
    env = {"NEWSLETTER_SMTP_HOST": "192.0.2.1", "NEWSLETTER_SMTP_PORT": "25", "NEWSLETTER_SMTP_SECURITY": "none",
           "NEWSLETTER_SMTP_USERNAME": "user", "NEWSLETTER_SMTP_PASSWORD": PASSWORD}
    with pytest.raises(ConfigError) as error:
        load_sender("smtp", load_config(folder, env=env), folder, env)
    assert "refusing to log in to 192.0.2.1:25 over an unencrypted connection" in str(error.value)
    assert "starttls" in str(error.value) and PASSWORD not in str(error.value)


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("127.1.2.3") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("192.0.2.1") and not is_loopback("mail.example.org") and not is_loopback("localhost.example.org")


def test_no_host_configured_is_a_config_error(folder):
    with pytest.raises(ConfigError, match="NEWSLETTER_SMTP_HOST"):
        load_sender("smtp", load_config(folder, env={}), folder, {})


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed, so no test certificate can be made")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return context


def test_starttls_then_auth(folder, certificate):
    handler = FaultHandler()
    controller = FaultController(handler, tls_context=_server_context(certificate), require_starttls=True, auth_required=True, auth_require_tls=True)
    controller.start()
    try:
        env = smtp_env(controller.port, NEWSLETTER_SMTP_SECURITY="starttls", NEWSLETTER_SMTP_USERNAME="user",
                       NEWSLETTER_SMTP_PASSWORD=PASSWORD, NEWSLETTER_SMTP_CAFILE=str(certificate[0]))
        with make_sender(folder, env).connect() as connection:
            connection.deliver(FROM, "ada@example.org", small_message("ada@example.org"))
    finally:
        controller.stop()
    raw = handler.connections()[0]
    # in clear only the greeting exchange and STARTTLS; never the password
    assert raw.startswith(b"EHLO ") and b"STARTTLS\r\n" in raw
    assert handler.commands.count("EHLO") == 2  # EHLO again after TLS
    assert handler.logins == [(b"user", PASSWORD.encode())]
    assert [m.rcpt_tos for m in handler.received] == [["ada@example.org"]]


def test_starttls_with_an_untrusted_certificate_is_refused(folder, certificate):
    handler = FaultHandler()
    controller = FaultController(handler, tls_context=_server_context(certificate), require_starttls=True)
    controller.start()
    try:
        env = smtp_env(controller.port, NEWSLETTER_SMTP_SECURITY="starttls", NEWSLETTER_SMTP_USERNAME="user", NEWSLETTER_SMTP_PASSWORD=PASSWORD)
        with pytest.raises(SendError) as error:
            make_sender(folder, env).connect()
    finally:
        controller.stop()
    assert f"the TLS certificate of 127.0.0.1:{controller.port} could not be verified" in str(error.value)
    assert handler.logins == []


def test_starttls_required_but_not_offered(folder):
    handler = FaultHandler()
    controller = FaultController(handler)
    controller.start()
    try:
        with pytest.raises(SendError, match="does not offer STARTTLS"):
            make_sender(folder, smtp_env(controller.port, NEWSLETTER_SMTP_SECURITY="starttls")).connect()
    finally:
        controller.stop()


def test_implicit_tls(folder, certificate):
    handler = FaultHandler()
    controller = FaultController(handler, ssl_context=_server_context(certificate))
    controller.start()
    try:
        env = smtp_env(controller.port, NEWSLETTER_SMTP_SECURITY="ssl", NEWSLETTER_SMTP_CAFILE=str(certificate[0]))
        with make_sender(folder, env).connect() as connection:
            connection.deliver(FROM, "ada@example.org", small_message("ada@example.org"))
    finally:
        controller.stop()
    assert [m.rcpt_tos for m in handler.received] == [["ada@example.org"]]


def test_a_3xx_reply_after_the_data_is_uncertain_not_retried(folder, server):
    """Issue 10 item 3: after the final "." only 2xx, 4xx and 5xx are answers; anything else may hide a delivery."""
    server.handler.faults = {"odd@example.org": ["data:354"]}
    sender = make_sender(folder, smtp_env(server.port))
    with sender.connect() as connection:
        with pytest.raises(UncertainDelivery) as uncertain:
            connection.deliver(FROM, "odd@example.org", small_message("odd@example.org"))
        assert uncertain.value.reply == f"127.0.0.1:{server.port}: answered 354 End data with <CR><LF>.<CR><LF> after the whole message was sent; it may have been delivered"
        connection.deliver(FROM, "ada@example.org", small_message("ada@example.org"))  # a fresh session carries on
    assert [m.rcpt_tos for m in server.handler.received] == [["odd@example.org"], ["ada@example.org"]]


def test_the_timeout_is_a_deadline_for_the_whole_reply(folder, server):
    """Issue 10 item 4: a server trickling its reply a byte at a time, each byte well within the
    timeout, must not hold the connection for longer than the timeout."""
    server.handler.trickle_seconds = 0.25  # the reply needs about 10 s; the timeout is 1 s
    server.handler.faults = {"trickle@example.org": ["data:trickle"]}
    sender = make_sender(folder, smtp_env(server.port), timeout=1.0)
    with sender.connect() as connection:
        with pytest.raises(UncertainDelivery) as uncertain:
            connection.deliver(FROM, "trickle@example.org", small_message("trickle@example.org"))
        assert uncertain.value.reply == f"127.0.0.1:{server.port}: timed out after the whole message was sent, before the server replied; it may have been delivered"
        connection.deliver(FROM, "ada@example.org", small_message("ada@example.org"))
    assert [m.rcpt_tos for m in server.handler.received] == [["trickle@example.org"], ["ada@example.org"]]


@pytest.mark.parametrize(
    ("banner", "shown"),
    [(b"SSH-2.0-OpenSSH_9.6\r\n", "SSH-2.0-OpenSSH_9.6"), (b"HTTP/1.1 400 Bad Request\r\n", "HTTP/1.1 400 Bad Request"), (b"22O\x00 hi\r\n", "22O\\x00 hi")],
)
def test_a_server_that_is_not_smtp_is_shown_by_what_it_said(folder, banner: bytes, shown: str):
    """Issue 10 item 10: an SSH banner or garbage was reported as 'closed the connection'."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(banner)
            conn.recv(1024)  # hold the connection open until the client gives up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(SendError) as error:
            make_sender(folder, smtp_env(port), timeout=5).connect()
    finally:
        listener.close()
        thread.join(5)
    assert str(error.value).startswith(
        f"cannot connect to 127.0.0.1:{port}: answered with something that is not SMTP: '{shown}' (is this the right host and port?) while setting up the session"
    )


def test_a_bracketed_address_literal_host_connects(folder, server):
    """smtp.host written as an address literal ("[127.0.0.1]", "[::1]", as in RFC 5321 and URLs):
    is_loopback and TLS's server_hostname already took the brackets off, and the connection must
    too (the resolver knows no host called "[127.0.0.1]")."""
    sender = make_sender(folder, smtp_env(server.port, NEWSLETTER_SMTP_HOST="[127.0.0.1]"))
    with sender.connect() as connection:
        connection.deliver(FROM, "ada@example.org", small_message("ada@example.org"))
    assert [m.rcpt_tos for m in server.handler.received] == [["ada@example.org"]]
    assert sender.server == f"[127.0.0.1]:{server.port}"


def test_connect_host_and_server_name_of_ipv6_literals(folder):
    from newsletter.senders.smtp import connect_host

    assert connect_host("[::1]") == b"::1" and connect_host("::1") == b"::1"
    assert connect_host("[127.0.0.1]") == b"127.0.0.1" and connect_host("mail.example.org.") == b"mail.example.org."
    assert connect_host("bücher.example") == "bücher.example"  # non-ASCII: through the idna codec, as before
    for host in ("::1", "[::1]"):
        sender = make_sender(folder, smtp_env(2525, NEWSLETTER_SMTP_HOST=host))
        assert sender.server == "[::1]:2525"
