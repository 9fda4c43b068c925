"""The ``smtp`` sender: hands messages to an SMTP server over long-lived, reused connections.

Written on sockets and ``ssl`` rather than ``smtplib`` because the send loop
needs exact outcome classification (was the final "." sent before the
connection died?) and speed: one write for MAIL/RCPT/DATA when the server
offers PIPELINING, dot-stuffing with one ``bytes.replace`` and the whole
message in one ``sendall`` (smtplib runs a regex over every message).

A message may also come as the pieces that make it up (``wire_pieces``): the
send loop's personalised copies are large literal chunks shared by every copy
and small per-reader slots, so each shared chunk's line-end check and
dot-stuffing is done once per connection and reused, instead of a scan of the
whole ~34 KB per message (13 us of the GIL each, a sixth of the loop).

Outcomes of ``deliver``:

- 2xx after the data: the reply is returned.
- 4xx anywhere (421, 451 greylisting, 452 ...), a refused or lost connection
  or a timeout before the data was completely sent: ``TemporaryFailure``.
- 5xx for the recipient or the message: ``PermanentFailure``.
- the connection lost or timed out after the final "." but before the reply:
  ``UncertainDelivery`` (the server may have accepted the message).

After a 421 or a lost connection the connection object reconnects by itself
on its next ``deliver``.  Problems that no retry can fix (the login refused,
TLS not offered or not verifiable, the sender address refused) raise
``SendError`` so the loop stops instead of failing every recipient.

The password comes only from ``NEWSLETTER_SMTP_PASSWORD`` or a prompt (a callback
the caller sets, else the terminal, without echo), and never appears in a
message, a reply or an exception.
"""

from __future__ import annotations

import base64
import math
import re
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Mapping, Sequence

from newsletter.errors import ConfigError, SendError, visible
from newsletter.content.addresses import is_loopback
from newsletter.content.model import Config, SMTPSettings
from newsletter.senders.base import DeliveryError, Outcome, PermanentFailure, TemporaryFailure, UncertainDelivery

if TYPE_CHECKING:  # ssl is imported where TLS is set up: a relay on this machine (security: none) never needs it
    import ssl

PASSWORD_ENV = "NEWSLETTER_SMTP_PASSWORD"
CAFILE_ENV = "NEWSLETTER_SMTP_CAFILE"
MAX_LINE = 64 * 1024  # a reply line longer than this is not SMTP
QUIT_TIMEOUT = 2.0
_LINE_END = re.compile(rb"\r\n|\r|\n")
_DOT_AFTER_LF = re.compile(rb"\n\.")


def wire_data(message: bytes) -> bytes:
    """The DATA payload: dot-stuffed (RFC 5321 4.5.2), ending in CRLF.CRLF.

    The message should have CRLF line ends, as ``message.message_bytes`` and the
    personaliser produce.  Full scans cost: this runs under the GIL once per
    message, and two byte counts over 30 KB measured as a fifth of the send
    loop's throughput.  So the common path is one regex split (``re`` finds the
    pair faster than ``bytes.find`` or ``bytes.replace``), and line ends are only
    checked where LF-only text shows (first line, end of the header, last line):
    such a message is converted whole.  A dot is doubled after every LF, not only
    after CRLF, so even a stray bare LF can never end the data early on a lenient
    server (SMTP smuggling).
    """
    if _looks_lf_only(message):
        message = _LINE_END.sub(b"\r\n", message)
    pieces = _DOT_AFTER_LF.split(message)
    data = b"\n..".join(pieces) if len(pieces) > 1 else message
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


_PIECE_CACHE_MIN = 256  # smaller pieces are the per-reader slots: cheaper to check again than to keep
_PIECE_CACHE_MAX = 256


class WireCache:
    """The dot-stuffed form of large pieces seen before (the chunks shared by every copy of a
    personalised message), keyed by the piece's bytes; one per connection, so no lock."""

    def __init__(self, min_size: int = _PIECE_CACHE_MIN) -> None:
        self.min_size = min_size
        self.forms: dict[bytes, tuple[bytes, bool]] = {}


