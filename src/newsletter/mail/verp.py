"""VERP envelope senders: ``bounces+<token>@domain``, one token per recipient of one send.

A returned message goes to the envelope sender (Return-Path) of the message
it is about, so a per-recipient envelope sender tells whose message came
back without parsing the bounce at all.  The token has to survive what mail
systems do to a local part, and it must not show the address:

* it is lowercase base32 (``a-z2-7``), so an MTA that case-folds the local
  part changes nothing, and no character needs quoting;
* it is 26 characters, so ``bounces+<token>`` fits a 64-octet local part
  (RFC 5321 section 4.5.3.1.1) with room for a local part of up to 37;
* it carries only a reference to the send record row (the issue's month and
  the row id) and an 80-bit truncated HMAC-SHA256 over that reference and the
  lowercased address, keyed from ``NEWSLETTER_SECRET``.  Nothing in it can be
  read back into an address; the reader looks the row up in the send record
  and checks the MAC against that row's address, so a forged or mistyped
  token, or a row id reused by a later ``--force`` send, never matches
  someone else.

The ChaCha20-Poly1305 tokens of ``tokens.seal`` are the right tool for a link
(they carry the address itself), but they are mixed-case base64 and about
70 characters: too long for a local part and damaged by case-folding.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from dataclasses import dataclass
from functools import lru_cache

from newsletter.content.addresses import VERP_TOKEN_LENGTH

TOKEN_LENGTH = VERP_TOKEN_LENGTH  # base32 of 16 bytes, without padding
_REFERENCE = struct.Struct(">HI")  # month as year*12 + month-1, send record row id
_MAC_BYTES = 10
_KEY_INFO = b"newsletter verp token v1"


@dataclass(frozen=True)
class VerpReference:
    """What a token points at: one row of one issue's send record, and the MAC to check."""

    month: str  # YYYY-MM
    row_id: int
    mac: bytes


@lru_cache(maxsize=8)
def _key(secret: bytes) -> bytes:
    # a key of its own, so a VERP MAC can never be replayed as any other token's MAC
    return hmac.new(secret, _KEY_INFO, hashlib.sha256).digest()


def _month_number(month: str) -> int:
    year, _, number = month.partition("-")
    return int(year) * 12 + int(number) - 1


def _mac(secret: bytes, reference: bytes, address: str) -> bytes:
    return hmac.new(_key(secret), reference + address.lower().encode("utf-8"), hashlib.sha256).digest()[:_MAC_BYTES]


def make_token(secret: bytes, month: str, row_id: int, address: str) -> str:
    """The 26-character lowercase token for row ``row_id`` of ``month``'s send record, sent to ``address``."""
    reference = _REFERENCE.pack(_month_number(month), row_id)
    raw = reference + _mac(secret, reference, address)
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def read_token(token: str) -> VerpReference | None:
    """The reference in a token, not yet verified (None when it is not one of ours at all)."""
    token = token.strip().lower()
    if len(token) != TOKEN_LENGTH or not token.isalnum():
        return None
    try:
        raw = base64.b32decode(token.upper() + "=" * 6)
    except ValueError:
        return None
    if base64.b32encode(raw).decode("ascii").rstrip("=").lower() != token:
        return None  # the last character's two spare bits were changed: not a token we made
    number, row_id = _REFERENCE.unpack_from(raw)
    year, month = divmod(number, 12)
    if not 1970 <= year <= 9999:
        return None
    return VerpReference(f"{year:04d}-{month + 1:02d}", row_id, raw[_REFERENCE.size :])


def verify(secret: bytes, reference: VerpReference, address: str) -> bool:
    """True when the token was made with ``secret`` for this row and this address."""
    packed = _REFERENCE.pack(_month_number(reference.month), reference.row_id)
    return hmac.compare_digest(_mac(secret, packed, address), reference.mac)


def verp_address(bounces: str, token: str) -> str:
    """``local+token@domain`` for the configured bounces address ``local@domain``."""
    local, _, domain = bounces.rpartition("@")
    return f"{local}+{token}@{domain}"


def token_of(bounces: str, address: str) -> str | None:
    """The token in ``address`` when it is a VERP form of ``bounces`` (any case), else None."""
    local, _, domain = bounces.lower().rpartition("@")
    got_local, _, got_domain = address.strip().strip("<>").lower().rpartition("@")
    if got_domain != domain or not got_local.startswith(local + "+"):
        return None
    return got_local[len(local) + 1 :] or None
