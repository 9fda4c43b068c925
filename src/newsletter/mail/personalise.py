"""Personalise one rendered issue for many recipients by filling slots in pre-encoded bytes.

Rendering (~80 ms) and building a MIME message with the ``email`` package
(~6 ms) happen once per issue.  The issue is rendered with placeholder tokens
for the greeting and the unsubscribe link, the message is built once with
placeholder headers, and its encoded bytes are split into a ``Template``: a
list of literal byte chunks and named slots.  Per recipient only the slots are
encoded and the chunks joined (tens of microseconds).

Quoted-printable bodies are encoded here, not by the ``email`` package, so
that every slot starts at the beginning of an encoded line and ends with a soft
line break ("=" CRLF): a slot's value is then encoded on its own, can be of any
length, and never disturbs its neighbours, and no encoded line exceeds 76
characters.  Each value is encoded for its context: HTML-escaped in the HTML
part (the same escaping lxml writes, so the result parses like a message built
the slow way), wrapped like the template's ``wrap`` filter in the text part,
RFC 2047 in the To header.  Names went through ``headers.one_line`` so a CR or
LF can never start a header line.
"""

from __future__ import annotations

import email.utils
import os
import re
import secrets
import time
from dataclasses import dataclass, replace
from functools import cached_property
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from newsletter.content.addresses import domain_of
from newsletter.errors import TemplateError
from newsletter.mail.headers import LONGEST_LITERAL, MAX_LINE, mailbox_value, one_line, split_fields
from newsletter.mail.message import build_message, list_unsubscribe, message_bytes
from newsletter.content.model import Config, Issue
from newsletter.mail.tokens import UNSUBSCRIBE, seal
from newsletter.mail.render import TEXT_WIDTH, USER_TEMPLATES_DIR, MergeFields, Personal, RenderedEmail, Renderer, wrap

if TYPE_CHECKING:  # dkimpy and dnspython are imported only by a send that signs
    from newsletter.mail.dkim import DkimSigner

NEUTRAL_GREETING = "Dear reader,"
CRLF = "\r\n"
TOKEN_QUERY = "t"
_PLACEHOLDER_ADDRESS = "placeholder@placeholder.invalid"
_PLACEHOLDER_URL = "https://placeholder.invalid/unsubscribe"
_HEADER_SLOTS = {b"to": "to", b"date": "date", b"message-id": "message_id", b"list-unsubscribe": "list_unsubscribe"}


# -- unsubscribe links ---------------------------------------------------------------------------


def unsubscribe_token(secret: bytes, address: str) -> str:
    """A reader's sealed unsubscribe token, for the link and the mailto subject.

    Unsubscribe tokens never expire, so they carry a fixed time: each reader's link is then the
    same in every issue they receive.
    """
    return seal(secret, UNSUBSCRIBE, address, now=0)


def personal_unsubscribe_url(base: str, secret: bytes, address: str, token: str | None = None) -> str:
    """The configured https unsubscribe URL with ?t=<sealed token> (only URL-safe characters)."""
    return f"{base}{'&' if '?' in base else '?'}{TOKEN_QUERY}={token or unsubscribe_token(secret, address)}"


def clean(value: str | None) -> str:
    """``headers.one_line`` of a value that may be missing."""
    return one_line(value) if value else ""


def greeting_for(name: str | None) -> str:
    """'Dear <name>,' when the name is known, else a neutral greeting."""
    name = clean(name)
    return f"Dear {name}," if name else NEUTRAL_GREETING


def greeting_text(greeting: str) -> str:
    """The greeting as the text part wraps it.  A greeting is "Dear <one_line name>," or the neutral
    one: single spaces and no other whitespace, so a greeting that fits on a line is its own
    wrapping and needs no call to ``wrap`` (tests compare the two)."""
    return greeting if len(greeting) <= TEXT_WIDTH else wrap(greeting)


# -- quoted-printable with slots ----------------------------------------------------------------

_QP_CHAR = [chr(b) if (33 <= b <= 126 and b != 61) or b in (9, 32) else f"={b:02X}" for b in range(256)]
QP_LINE = 76