def wire_pieces(pieces: Sequence[bytes], cache: WireCache) -> tuple[list[bytes], bool]:
    """``wire_data`` of the pieces joined, as pieces (joined, exactly ``wire_data(b"".join(pieces))``),
    and whether the message is all ASCII.

    A message that looks LF-only is converted whole, as ``wire_data`` does (that check looks only
    at the first line, the header and the last line, so it costs little).  Otherwise dot-stuffing
    is the same for the whole as piece by piece: a dot doubled after every LF inside a piece, and
    a piece's leading dot doubled when the piece before ended a line (or it starts the message).
    """
    whole = b"".join(pieces)
    if not whole or _looks_lf_only(whole):
        return [wire_data(whole)], whole.isascii()
    out: list[bytes] = []
    ascii_only = True
    line_start = True
    forms, min_size = cache.forms, cache.min_size
    for piece in pieces:
        if not piece:
            continue
        if len(piece) >= min_size:
            form = forms.get(piece)
            if form is None:
                if len(forms) >= _PIECE_CACHE_MAX:
                    forms.clear()
                form = forms[piece] = (piece.replace(b"\n.", b"\n.."), piece.isascii())
            stuffed, piece_ascii = form
        else:
            stuffed, piece_ascii = piece.replace(b"\n.", b"\n.."), piece.isascii()
        if line_start and piece[0] == 46:  # a "." starting a line
            out.append(b".")
        out.append(stuffed)
        ascii_only = ascii_only and piece_ascii
        line_start = piece[-1] == 10  # ended with "\n"
    out.append(b".\r\n" if whole.endswith(b"\r\n") else b"\r\n.\r\n")
    return out, ascii_only


def chunk_data(message: bytes) -> bytes:
    """The BDAT payload (RFC 3030): the message as it is, with CRLF line ends; no dot-stuffing,
    since the chunk's size, not a line with a dot, says where it ends."""
    if _looks_lf_only(message):
        message = _LINE_END.sub(b"\r\n", message)
    return message if message.endswith(b"\r\n") else message + b"\r\n"


def _looks_lf_only(message: bytes) -> bool:
    """LF (or CR) line ends in the first line, in the header or at its end, or on the last line.

    Each search stops early on a CRLF message (the header ends within a few KB).
    """
    first = message.find(b"\n")
    if first < 0:
        return b"\r" in message
    if first == 0 or message[first - 1] != 13:
        return True
    header_end = message.find(b"\r\n\r\n")
    if message.find(b"\n\n", 0, header_end if header_end >= 0 else len(message)) >= 0:
        return True
    return message.endswith(b"\n") and not message.endswith(b"\r\n")


_UNSAFE_IN_ADDRESS = re.compile(r"[\x00-\x20<>\x7f]")


def check_envelope_address(address: str) -> bytes:
    """The address as it goes into MAIL FROM/RCPT TO; refuse anything that could break the command."""
    if not address or len(address) > 254 or _UNSAFE_IN_ADDRESS.search(address):
        raise PermanentFailure(f"refused to send to {address!r}: not a plain email address (no spaces, line breaks or angle brackets)")
    return address.encode("utf-8")


