"""Read one message that came back and say what it is: no mailbox, no database, no side effects.

The first of three tiers, as in Mailman (classify; record one event per
address; score), so that it can be tested on a folder of real samples:

* **DSN** (RFC 3464): a ``message/delivery-status`` part, read with the
  standard library's ``email`` parser (it splits the part into its
  per-message and per-recipient field blocks).  Status 5.x.x is a hard
  bounce, 4.x.x (or a delayed Action) a soft one; a full mailbox (X.2.2, or a
  diagnostic that says so) is soft whatever its class, as Mailman and the
  issue want; delivered/relayed/expanded reports are not failures at all.
* **ARF** (RFC 5965): a ``message/feedback-report`` part; ``Feedback-Type:
  abuse`` is a complaint, any other type is not ours to act on.
* **Non-standard bounces** (qmail, Exim, Exchange, ...): ``flufl.bounce``'s
  detectors, but only for mail from a mailer daemon (null Return-Path,
  MAILER-DAEMON or postmaster) or sent to a VERP address, because its
  heuristic detectors would otherwise find "failures" in ordinary mail.
* **Auto-replies** (RFC 3834 ``Auto-Submitted``, and the vacation and
  out-of-office headers and subjects real responders use) are recognised only
  after DSNs and ARF, since Postfix and others put ``Auto-Submitted:
  auto-replied`` on their bounces too.  Header names are compared
  case-insensitively (``Message.get``), the Mailman ``Precedence:`` pitfall.
* **Unsubscribe requests**: mail to ``unsubscribe.email`` whose subject holds
  a token (from the per-recipient ``mailto:`` in List-Unsubscribe).

Everything else is ``other`` and is left exactly where it was.  Whether a
message is about *our* list, and whose it is, is decided by ``inbox.py``
from what is collected here (VERP tokens, the original Message-ID, List-Id,
Feedback-ID, Final-Recipient).
"""

from __future__ import annotations

import email
import email.message
import email.utils
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from typing import Iterable

import flufl.bounce

HARD, SOFT, COMPLAINT, UNSUBSCRIBE, AUTO_REPLY, OTHER = "hard", "soft", "complaint", "unsubscribe", "auto-reply", "other"
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "X-Rcpt-To", "To", "Cc")
_FULL_MAILBOX = re.compile(r"mailbox (is )?full|over ?quota|quota exceeded|exceeded (the )?(storage|quota)|insufficient (system )?storage", re.I)
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)\b|out of (the )?office\b|abwesenheitsnotiz|r[ée]ponse automatique|auto:)", re.I,
)
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery (subsystem|system)", re.I)
_TOKEN_WORD = re.compile(r"[A-Za-z0-9_-]{40,}")


@dataclass(frozen=True)
class Failure:
    """One recipient a report is about, with the evidence to check a false positive against."""

    address: str | None  # Final-Recipient (DSN), Original-Rcpt-To (ARF) or flufl.bounce's finding
    kind: str  # HARD or SOFT (COMPLAINT for an ARF report)
    evidence: dict[str, str]


@dataclass(frozen=True)
class Returned:
    """What one message is, and what it says about whom."""

    kind: str
    message_id: str  # of the returned message itself (the idempotency key)
    subject: str
    recipients_to: tuple[str, ...]  # every address it was delivered to (for VERP tokens and unsubscribe.email)
    failures: tuple[Failure, ...] = ()
    original_message_id: str | None = None  # of our message, from the attached original
    original_headers: dict[str, str] = field(default_factory=dict)  # To, From, List-Id, Feedback-ID of the original
    unsubscribe_tokens: tuple[str, ...] = ()
    references: tuple[str, ...] = ()  # In-Reply-To and References: an auto-reply names our Message-ID there
    date: str | None = None
    why: str = ""  # one line for the report: why it got this kind


def parse(data: bytes) -> email.message.Message:
    """The message as the standard library's (compat32) parser reads it, which flufl.bounce expects."""
    return email.message_from_bytes(data)


