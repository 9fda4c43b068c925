"""A standards-correct MIME message for a rendered issue, made with the standard library.

multipart/alternative with text/plain first and text/html last (clients show
the last part they understand), UTF-8, quoted-printable bodies (mjml writes
24 KB lines; SMTP allows 998 octets), RFC 2047 for non-ASCII names.
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
from newsletter.mail.headers import mailbox_value, one_line, unstructured_value
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
    msg.set_raw("From", mailbox_value("From", config.sender_name, config.sender_email))
    if to is None:  # a message for nobody in particular (build, archive): SpamAssassin wants a To
        msg.set_raw("To", UNDISCLOSED_RECIPIENTS)
    else:
        if isinstance(to, Address):
            msg.set_raw("To", mailbox_value("To", to.display_name, to.addr_spec))
        else:  # a free-form string: let the header registry parse and encode it
            msg["To"] = one_line(to)
    if config.reply_to:
        msg.set_raw("Reply-To", mailbox_value("Reply-To", config.sender_name, config.reply_to))
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
    text, html = _qp_body(rendered.text), _qp_body(rendered.html)
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
    """UTF-8 quoted-printable, with binascii's C encoder (the email package's pure-Python
    encoder took ~2 ms of a 12 ms build for mjml's long lines)."""
    normalised = body.replace("\r\n", "\n").encode("utf-8")
    return binascii.b2a_qp(normalised, istext=True, quotetabs=False).decode("ascii")


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