class _Transient(Exception):
    """Setting up a session failed in a way a later retry may fix (refused, timed out, 4xx)."""

    def __init__(self, text: str, code: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


class _Dropped(OSError):
    """The server closed the connection, or said something that is not SMTP (``said``: its words)."""

    def __init__(self, message: str, said: bytes | None = None) -> None:
        super().__init__(message)
        self.said = said

    def describe(self) -> str:
        """What the user is told: the server's own words when it answered in something other than SMTP."""
        if self.said is None:
            return "closed the connection"
        return f"answered with something that is not SMTP: '{visible(self.said.decode('utf-8', 'replace'))}' (is this the right host and port?)"


class SMTPSender:
    """Delivers through an SMTP server configured in newsletter.yaml / NEWSLETTER_SMTP_* variables."""

    name: ClassVar[str] = "smtp"
    description: ClassVar[str] = "an SMTP server (a provider's relay or a local Postfix); connections are reused"

    def __init__(
        self,
        *,
        config: Config,
        folder: Path,
        env: Mapping[str, str],
        password_prompt: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        self.folder = folder
        self.settings: SMTPSettings = config.smtp
        self.password_prompt = password_prompt
        self._password: str | None = env.get(PASSWORD_ENV) or None
        self._password_lock = threading.Lock()
        self._cafile = env.get(CAFILE_ENV) or None
        settings = self.settings
        if not settings.host:
            raise ConfigError(
                "the smtp sender needs a server: set smtp.host in newsletter.yaml or NEWSLETTER_SMTP_HOST",
                path="newsletter.yaml",
                hint="or use the maildir sender (--sender maildir) to write a local outbox",
            )
        if self._password and not settings.username:
            raise ConfigError(
                f"{PASSWORD_ENV} is set but no SMTP username is configured",
                path="newsletter.yaml",
                hint="set smtp.username or NEWSLETTER_SMTP_USERNAME too, or unset the password",
            )
        if settings.username and settings.security == "none" and not is_loopback(settings.host):
            # Checked before any connection is made, so the password never crosses the network in clear.
            raise ConfigError(
                f"refusing to log in to {self.server} over an unencrypted connection (security: none): "
                "the password would cross the network in clear text",
                path="newsletter.yaml",
                hint="set smtp.security to starttls (port 587) or ssl (port 465), or NEWSLETTER_SMTP_SECURITY",
            )

    @property
    def server(self) -> str:
        """host:port, for messages."""
        host = _unbracketed(self.settings.host or "")
        return f"[{host}]:{self.settings.port}" if ":" in host or host != self.settings.host else f"{host}:{self.settings.port}"

    def describe(self) -> str:
        """'SMTP smtp.example.org:587 (starttls, as notes@example.org)': no secrets."""
        login = f", as {self.settings.username}" if self.settings.username else ""
        return f"SMTP {self.server} ({self.settings.security}{login})"

    def connect(self) -> "SMTPConnection":
        """Open a session now (greeting, EHLO, TLS, login); raise SendError naming host:port on failure."""
        connection = SMTPConnection(self)
        try:
            connection.open()
        except _Transient as exc:
            raise SendError(f"cannot connect to {self.server}: {exc.text}", hint="check smtp.host and smtp.port (or NEWSLETTER_SMTP_HOST/PORT) and that the server is running") from None
        return connection

    def check(self) -> str:
        """Connect, run TLS and log in as configured, then QUIT: nothing is sent.

        For `newsletter senders --check` and dry runs, so a wrong host, certificate or
        password shows up before send day; raises SendError like ``connect``.
        """
        connection = self.connect()
        connection.close()
        settings = self.settings
        steps = [f"connected to {self.server}"]
        if settings.security == "starttls":
            steps.append("STARTTLS")
        elif settings.security == "ssl":
            steps.append("TLS")
        steps.append(f"logged in as {settings.username}" if settings.username else "no login configured")
        return ", ".join(steps) + "; nothing sent"

    def password(self) -> str:
        """The password from the environment, else the prompt callback, else asked on the terminal.

        Asked once (the first connection asks; the others wait) and shared by all connections.
        """
        with self._password_lock:
            if self._password is None:
                prompt = self.password_prompt or (_terminal_prompt(f"SMTP password for {self.settings.username} at {self.server}: ") if _on_terminal() else None)
                if prompt is None:
                    raise SendError(
                        f"{self.server} needs a password for {self.settings.username} and none was given",
                        hint=f"set {PASSWORD_ENV} (it is never read from newsletter.yaml), or run on a terminal to be asked",
                    )
                answer = prompt()
                if not answer:
                    raise SendError(f"no password given for {self.settings.username} at {self.server}", hint=f"set {PASSWORD_ENV} or type the password when asked")
                self._password = answer
            return self._password

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying TLS context; NEWSLETTER_SMTP_CAFILE adds a private CA (e.g. a company relay's)."""
        import ssl

        context = ssl.create_default_context()
        if self._cafile:
            try:
                context.load_verify_locations(cafile=self._cafile)
            except (OSError, ssl.SSLError) as exc:
                raise SendError(f"cannot read the CA file {self._cafile}: {exc}", hint=f"fix or unset {CAFILE_ENV}") from None
        return context


class SMTPConnection:
    """One SMTP session reused for many messages; used by one thread at a time."""

    takes_pieces: ClassVar[bool] = True  # submit and deliver take a message as its pieces (see wire_pieces)

    def __init__(self, sender: SMTPSender) -> None:
        self.sender = sender
        self._wire_cache = WireCache()
        self.server = sender.server
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._extensions: dict[str, str] = {}
        self._needs_rset = False
        self._ready: _Pending | None = None  # accepted envelope, data not sent yet (pipelining)
        self._unanswered: _Unanswered | None = None  # chunked message sent whole, replies not read yet
        self.sessions = 0  # how many times this connection (re)connected, for reports and tests

    # -- session setup -------------------------------------------------------------------------

    def open(self) -> None:
        """Connect, read the greeting, EHLO, STARTTLS/SSL and AUTH as configured."""
        settings = self.sender.settings
        assert settings.host
        self._discard()
        try:
            sock = socket.create_connection((connect_host(settings.host), settings.port), timeout=settings.timeout)
        except socket.timeout:
            raise _Transient(f"connection timed out after {settings.timeout:g} s") from None
        except OSError as exc:
            raise _Transient(_os_error_text(exc)) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buffer.clear()
        try:
            if settings.security == "ssl":
                self._sock = self._wrap_tls(sock)
            code, text = self._read_reply()
            if code != 220:
                self._setup_refused("greeted with", code, text)
            self._ehlo()
            if settings.security == "starttls":
                if "starttls" not in self._extensions:
                    raise SendError(f"{self.server} does not offer STARTTLS, and security is starttls", hint="use security: ssl (port 465) if the server expects TLS from the start; never none over the internet")
                self._send(b"STARTTLS\r\n")
                code, text = self._read_reply()
                if code != 220:
                    self._setup_refused("refused STARTTLS with", code, text)
                if self._buffer:
                    raise SendError(f"{self.server} sent data before the TLS handshake (a STARTTLS injection attempt?)")
                self._sock = self._wrap_tls(self._sock)
                self._ehlo()  # RFC 3207: forget what was learnt before TLS
            if settings.username:
                self._login(settings.username)
        except socket.timeout:
            self._discard()
            raise _Transient(f"timed out after {settings.timeout:g} s while setting up the session") from None
        except _Dropped as exc:
            self._discard()
            raise _Transient(f"{exc.describe()} while setting up the session") from None
        except OSError as exc:
            self._discard()
            raise _Transient(_os_error_text(exc)) from None
        except BaseException:
            self._discard()
            raise
        self._needs_rset = False
        self.sessions += 1

    def _wrap_tls(self, sock: socket.socket) -> ssl.SSLSocket:
        import ssl

        host = self.sender.settings.host or ""
        try:
            return self.sender.ssl_context().wrap_socket(sock, server_hostname=host.strip("[]"))
        except ssl.SSLCertVerificationError as exc:
            raise SendError(f"the TLS certificate of {self.server} could not be verified: {exc.verify_message}", hint=f"check smtp.host is the name on the server's certificate; for a private CA set {CAFILE_ENV}") from None
        except ssl.SSLError as exc:
            raise SendError(f"TLS with {self.server} failed: {exc.reason or exc}", hint="check smtp.security and smtp.port: ssl is usually port 465, starttls port 587") from None

    def _ehlo(self) -> None:
        name = _helo_name(self._sock)
        self._send(b"EHLO " + name + b"\r\n")
        code, text = self._read_reply()
        if code == 250:
            self._extensions = {}
            for line in text.split("\n")[1:]:
                keyword, _, params = line.strip().partition(" ")
                if keyword:
                    self._extensions[keyword.lower()] = params
            return
        if code == 421:
            raise _Transient(f"{code} {text}", code)
        # A server without ESMTP: fall back to HELO (no pipelining, no TLS, no AUTH).
        self._send(b"HELO " + name + b"\r\n")
        code, text = self._read_reply()
        if code != 250:
            self._setup_refused("refused HELO with", code, text)
        self._extensions = {}

    def _login(self, username: str) -> None:
        mechanisms = self._extensions.get("auth", "").upper().split()
        if "auth" not in self._extensions:
            raise SendError(f"{self.server} does not offer authentication (AUTH) on this connection", hint="check smtp.port and smtp.security; servers usually offer AUTH only after STARTTLS")
        password = self.sender.password()
        user = username.encode("utf-8")
        if "PLAIN" in mechanisms:
            token = base64.b64encode(b"\0" + user + b"\0" + password.encode("utf-8"))
            self._send(b"AUTH PLAIN " + token + b"\r\n")
            code, text = self._read_reply()
        elif "LOGIN" in mechanisms:
            self._send(b"AUTH LOGIN\r\n")
            code, text = self._read_reply()
            if code == 334:
                self._send(base64.b64encode(user) + b"\r\n")
                code, text = self._read_reply()
            if code == 334:
                self._send(base64.b64encode(password.encode("utf-8")) + b"\r\n")
                code, text = self._read_reply()
        else:
            raise SendError(f"{self.server} offers only AUTH {' '.join(mechanisms) or '(none)'}; newsletter supports PLAIN and LOGIN")
        if code == 235:
            return
        if code == 334:  # the server wants more than we have: cancel the exchange
            self._send(b"*\r\n")
            code, text = self._read_reply()
        if 400 <= code < 500:
            raise _Transient(f"login temporarily failed: {code} {text}", code)
        raise SendError(f"{self.server} refused the login for {username}: {code} {text}", hint=f"check smtp.username and {PASSWORD_ENV}")

    def _setup_refused(self, what: str, code: int, text: str) -> None:
        if 400 <= code < 500:
            raise _Transient(f"{what} {code} {text}", code)
        raise SendError(f"{self.server} {what} {code} {text}", hint="the server refuses this client; check smtp.host and smtp.port")

    # -- delivery ------------------------------------------------------------------------------

    def deliver(self, envelope_from: str, recipient: str, message: bytes | Sequence[bytes]) -> str:
        """Hand over one message (whole, or its pieces); return the server's '250 ...' reply or raise a DeliveryError."""
        outcome: list[Outcome] = []
        self.submit(envelope_from, recipient, message, handing_over=_nothing, done=outcome.append)
        self.flush()
        if isinstance(outcome[0], DeliveryError):
            raise outcome[0]
        return outcome[0]

    def submit(self, envelope_from: str, recipient: str, message: bytes | Sequence[bytes], *,
               handing_over: Callable[[], None], done: Callable[[Outcome], None]) -> None:
        """Start handing over one message; its outcome comes to ``done`` in this call or a later
        ``submit``/``flush`` (``newsletter.senders.base.PipeliningConnection``).  ``message`` may be
        the pieces that make it up (``takes_pieces``): shared pieces are dot-stuffed once.

        With PIPELINING the envelope (MAIL, RCPT, DATA) goes out now, in the same write as the
        previous message's data, and the previous message's final reply is read before this
        envelope's replies: one round trip a message, each reply given to its own message.
        """
        try:
            sender_arg = check_envelope_address(envelope_from)
            recipient_arg = check_envelope_address(recipient)
        except PermanentFailure as exc:
            done(exc)
            return
        if self._sock is None:
            try:
                self.open()
            except _Transient as exc:
                done(TemporaryFailure(f"{self.server}: {exc.text}", exc.code))
                return
        chunking = "chunking" in self._extensions and "pipelining" in self._extensions
        if chunking:
            whole = message if isinstance(message, bytes) else b"".join(message)
            payload, ascii_only = [chunk_data(whole)], whole.isascii()
        elif isinstance(message, bytes):
            payload, ascii_only = [wire_data(message)], message.isascii()
        else:
            payload, ascii_only = wire_pieces(message, self._wire_cache)
        params = b""
        if not ascii_only and "8bitmime" in self._extensions:
            params += b" BODY=8BITMIME"
        if not (sender_arg.isascii() and recipient_arg.isascii()):
            if "smtputf8" not in self._extensions:
                done(PermanentFailure(f"{self.server}: the server does not support SMTPUTF8, needed for the address {recipient}"))
                return
            params += b" SMTPUTF8"
        if chunking:
            self._submit_chunk(envelope_from, sender_arg, recipient_arg, params, payload[0], handing_over, done)
            return
        if self._unanswered is not None:  # a chunked message before a reconnect without CHUNKING
            self.flush()
        pending = _Pending(envelope_from, payload, handing_over, done)
        commands = [b"MAIL FROM:<" + sender_arg + b">" + params + b"\r\n", b"RCPT TO:<" + recipient_arg + b">\r\n", b"DATA\r\n"]
        pipelining = "pipelining" in self._extensions
        previous, self._ready = self._ready, None
        try:
            if pipelining:
                replies = self._pipelined(commands, previous)
            else:
                self._finish(previous)
                replies = self._one_by_one(commands)
        except DeliveryError as exc:
            done(exc)
            return
        except (OSError, _Dropped) as exc:
            self._discard()
            done(self._not_handed_over(exc))
            return
        failed = _first_failure(replies)
        if failed is None:
            if pipelining:
                self._ready = pending  # its data goes out with the next message's envelope, or at flush()
            else:
                self._finish(pending)
            return
        try:
            if replies[2][0] == 354:  # a server that accepted DATA anyway: end it empty, then reset
                self._send(b".\r\n")
                self._read_reply()
        except (OSError, _Dropped):
            self._discard()
        self._needs_rset = True
        stage, code, text = failed
        if stage == "MAIL" and code >= 500:
            raise SendError(f"{self.server} refused the sender address {envelope_from}: {code} {text}", hint="check sender.email in newsletter.yaml is an address this server lets you send from")
        done(self._failure(code, text))

    def flush(self) -> None:
        """Finish the message whose data is waiting, or read the replies of the chunked message
        still unanswered (its outcome goes to its ``done``)."""
        previous, self._ready = self._ready, None
        self._finish(previous)
        unanswered, self._unanswered = self._unanswered, None
        if unanswered is not None:
            self._chunk_outcome(unanswered, None)

    def _submit_chunk(self, envelope_from: str, sender_arg: bytes, recipient_arg: bytes, params: bytes, body: bytes,
                      handing_over: Callable[[], None], done: Callable[[Outcome], None]) -> None:
        """CHUNKING (RFC 3030) with PIPELINING: RSET, MAIL, RCPT and ``BDAT <size> LAST`` with the
        whole message in one write, with no 354 to wait for; then the previous message's replies,
        so two messages are on their way at once.  RSET comes first every time because the
        previous transaction's outcome is not known yet when this one is written (a failed one
        would otherwise make this MAIL a "nested MAIL" error, blamed on the wrong message).
        ``body``: the message as ``chunk_data`` gives it."""
        head = (b"RSET\r\nMAIL FROM:<" + sender_arg + b">" + params + b"\r\nRCPT TO:<" + recipient_arg + b">\r\n"
                + b"BDAT %d LAST\r\n" % len(body))
        self._needs_rset = False
        previous, self._unanswered = self._unanswered, None
        handing_over()
        try:
            self._send(head + body)
        except (OSError, _Dropped) as exc:  # the chunk did not all leave, so it cannot have been taken
            self._discard()
            if previous is not None:
                previous.done(self._lost(exc))
            done(self._not_handed_over(exc))
            return
        current = _Unanswered(envelope_from, done)
        if previous is None or self._chunk_outcome(previous, current):
            self._unanswered = current

    def _chunk_outcome(self, sent: "_Unanswered", following: "_Unanswered | None") -> bool:
        """Read one chunked message's RSET, MAIL, RCPT and BDAT replies and give it its outcome;
        ``following`` (written since) gets one too when the session ends here.  True if it goes on."""
        replies: list[tuple[int, str]] = []
        try:
            while len(replies) < 4 and (not replies or replies[-1][0] != 421):
                replies.append(self._read_reply())
        except (OSError, _Dropped) as exc:
            self._discard()
            sent.done(self._lost(exc))
            if following is not None:
                following.done(self._lost(exc))
            return False
        if replies[-1][0] == 421:  # the server is closing: nothing after this reply was taken
            sent.done(self._failure(*replies[-1]))
            if following is not None:
                following.done(TemporaryFailure(f"{self.server}: the session ended before this message was handed over"))
            return False
        (mail_code, mail_text), (rcpt_code, rcpt_text), (code, text) = replies[1:]
        if mail_code >= 500:
            if following is not None:  # its own outcome first: it may have a different sender (VERP)
                self._unanswered = None
                self._chunk_outcome(following, None)
            raise SendError(f"{self.server} refused the sender address {sent.envelope_from}: {mail_code} {mail_text}", hint="check sender.email in newsletter.yaml is an address this server lets you send from")
        if not 200 <= mail_code < 300:
            sent.done(self._failure(mail_code, mail_text))
        elif not 200 <= rcpt_code < 300:
            sent.done(self._failure(rcpt_code, rcpt_text))
        else:
            outcome = self._final_outcome(code, text)
            sent.done(outcome)
            if not isinstance(outcome, UncertainDelivery):
                return True
            if following is not None:  # written into a session now in an unknown state
                following.done(UncertainDelivery(f"{self.server}: the session ended in an unknown state after the whole message was sent; it may have been delivered"))
            return False
        return True

    def _finish(self, pending: "_Pending | None") -> None:
        """Send a message's data alone and read its final reply."""
        if pending is None:
            return
        pending.handing_over()
        try:
            self._send(b"".join(pending.payload))
        except (OSError, _Dropped) as exc:
            self._discard()
            pending.done(self._not_handed_over(exc))
            return
        self._final_reply(pending)

    def _final_reply(self, pending: "_Pending") -> None:
        """Read the reply to a message's final "." and give the message its outcome."""
        try:
            code, text = self._read_reply()
        except (OSError, _Dropped) as exc:
            self._discard()
            pending.done(self._lost(exc))
            return
        pending.done(self._final_outcome(code, text))

    def _not_handed_over(self, exc: BaseException) -> TemporaryFailure:
        """A message whose content did not all leave (the connection failed first): safe to retry."""
        return TemporaryFailure(f"{self.server}: {_failure_text(exc)} before the message was handed over")

    def _lost(self, exc: BaseException) -> UncertainDelivery:
        """A message sent whole whose reply never came: it may have been delivered."""
        return UncertainDelivery(f"{self.server}: {_failure_text(exc)} after the whole message was sent, before the server replied; it may have been delivered")

    def _final_outcome(self, code: int, text: str) -> Outcome:
        """A message's outcome from the reply to its whole content (after "." or ``BDAT ... LAST``)."""
        if 200 <= code < 300:
            return f"{code} {text}"
        if 400 <= code < 600:
            return self._failure(code, text)
        # Neither yes nor no after the whole message: the server may have taken it, and the
        # session is in an unknown state.  Resending would risk a duplicate per attempt.
        self._discard()
        return UncertainDelivery(f"{self.server}: answered {code} {text} after the whole message was sent; it may have been delivered", code)

    def _pipelined(self, commands: list[bytes], previous: "_Pending | None" = None) -> list[tuple[int, str]]:
        """RFC 2920: one write for [the previous message's data] [RSET] MAIL RCPT DATA, then
        their replies in order; the previous message gets its final reply first."""
        rset = self._needs_rset
        chunks = (previous.payload if previous is not None else []) + ([b"RSET\r\n"] if rset else []) + commands
        if previous is not None:
            previous.handing_over()
        written = [0]
        try:
            self._send(b"".join(chunks), written=written)
        except (OSError, _Dropped) as exc:
            if previous is not None:
                # Whether its final "." left decides: a write can fail on the next envelope's bytes
                # after the whole message went out, and the server may then deliver it.
                whole = written[0] >= sum(map(len, previous.payload))
                previous.done(self._lost(exc) if whole else self._not_handed_over(exc))
            raise
        if previous is not None:
            self._final_reply(previous)
            if self._sock is None:  # the previous message's reply closed the session (421, lost)
                raise TemporaryFailure(f"{self.server}: the session ended before this message was handed over")
        if rset:
            self._needs_rset = False
            code, text = self._read_reply()
            if code == 421:
                raise self._failure(code, text)
        replies = []
        for _ in commands:
            code, text = self._read_reply()
            if code == 421:
                raise self._failure(code, text)
            replies.append((code, text))
        return replies

    def _one_by_one(self, commands: list[bytes]) -> list[tuple[int, str]]:
        """Without PIPELINING: each command waits for its reply; stop at the first failure."""
        if self._needs_rset:
            self._needs_rset = False
            self._send(b"RSET\r\n")
            code, text = self._read_reply()
            if code == 421:
                raise self._failure(code, text)
        replies = []
        for command in commands:
            self._send(command)
            code, text = self._read_reply()
            if code == 421:
                raise self._failure(code, text)
            replies.append((code, text))
            if code >= 400:
                break
        return replies + [(0, "not sent")] * (len(commands) - len(replies))

    def _failure(self, code: int, text: str) -> DeliveryError:
        """The DeliveryError for a negative reply; 421 also means the server is closing the session."""
        reply = f"{self.server}: {code} {text}"
        if code == 421:
            self._discard()
        if 400 <= code < 500:
            return TemporaryFailure(reply, code)
        if code >= 500:
            return PermanentFailure(reply, code)
        return TemporaryFailure(f"{self.server}: unexpected reply {code} {text}", code)

    # -- wire ----------------------------------------------------------------------------------

    def _send(self, data: bytes, *, written: list[int] | None = None) -> None:
        """Write all of ``data``; with ``written``, keep in ``written[0]`` how many bytes left, so
        that a failed write still tells what got out (``sendall`` does not say)."""
        if self._sock is None:
            raise _Dropped("not connected")
        if written is None:
            self._sock.sendall(data)
            return
        view = memoryview(data)
        while written[0] < len(view):
            written[0] += self._sock.send(view[written[0]:])

    def _read_reply(self) -> tuple[int, str]:
        """One (possibly multi-line) reply: code and the text lines joined by newlines.

        The socket's timeout is a deadline for the whole reply, not for each read: a
        server trickling a byte at a time must not hold a connection past the timeout.
        """
        buffer = self._buffer
        end = buffer.find(b"\n")
        if end > 3 and buffer[3] == 32 and buffer[:3].isdigit():  # the usual one-line reply, already here
            code = int(buffer[:3])
            text = buffer[4:end].decode("utf-8", "replace").strip()
            del buffer[: end + 1]
            return code, text
        clock = _ReplyClock()
        try:
            lines: list[str] = []
            while True:
                line = self._read_line(clock)
                if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3:4] not in b" -"):
                    raise _Dropped(f"not an SMTP reply: {line[:80]!r}", said=line[:80])
                lines.append(line[4:].decode("utf-8", "replace").strip())
                if line[3:4] != b"-":
                    return int(line[:3]), "\n".join(lines)
        finally:
            if clock.shortened and self._sock is not None:
                self._sock.settimeout(clock.timeout)

    def _read_line(self, clock: "_ReplyClock") -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end]).rstrip(b"\r")
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > MAX_LINE:
                raise _Dropped("reply line too long", said=bytes(self._buffer[:80]))
            if self._sock is None:
                raise _Dropped("not connected")
            clock.before_recv(self._sock)
            chunk = self._sock.recv(65536)
            if not chunk:
                raise _Dropped("connection closed by the server")
            self._buffer += chunk

    def _discard(self) -> None:
        """Forget the socket without talking (after errors); the next deliver reconnects."""
        sock, self._sock = self._sock, None
        self._buffer.clear()
        self._extensions = {}
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        """QUIT politely and close; never raises.  A message still waiting for its data (the caller
        did not ``flush``) was not handed over: it gets a temporary failure."""
        waiting, self._ready = self._ready, None
        if waiting is not None:
            waiting.done(TemporaryFailure(f"{self.server}: the connection was closed before the message was handed over"))
        unanswered, self._unanswered = self._unanswered, None
        if unanswered is not None:
            unanswered.done(UncertainDelivery(f"{self.server}: the connection was closed before the server replied to the whole message; it may have been delivered"))
        sock = self._sock
        if sock is None:
            return
        try:
            sock.settimeout(min(QUIT_TIMEOUT, self.sender.settings.timeout))
            sock.sendall(b"QUIT\r\n")
            self._read_reply()
        except (OSError, _Dropped):
            pass
        finally:
            self._discard()

    def __enter__(self) -> "SMTPConnection":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _ReplyClock:
    """The deadline of one reply.  The first read uses the socket's timeout as it is (no system
    call on the common path, a reply that arrives in one piece); later reads of the same reply
    get only what is left of it, and the socket's timeout is restored afterwards."""

    __slots__ = ("deadline", "timeout", "shortened")

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.timeout: float | None = None
        self.shortened = False

    def before_recv(self, sock: socket.socket) -> None:
        """Called before each read; raises socket.timeout once the reply's time is up."""
        if self.deadline is None:
            self.timeout = sock.gettimeout()
            self.deadline = time.monotonic() + self.timeout if self.timeout is not None else math.inf
            return
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        if left != math.inf:
            sock.settimeout(left)
            self.shortened = True