def qp_encode(text: str, *, soft_end: bool) -> bytes:
    """Quoted-printable of ``text`` starting at column 0; a last unterminated line ends in a soft break.

    Lines end in CRLF, no encoded line is longer than 76 characters, and
    spaces or tabs before a hard line break are encoded (RFC 2045 rule 3).
    """
    if soft_end and len(text) <= 70 and text.isascii() and text.isprintable():
        # the common per-recipient case (an ASCII greeting or URL): no line to split; isprintable
        # (0x20-0x7e once isascii holds) rather than a regex, a third of the cost
        encoded = text.replace("=", "=3D")
        if len(encoded) <= QP_LINE - 1:
            return f"{encoded}=\r\n".encode("ascii")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    last = lines.pop()  # "" when the text ends with a newline
    out: list[str] = []
    for line in lines:
        _encode_line(line.encode("utf-8"), out, hard=True)
    if last:
        _encode_line(last.encode("utf-8"), out, hard=not soft_end)
    return "".join(out).encode("ascii")


_QP_TRANSLATE = {b: _QP_CHAR[b] for b in range(256)}  # str.translate of the line's bytes read as latin-1


def _encode_line(data: bytes, out: list[str], *, hard: bool) -> None:
    """One line's quoted-printable, cut into lines of at most 75 characters plus the soft-break "="
    without splitting an "=XX" (the greedy cut; translate and slice rather than a loop per byte,
    since each recipient's unsubscribe link passes through here twice).  A line of printable ASCII,
    such as a link, is its own encoding but for "=": one ``replace`` instead of ``translate``, whose
    dictionary lookup per character was a twentieth of personalising a message."""
    text = data.decode("latin-1")
    encoded = text.replace("=", "=3D") if data.isascii() and text.isprintable() else text.translate(_QP_TRANSLATE)
    if hard and encoded[-1:] in (" ", "\t"):
        encoded = f"{encoded[:-1]}={ord(encoded[-1]):02X}"
    width = QP_LINE - 1  # keep room for the "=" of a soft break
    start, end = 0, len(encoded)
    while end - start > width:
        cut = start + width
        if encoded[cut - 1] == "=":
            cut -= 1
        elif encoded[cut - 2] == "=":
            cut -= 2
        out.append(encoded[start:cut])
        out.append("=\r\n")
        start = cut
    out.append(encoded[start:])
    out.append("\r\n" if hard else "=\r\n")