def classify(data: bytes, *, unsubscribe_address: str | None = None) -> Returned:
    """Classify one raw message (see the module docstring for the order and the rules)."""
    msg = parse(data)
    recipients = tuple(dict.fromkeys(_addresses(msg, RECIPIENT_HEADERS)))
    base = dict(
        message_id=_text(msg, "Message-ID").strip(), subject=header_text(msg.get("Subject")),
        recipients_to=recipients, date=_text(msg, "Date").strip() or None,
        references=tuple(re.findall(r"<[^<>\s]+>", f"{msg.get('In-Reply-To') or ''} {msg.get('References') or ''}")),
    )
    original = _original_headers(msg)
    common = dict(base, original_message_id=original.get("Message-ID"), original_headers=original)
    report = _parts(msg, "message/delivery-status")
    if report:
        failures = tuple(_dsn_failures(report[0], msg))
        kinds = {f.kind for f in failures}
        if not failures:
            return Returned(OTHER, **common, why="a delivery report with no failure (delivered, relayed or expanded)")
        kind = HARD if HARD in kinds else SOFT
        return Returned(kind, **common, failures=failures, why="RFC 3464 delivery status notification")
    feedback = _parts(msg, "message/feedback-report")
    if feedback:
        fields = _first_block(feedback[0])
        feedback_type = _text(fields, "Feedback-Type").strip().lower()
        if feedback_type != "abuse":
            return Returned(OTHER, **common, why=f"a feedback report of type '{feedback_type or 'none'}', not a complaint")
        evidence = _evidence(fields, ("Feedback-Type", "User-Agent", "Reporting-MTA", "Arrival-Date", "Source-IP", "Original-Mail-From"))
        evidence.setdefault("date", base["date"] or "")
        rcpt = _first_address(_text(fields, "Original-Rcpt-To")) or _first_address(original.get("To"))
        return Returned(COMPLAINT, **common, failures=(Failure(rcpt, COMPLAINT, evidence),), why="RFC 5965 abuse report")
    if unsubscribe_address and unsubscribe_address.lower() in {r.lower() for r in recipients}:
        tokens = tuple(_TOKEN_WORD.findall(base["subject"]))
        return Returned(UNSUBSCRIBE, **common, unsubscribe_tokens=tokens, why="mail to unsubscribe.email")
    if is_auto_reply(msg):
        return Returned(AUTO_REPLY, **common, why="an automatic reply (RFC 3834 Auto-Submitted, vacation or out-of-office)")
    if _from_daemon(msg) or _verp_like(recipients):
        failures = tuple(_flufl_failures(msg, base["date"]))
        if failures:
            kind = HARD if any(f.kind == HARD for f in failures) else SOFT
            return Returned(kind, **common, failures=failures, why="a non-standard bounce recognised by flufl.bounce")
    return Returned(OTHER, **common, why="not a bounce, complaint, auto-reply or unsubscribe request")


