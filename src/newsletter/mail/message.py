"""A standards-correct MIME message for a rendered issue, made with the standard library.

multipart/alternative with text/plain first and text/html last (clients show
the last part they understand), UTF-8, quoted-printable bodies (mjml writes
24 KB lines; SMTP allows 998 octets), RFC 2047 for non-ASCII names.

The HTML body's quoted-printable is written here (``_qp_encode``) rather than
by ``binascii.b2a_qp``: b2a_qp tests every byte against all of its rules twice
(a counting pass, then a writing pass), ~85 machine instructions a byte, and
the HTML is two thirds of building a message.  Here the few bytes that need
escaping are found with whole-buffer byte operations (``bytes.replace`` for
"=", one ``bytes.translate`` for the rest) and only mjml's long lines are cut
in Python, every ~75 characters: 0.23 -> 0.17 ms for the 26 KB HTML of issue
2026-10.  For a body of short lines (the text part) the Python turn per line
costs what it saves, so b2a_qp still writes those.  The output is exactly
b2a_qp's (``istext=True, quotetabs=False``) rule for rule, and a body with a
bare CR still goes to b2a_qp; tests/test_message_qp.py compares the two on
random bodies.
"""

from __future__ import annotations

import binascii
import email.policy
import email.utils
import re
import secrets
import time
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage, Message, MIMEPart

from newsletter.content.addresses import domain_of
from newsletter.mail.headers import mailbox_from_tokens, mailbox_value, one_line, phrase_tokens, unstructured_value
from newsletter.content.model import Config, slugify
from newsletter.mail.render import RenderedEmail

CRLF = "\r\n"

# SMTP policy: CRLF line endings, 78 columns.  Header values are stored encoded and folded by
# headers.py and never refolded: re-parsing would put spaces between a name's encoded-words.
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=78, refold_source="none")
# RFC 5322 section 3.4 empty group: the To of a message built for no one reader.
UNDISCLOSED_RECIPIENTS = "undisclosed-recipients:;"


def list_id(config: Config) -> str:
    """RFC 2919 List-Id value: 'Name <slug.domain>', the name encoded like a display name."""
    ident = config.list_id or f"{slugify(config.name)}.{domain_of(config.sender_email)}"
    return mailbox_value("List-Id", config.name, ident)


def list_unsubscribe(config: Config, https_url: str | None = None, mailto_token: str | None = None) -> tuple[str, bool]:
    """The List-Unsubscribe value and whether one-click (RFC 8058) applies (it needs HTTPS).

    ``mailto_token``: the reader's signed unsubscribe token, put in the mailto's subject so that
    `newsletter inbox` acts on the token, never on a From that anyone can forge.
    """
    parts = []
    if config.unsubscribe_email:
        subject = f"unsubscribe%20{mailto_token}" if mailto_token else "unsubscribe"
        parts.append(f"<mailto:{config.unsubscribe_email}?subject={subject}>")
    https = https_url or config.unsubscribe_url
    if https:
        parts.append(f"<{https}>")
    return ", ".join(parts), bool(https)


def feedback_id(config: Config, month: str) -> str:
    """The Feedback-ID value, '<issue month>:<list name>:<sender name>' (Gmail's feedback loop).

    Each field is a slug (ASCII letters, digits and '-'): the header must stay ASCII, a
    colon inside a name would shift the fields, and a complaint report quoting it is
    read back field by field (``parse_feedback_id``).  Names are cut to 30 characters so
    the value fits one 78-column line (it has no space to fold at).
    """
    return ":".join((slugify(month), _short_slug(config.name), _short_slug(config.sender_name)))


def _short_slug(name: str) -> str:
    return slugify(name)[:30].strip("-") or "item"


def feedback_id_field(value: str, linesep: str = "\n") -> str:
    """The Feedback-ID value as stored: on its own line after the colon when 'Feedback-ID: value' passes 78 columns."""
    return value if len("Feedback-ID: ") + len(value) <= 78 else f"{linesep} {value}"