class _Pending:
    """A message whose envelope was accepted (354) and whose data has not been sent yet
    (``payload``: its pieces, dot-stuffed, ending with the final ".")."""

    __slots__ = ("envelope_from", "payload", "handing_over", "done")

    def __init__(self, envelope_from: str, payload: list[bytes], handing_over: Callable[[], None], done: Callable[[Outcome], None]) -> None:
        self.envelope_from, self.payload, self.handing_over, self.done = envelope_from, payload, handing_over, done


class _Unanswered:
    """A message sent whole with BDAT whose replies have not been read yet."""

    __slots__ = ("envelope_from", "done")

    def __init__(self, envelope_from: str, done: Callable[[Outcome], None]) -> None:
        self.envelope_from, self.done = envelope_from, done


def _nothing() -> None:
    """``handing_over`` for ``deliver``: nothing to record."""


def _failure_text(exc: BaseException) -> str:
    """What happened to the connection, in words."""
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, _Dropped):
        return exc.describe()
    return _os_error_text(exc)  # type: ignore[arg-type]


def _on_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _terminal_prompt(text: str) -> Callable[[], str]:
    """Ask on the terminal without echo (getpass writes to /dev/tty, not to logs or stdout)."""
    import getpass  # here: a send whose password is in the environment never asks

    return lambda: getpass.getpass(text)