def is_auto_reply(msg: email.message.Message) -> bool:
    """RFC 3834 Auto-Submitted (anything but 'no'), or what vacation and out-of-office responders add."""
    auto = _text(msg, "Auto-Submitted").strip().lower()
    if auto and not auto.startswith("no"):
        return True
    if any(msg.get(name) for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Vacation")):
        return True
    if _text(msg, "Precedence").strip().lower() == "auto_reply":
        return True
    if _text(msg, "X-Auto-Response-Suppress") and _AUTO_SUBJECT.search(header_text(msg.get("Subject"))):
        return True  # Exchange/Outlook out-of-office
    # a subject alone is weak evidence; inbox.py acts on it only for mail tied to our list (VERP, References)
    return bool(_AUTO_SUBJECT.search(header_text(msg.get("Subject"))))


def header_text(value: object) -> str:
    """A header decoded from RFC 2047 to text, on one line (never raises on bad encodings)."""
    if value is None:
        return ""
    try:
        text = str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        text = str(value)
    return " ".join(text.split())


def _text(msg: email.message.Message, name: str) -> str:
    """A header's raw value as a str ("" when absent).

    The compat32 parser (which flufl.bounce needs) hands back an ``email.header.Header``,
    not a str, for a value holding undecodable 8-bit bytes: one such header in one spam
    message must not stop every run of ``newsletter inbox``.
    """
    value = msg.get(name)
    return "" if value is None else str(value)


def _addresses(msg: email.message.Message, names: Iterable[str]) -> list[str]:
    values = [v for name in names for v in msg.get_all(name) or []]
    return [addr.strip() for _name, addr in email.utils.getaddresses([str(v) for v in values]) if "@" in addr]


def _first_address(value: str | None) -> str | None:
    if not value:
        return None
    value = value.split(";", 1)[1] if ";" in value and "@" not in value.split(";", 1)[0] else value  # "rfc822; a@b"
    found = [a for _n, a in email.utils.getaddresses([value]) if "@" in a]
    return found[0].strip() if found else None


def _parts(msg: email.message.Message, content_type: str) -> list[email.message.Message]:
    return [part for part in msg.walk() if part.get_content_type() == content_type]


def _blocks(part: email.message.Message) -> list[email.message.Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [b for b in payload if isinstance(b, email.message.Message)]
    if isinstance(payload, str):  # a part the parser left as text (e.g. base64): decode and parse its blocks ourselves
        raw = part.get_payload(decode=True)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else payload
        return [email.message_from_string(block.strip() + "\n") for block in re.split(r"\r?\n\s*\r?\n", text) if block.strip()]
    return []


def _first_block(part: email.message.Message) -> email.message.Message:
    blocks = _blocks(part)
    return blocks[0] if blocks else email.message.Message()


def _evidence(fields: email.message.Message, names: Iterable[str]) -> dict[str, str]:
    out = {}
    for name in names:
        value = fields.get(name)
        if value:
            out[name.lower().replace("-", "_")] = " ".join(str(value).split())
    return out


def _dsn_failures(part: email.message.Message, msg: email.message.Message) -> Iterable[Failure]:
    blocks = _blocks(part)
    if not blocks:
        return
    per_message = _evidence(blocks[0], ("Reporting-MTA", "Arrival-Date"))
    for block in blocks[1:]:
        action = _text(block, "Action").strip().lower()
        status = _text(block, "Status").strip().split(" ")[0]
        if action in ("delivered", "relayed", "expanded"):
            continue
        evidence = dict(per_message)
        evidence.update(_evidence(block, ("Action", "Status", "Diagnostic-Code", "Remote-MTA", "Last-Attempt-Date", "Final-Recipient")))
        evidence["date"] = evidence.get("last_attempt_date") or evidence.get("arrival_date") or _text(msg, "Date").strip()
        address = _first_address(_text(block, "Final-Recipient")) or _first_address(_text(block, "Original-Recipient"))
        yield Failure(address, _dsn_kind(action, status, evidence.get("diagnostic_code", "")), evidence)


def _dsn_kind(action: str, status: str, diagnostic: str) -> str:
    """Hard for 5.x.x (or a failed Action without a Status), soft for 4.x.x, delays and full mailboxes."""
    if status.endswith(".2.2") or _FULL_MAILBOX.search(diagnostic):
        return SOFT
    if status.startswith("5"):
        return HARD
    if status.startswith("4") or action == "delayed":
        return SOFT
    return HARD if action == "failed" else SOFT


def _flufl_failures(msg: email.message.Message, date: str | None) -> Iterable[Failure]:
    try:
        temporary, permanent = flufl.bounce.all_failures(msg)
    except Exception:  # noqa: BLE001 - a detector choking on odd mail must not stop the run; it stays "other"
        return
    for kind, found in ((HARD, permanent), (SOFT, set(temporary) - set(permanent))):
        for raw in sorted(found):
            address = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            yield Failure(address.strip("<>"), kind, {"detector": "flufl.bounce", "date": date or ""})


def _from_daemon(msg: email.message.Message) -> bool:
    return_path = _text(msg, "Return-Path").strip()
    return return_path in ("<>", "") and msg.get("Return-Path") is not None or bool(_DAEMON.search(_text(msg, "From")))


def _verp_like(recipients: Iterable[str]) -> bool:
    return any("+" in r.partition("@")[0] for r in recipients)


def _original_headers(msg: email.message.Message) -> dict[str, str]:
    """Headers of our original message inside a report (message/rfc822 or text/rfc822-headers)."""
    for part in msg.walk():
        kind = part.get_content_type()
        headers: email.message.Message | None = None
        if kind == "message/rfc822":
            payload = part.get_payload()
            headers = payload[0] if isinstance(payload, list) and payload else None
        elif kind == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            headers = email.message_from_bytes(text if isinstance(text, bytes) else str(text).encode())
        if headers is not None:
            wanted = ("Message-ID", "To", "From", "List-Id", "Feedback-ID", "Subject", "Date", "Return-Path")
            return {name: " ".join(str(headers[name]).split()) for name in wanted if headers.get(name)}
    return {}