def parse_feedback_id(value: str) -> tuple[str, str, str] | None:
    """(issue month, list slug, sender slug) of a Feedback-ID we wrote, or None for anything else."""
    fields = value.strip().split(":")
    if len(fields) != 3 or not re.fullmatch(r"\d{4}-\d{2}", fields[0]):
        return None
    return fields[0], fields[1], fields[2]


def build_message(
    rendered: RenderedEmail,
    config: Config,
    *,
    to: str | Address | None = None,
    subject_prefix: str = "",
    message_id: str | None = None,
    date: float | None = None,
    unsubscribe_url: str | None = None,
    mailto_token: str | None = None,
) -> EmailMessage:
    """Make the MIME message of one rendered email."""
    msg = EmailMessage(policy=WIRE_POLICY)
    # Every header is stored encoded and folded already (set_raw): the header
    # registry's parse-and-refold cost ~0.3 ms a header, most of a message.
    msg.set_raw("Subject", unstructured_value("Subject", subject_prefix + rendered.subject))
    sender_tokens = phrase_tokens(config.sender_name)  # encoded once for From and Reply-To
    msg.set_raw("From", mailbox_from_tokens("From", sender_tokens, config.sender_email))
    if to is None:  # a message for nobody in particular (build, archive): SpamAssassin wants a To
        msg.set_raw("To", UNDISCLOSED_RECIPIENTS)
    else:
        if isinstance(to, Address):
            msg.set_raw("To", mailbox_value("To", to.display_name, to.addr_spec))
        else:  # a free-form string: let the header registry parse and encode it
            msg["To"] = one_line(to)
    if config.reply_to:
        msg.set_raw("Reply-To", mailbox_from_tokens("Reply-To", sender_tokens, config.reply_to))
    when = datetime.fromtimestamp(date if date is not None else time.time(), tz=timezone.utc)
    msg.set_raw("Date", email.utils.format_datetime(when))
    msg.set_raw("Message-ID", one_line(message_id or email.utils.make_msgid(domain=domain_of(config.sender_email))))
    msg.set_raw("List-Id", list_id(config))
    value, one_click = list_unsubscribe(config, unsubscribe_url, mailto_token)
    if value:
        msg.set_raw("List-Unsubscribe", one_line(value).replace(", ", ",\n "))
        if one_click:
            msg.set_raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    msg.set_raw("Feedback-ID", feedback_id_field(feedback_id(config, rendered.month)))
    msg.set_raw("MIME-Version", "1.0")
    text, html = _qp_body(rendered.text), _qp_encoded(rendered.html_utf8)  # the HTML as render encoded it, once
    msg.set_raw("Content-Type", f'multipart/alternative;\n boundary="{_boundary(text, html)}"')
    msg.attach(_text_part("plain", text))
    msg.attach(_text_part("html", html))
    return msg


def _boundary(*bodies: str) -> str:
    """A multipart boundary found in none of the encoded bodies.

    Quoted-printable never writes "==" (an "=" is always followed by two hex
    digits or a line end), so this practically always succeeds first time.
    """
    while True:
        boundary = f"=={secrets.token_hex(12)}=="
        if not any(boundary in body for body in bodies):
            return boundary


def _qp_body(body: str) -> str:
    """UTF-8 quoted-printable with LF line ends: ``binascii.b2a_qp(..., istext=True)`` of the body
    with CRLF made LF, by ``_qp_encode`` when its lines are long (the email package's
    pure-Python encoder took ~2 ms of a 12 ms build for mjml's long lines)."""
    return _qp_encoded(body.encode("utf-8"))