def _first_failure(replies: list[tuple[int, str]]) -> tuple[str, int, str] | None:
    """The first of the MAIL, RCPT, DATA replies that is not a success, with its stage."""
    for stage, (code, text), wanted in zip(("MAIL", "RCPT", "DATA"), replies, ((200, 300), (200, 300), (354, 355))):
        if not wanted[0] <= code < wanted[1]:
            return stage, code, text
    return None


def _helo_name(sock: socket.socket | None) -> bytes:
    """Our name for EHLO: the host name if it is fully qualified, else our address literal (no DNS)."""
    hostname = socket.gethostname()
    if "." in hostname and hostname.isascii():
        return hostname.encode("ascii")
    try:
        address = sock.getsockname()[0] if sock is not None else "127.0.0.1"
    except OSError:
        address = "127.0.0.1"
    return (f"[IPv6:{address}]" if ":" in address else f"[{address}]").encode("ascii")


def connect_host(host: str) -> str | bytes:
    """The host as ``socket.create_connection`` is given it: an ASCII name or address as bytes, which
    the resolver takes as it is.  Given text, the socket module passes every host name through the
    "idna" codec, whose import (stringprep, unicodedata's tables) cost a send's first connection
    a millisecond or more; a name with non-ASCII letters still goes that way.  An address literal
    written in brackets ("[::1]", "[192.0.2.1]", as RFC 5321 and URLs write them) loses them: the
    resolver knows no host of that name (is_loopback and TLS's server_hostname take them off too)."""
    host = _unbracketed(host)
    return host.encode("ascii") if host.isascii() else host


def _unbracketed(host: str) -> str:
    """``host`` without the brackets of an address literal ("[::1]" -> "::1")."""
    return host[1:-1] if len(host) > 2 and host[0] == "[" and host[-1] == "]" else host


def _os_error_text(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running on that port?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return "connection lost"
    return exc.strerror or str(exc) or type(exc).__name__