def html_text(value: str) -> str:
    """Escape for HTML text as lxml serialises it (& < > only)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def html_attribute(value: str) -> str:
    """Escape for a double-quoted HTML attribute as lxml serialises it."""
    return html_text(value).replace('"', "&quot;")


# -- headers ------------------------------------------------------------------------------------


# A display name of plain atoms with single spaces (what phrase_tokens leaves as it is): with a short
# ASCII address the line needs no encoding and no folding, so it is written directly, skipping
# one_line, phrase_tokens and fold (a fifth of personalising a message); the same bytes (tests compare).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_TO_ROOM = MAX_LINE - len("To: ") - len(" <>")


def _plain_address(address: str) -> bool:
    """Printable ASCII without spaces (what the regex ``[\\x21-\\x7e]+`` matches whole), without a regex."""
    return bool(address) and address.isascii() and address.isprintable() and " " not in address


def to_header(name: str | None, address: str) -> bytes:
    """The folded 'To:' line, the name RFC 2047-encoded where needed."""
    if (name and len(name) + len(address) <= _TO_ROOM and len(name) < LONGEST_LITERAL and "=?" not in name
            and _PLAIN_NAME.fullmatch(name) and _plain_address(address)):
        return f"To: {name} <{address}>\r\n".encode("ascii")
    return f"To: {mailbox_value('To', name, address, linesep=CRLF)}\r\n".encode("ascii")


def list_unsubscribe_header(config: Config, https_url: str | None, mailto_token: str | None = None) -> bytes:
    """'List-Unsubscribe:' with mailto and https, one URL per line when it is long (URLs cannot fold)."""
    value, _ = list_unsubscribe(config, https_url, mailto_token)
    line = f"List-Unsubscribe: {value}\r\n"
    if len(line) > 80:
        line = "List-Unsubscribe: " + ",\r\n ".join(value.split(", ")) + "\r\n"
    return line.encode("ascii")


class _DateCache:
    """The Date header, formatted at most once per second."""

    def __init__(self) -> None:
        self.second = -1
        self.line = b""

    def line_for(self, when: float) -> bytes:
        second = int(when)
        if second != self.second:
            text = email.utils.format_datetime(datetime.fromtimestamp(second, tz=timezone.utc))
            self.second, self.line = second, f"Date: {text}\r\n".encode("ascii")
        return self.line


# -- the template -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Personalised:
    """One recipient's message: its Message-ID and the bytes to hand over, as the pieces that make
    them up (shared literal chunks, the same objects in every copy, and this reader's slots)."""

    message_id: str
    pieces: list[bytes]

    @cached_property
    def data(self) -> bytes:
        """The whole message."""
        return b"".join(self.pieces)


class Personaliser:
    """Renders an issue once and produces each recipient's message bytes cheaply."""

    def __init__(
        self, renderer: Renderer, issue: Issue, config: Config, secret: bytes, *,
        subject_prefix: str = "", columns: tuple[str, ...] | None = None,
    ) -> None:
        """``columns``: the subscriber list's merge-field columns (None: no list, templates show placeholders)."""
        self.config = config
        self.secret = secret
        self.domain = domain_of(config.sender_email)
        self.base_url = config.unsubscribe_url  # None: only mailto, nothing per recipient in the link
        # DKIM: set by the sender (send.prepare) when newsletter.yaml configures it; signs the finished pieces
        self.signer: DkimSigner | None = None
        nonce = secrets.token_hex(6)
        self._greeting_token = f"nlslotgreeting{nonce}"
        self._url_token = f"nlslotunsubscribe{nonce}"
        # one token per column; letters and digits only, so escaping, MJML and premailer leave them be
        self._field_tokens = {f"nlslotfield{i}x{nonce}": column for i, column in enumerate(columns or ())}
        fields = MergeFields({column: token for token, column in self._field_tokens.items()}) if columns is not None else None
        tokens = renderer.render(
            issue,
            Personal(greeting=self._greeting_token, unsubscribe_url=self._url_token if self.base_url else None, subscriber=fields),
        )
        _check_tokens_intact(tokens, [self._greeting_token, self._url_token, *self._field_tokens], nonce)
        self.rendered = tokens
        self.subject = one_line(subject_prefix + tokens.subject)
        text_marker, html_marker = f"nlslotbodytext{nonce}", f"nlslotbodyhtml{nonce}"
        skeleton = replace(tokens, text=text_marker + "\n", html=html_marker + "\n")
        msg = build_message(
            skeleton, config, to=_PLACEHOLDER_ADDRESS, subject_prefix=subject_prefix,
            message_id=f"<placeholder@{self.domain}>", date=0,
            unsubscribe_url=_PLACEHOLDER_URL if self.base_url else None,
        )
        raw = message_bytes(msg)
        self._parts: list[bytes | str] = []
        head, sep, body = raw.partition(b"\r\n\r\n")
        for field in split_fields(head + b"\r\n"):
            slot = _HEADER_SLOTS.get(field.split(b":", 1)[0].strip().lower())
            if slot == "list_unsubscribe" and not (self.base_url or config.unsubscribe_email):
                slot = None
            self._parts.append(slot if slot else field)
        self._parts.append(b"\r\n")
        for piece in re.split(f"({text_marker}|{html_marker})\r\n".encode("ascii"), body):
            if piece == text_marker.encode("ascii"):
                self._add_body(tokens.text, html=False)
            elif piece == html_marker.encode("ascii"):
                self._add_body(tokens.html, html=True)
            elif piece:
                self._parts.append(piece)
        self._parts = _merge_literals(self._parts)
        self._dates = _DateCache()
        self.slots = [p for p in self._parts if isinstance(p, str)]
        # per copy: the literal chunks as they are (a list copy) and the slots filled at their places
        self._template = [p if isinstance(p, bytes) else b"" for p in self._parts]
        self._slot_at = [(i, p) for i, p in enumerate(self._parts) if isinstance(p, str)]

    def _add_body(self, body: str, *, html: bool) -> None:
        if not body.endswith("\n"):
            body += "\n"
        pattern = "|".join([self._greeting_token, self._url_token, *self._field_tokens])
        for piece in re.split(f"({pattern})", body):
            if piece == self._greeting_token:
                self._parts.append("greeting_html" if html else "greeting_text")
            elif piece == self._url_token:
                self._parts.append("url_html" if html else "url_text")
            elif piece in self._field_tokens:
                self._parts.append(f"{'html' if html else 'text'}:{self._field_tokens[piece]}")
            elif piece:
                self._parts.append(qp_encode(piece, soft_end=True))

    def unsubscribe_url(self, address: str, token: str | None = None) -> str | None:
        """This recipient's signed https unsubscribe link (None when only an email address is configured)."""
        return personal_unsubscribe_url(self.base_url, self.secret, address, token) if self.base_url else None

    def make_message_id(self) -> str:
        """A new Message-ID: ``<uuid4 hex@sender domain>``."""
        return self.make_message_ids(1)[0]

    def make_message_ids(self, count: int) -> list[str]:
        """``count`` new Message-IDs, each a random (version 4) UUID's hex as ``uuid.uuid4().hex`` writes
        it, from one read of the system's random source for them all rather than one a message."""
        randomness = bytearray(os.urandom(16 * count))
        ids = []
        for start in range(0, 16 * count, 16):
            ids.append(f"<{uuid4_hex(randomness[start:start + 16])}@{self.domain}>")
        return ids

    def personalise(
        self, address: str, name: str | None = None, *,
        fields: dict[str, str] | None = None, message_id: str | None = None, date: float | None = None,
    ) -> Personalised:
        """The full message for one recipient, as bytes ready for SMTP (``fields``: its merge-field columns)."""
        message_id = message_id or self.make_message_id()
        token = unsubscribe_token(self.secret, address) if self.base_url or self.config.unsubscribe_email else None
        url = self.unsubscribe_url(address, token)
        greeting = greeting_for(name)
        values: dict[str, bytes] = {}
        encoded: dict[str, bytes] = {}  # body text -> its quoted-printable (the greeting and a plain link read alike in both parts)
        out = self._template.copy()
        for index, slot in self._slot_at:
            value = values.get(slot)
            if value is None:
                filled = self._fill(slot, address, name, greeting, url, message_id, date, fields, token)
                if isinstance(filled, str):
                    value = encoded.get(filled)
                    if value is None:
                        value = encoded[filled] = qp_encode(filled, soft_end=True)
                else:
                    value = filled
                values[slot] = value
            out[index] = value
        return Personalised(message_id, self.signer.sign_pieces(out) if self.signer else out)

    def _fill(
        self, slot: str, address: str, name: str | None, greeting: str, url: str | None,
        message_id: str, date: float | None, fields: dict[str, str] | None, token: str | None = None,
    ) -> bytes | str:
        """A header slot's bytes, or a body slot's text (the caller encodes it as quoted-printable)."""
        if slot.startswith(("text:", "html:")):
            kind, _, column = slot.partition(":")
            value = merge_value(column, address, name, fields)
            return html_attribute(value) if kind == "html" else value
        if slot == "to":
            return to_header(name, address)
        if slot == "date":
            return self._dates.line_for(time.time() if date is None else date)
        if slot == "message_id":
            return f"Message-ID: {clean(message_id)}\r\n".encode("ascii")
        if slot == "list_unsubscribe":
            return list_unsubscribe_header(self.config, url, token)
        if slot == "greeting_text":
            return greeting_text(greeting)
        if slot == "greeting_html":
            return html_text(greeting)
        assert url is not None
        if slot == "url_text":
            return url
        return html_attribute(url)


def uuid4_hex(random16: bytearray) -> str:
    """The hex of the version-4 UUID made of these 16 random bytes (``uuid.UUID(bytes=..., version=4).hex``)."""
    random16[6] = (random16[6] & 0x0F) | 0x40  # version 4
    random16[8] = (random16[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return random16.hex()


def _check_tokens_intact(rendered: RenderedEmail, tokens: list[str], nonce: str) -> None:
    """Fail before sending if a template filtered a per-recipient value: the filter saw the
    placeholder, not the value, so the reader would get the placeholder.

    What is searched for is this run's random nonce, which no content can contain
    (it did not exist when the content was written): an author's "nlslot" is just text.
    """
    rest = re.sub("|".join(tokens), "", rendered.html + rendered.text)
    if re.search(nonce, rest, re.IGNORECASE):
        raise TemplateError(
            "a template passes a per-recipient value (greeting, unsubscribe_url or subscriber.<column>) through a filter "
            "or changes it; these are filled in per recipient after rendering, so they can only be written as they are",
            path=USER_TEMPLATES_DIR, hint="write {{ subscriber.city }} rather than {{ subscriber.city|upper }}",
        )


def merge_value(column: str, address: str, name: str | None, fields: dict[str, str] | None) -> str:
    """One recipient's value of a merge-field column (email and name come from their own columns)."""
    if column == "email":
        return address
    if column == "name":
        return clean(name)
    return clean((fields or {}).get(column))


def _merge_literals(parts: list[bytes | str]) -> list[bytes | str]:
    merged: list[bytes | str] = []
    for part in parts:
        if isinstance(part, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] = merged[-1] + part
        else:
            merged.append(part)
    return merged


def random_secret() -> bytes:
    """A per-run key for --dry-run, --test and the maildir sender when NEWSLETTER_SECRET is unset."""
    return secrets.token_bytes(32)