def _qp_encoded(data: bytes) -> str:
    """``_qp_body`` of a body already encoded in UTF-8."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    if b"\r" in data or len(data) < QP_ROOM * (data.count(b"\n") + 1):  # a bare CR, or short lines
        return binascii.b2a_qp(data, istext=True, quotetabs=False).decode("ascii")
    return _qp_encode(data)


# Quoted-printable as binascii.b2a_qp(data, istext=True, quotetabs=False) writes it (CPython's
# Modules/binascii.c): lines of at most 76 characters, so a soft break ("=" at the end) comes
# after at most 75; an escape "=XX" never straddles a break; the last character of a line may
# take column 76 when it is a literal.
QP_ROOM = 75
# Bytes written as they are: tab, line feed and printable ASCII ("=" is escaped beforehand).
_QP_LITERAL = b"\t\n" + bytes(range(0x20, 0x7F))
# bytes.translate table: 1 for a byte written as it is, 0 for a byte written as "=XX".
_QP_LITERAL_MARKS = bytes(1 if byte in _QP_LITERAL else 0 for byte in range(256))
# b2a_qp escapes a "." alone at the start of a line (followed by a line end, a NUL or the end
# of the data): some SMTP software would take that line for the end of the message.
_QP_LONE_DOT = re.compile(rb"(?m)^\.(?=[\n\x00]|\Z)")


def _qp_encode(data: bytes) -> str:
    """``binascii.b2a_qp(data, istext=True, quotetabs=False)`` as a str, for ``data`` without CR."""
    encoded = _qp_soft_breaks(_qp_escape(data, lone_dots=False))
    if encoded is None:  # a "." alone on a line: escaped first, which may move the soft breaks
        encoded = _qp_soft_breaks(_qp_escape(data, lone_dots=True))
    assert encoded is not None
    return encoded


def _qp_escape(data: bytes, *, lone_dots: bool) -> str:
    """``data`` with every byte b2a_qp escapes wherever it stands written as "=XX" (and with a
    "." alone on a line escaped when ``lone_dots``), lines not yet cut.

    Spaces and tabs before a line feed stay literal here: b2a_qp counts them as one column
    when it places soft breaks and escapes them only after (``_qp_soft_breaks``).
    """
    if b"=" in data:
        data = data.replace(b"=", b"=3D")
    if lone_dots:
        data = _QP_LONE_DOT.sub(b"=2E", data)
    if data.endswith((b" ", b"\t")):  # whitespace ending the data is escaped like any other byte
        data = b"%s=%02X" % (data[:-1], data[-1])
    marks = data.translate(_QP_LITERAL_MARKS)
    start = marks.find(0)
    if start == -1:
        return data.decode("ascii")
    pieces = []
    done = 0
    while start != -1:  # one run of bytes to escape (non-ASCII characters, controls) a turn
        end = marks.find(1, start)
        if end == -1:
            end = len(data)
        pieces.append(data[done:start])
        pieces.append(b"=" + binascii.hexlify(data[start:end], b"=").upper())
        done = end
        start = marks.find(0, end)
    pieces.append(data[done:])
    return b"".join(pieces).decode("ascii")


def _qp_soft_breaks(escaped: str) -> str | None:
    """``escaped`` cut into lines of at most 76 characters with soft breaks, as b2a_qp cuts them;
    None when a line is a "." alone (or before a NUL) still unescaped.

    A line is cut greedily after 75 characters, or 73 or 74 when the cut would split an "=XX"
    (a literal "=" is always escaped, so an "=" starts an escape); the last 76 of a line stay
    together when they end with a literal.  Then a space or tab before a line feed is escaped,
    which may make that line 78 characters long, as b2a_qp does.
    """
    pieces = []  # the text between soft breaks
    piece_start = line_start = 0
    length = len(escaped)
    whitespace_before_newline = False
    while True:
        newline = escaped.find("\n", line_start)
        line_end = length if newline == -1 else newline
        if escaped[line_start:line_start + 1] == "." and (line_end == line_start + 1 or escaped.startswith("=00", line_start + 1)):
            return None
        start = line_start
        while line_end - start > QP_ROOM:
            if line_end - start == QP_ROOM + 1 and escaped[line_end - 3] != "=":
                break
            cut = start + QP_ROOM
            if escaped[cut - 1] == "=":
                cut -= 1
            elif escaped[cut - 2] == "=":
                cut -= 2
            pieces.append(escaped[piece_start:cut])
            piece_start = start = cut
        if newline == -1:
            break
        if newline and escaped[newline - 1] in " \t":
            whitespace_before_newline = True
        line_start = newline + 1
    pieces.append(escaped[piece_start:])
    wrapped = "=\n".join(pieces)
    if whitespace_before_newline:
        wrapped = wrapped.replace(" \n", "=20\n").replace("\t\n", "=09\n")
    return wrapped


def _text_part(subtype: str, encoded: str) -> MIMEPart:
    """A UTF-8 quoted-printable text part around an already encoded body."""
    part = MIMEPart(policy=WIRE_POLICY)
    part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
    part.set_raw("Content-Transfer-Encoding", "quoted-printable")
    part.set_payload(encoded)
    return part


def message_bytes(msg: EmailMessage) -> bytes:
    """The message as it goes on the wire (CRLF, no line over 998 octets).

    What ``msg.as_bytes(policy=WIRE_POLICY)`` writes, byte for byte, written here for the
    messages made above: the email package's generator re-parses the Content-Type header
    of every part several times (a fifth of a build).  Anything else (a header object, a
    non-ASCII body, a preamble, multipart/signed...) goes to the email package.
    """
    fast = _wire_bytes(msg)
    return fast.encode("ascii") if fast is not None else msg.as_bytes(policy=WIRE_POLICY)


_NEWLINES = re.compile(r"\r\n|\r|\n")  # the generator's NLCRE: every line end becomes CRLF
# The Content-Type build_message writes: its boundary is what get_boundary() would parse out.
_OUR_MULTIPART = re.compile(r'multipart/alternative;\n boundary="(==[0-9a-f]{24}==)"')


def _wire_bytes(part: Message) -> str | None:
    """The generator's output for ``part`` with WIRE_POLICY, or None where it is not this simple.

    Headers stored with ``set_raw`` are written as stored (``refold_source="none"``), their
    lines joined with CRLF; a text body has its line ends made CRLF; a multipart body is each
    part between boundary lines.
    """
    if part.preamble is not None or part.epilogue is not None:
        return None
    lines, content_type, raw_type = [], None, ""
    for name, value in part.raw_items():
        if type(value) is not str or not value.isascii():  # header objects (a str subclass) fold themselves
            return None
        if name.lower() == "content-type":
            raw_type = value if content_type is None else ""  # get_boundary() reads the first
            content_type = value.lstrip().lower()
        lines.append(f"{name}: {CRLF.join(value.splitlines())}{CRLF}")
    lines.append(CRLF)
    payload = part._payload  # get_payload() parses Content-Transfer-Encoding, unused here
    if content_type is None:  # the generator guesses from the parent
        return None
    if isinstance(payload, list) and content_type.startswith("multipart/") and not content_type.startswith("multipart/signed"):
        ours = _OUR_MULTIPART.fullmatch(raw_type)  # build_message's own header: no need to parse it
        boundary = ours.group(1) if ours else part.get_boundary()
        parts = [_wire_bytes(sub) for sub in payload]
        if not boundary or any(p is None for p in parts):
            return None
        lines.append(f"--{boundary}{CRLF}" + f"{CRLF}--{boundary}{CRLF}".join(parts) + f"{CRLF}--{boundary}--{CRLF}")  # type: ignore[arg-type]
    elif isinstance(payload, str) and payload.isascii() and content_type.startswith("text/"):
        lines.append(payload.replace("\n", CRLF) if "\r" not in payload else _NEWLINES.sub(CRLF, payload))
    else:
        return None
    return "".join(lines)
