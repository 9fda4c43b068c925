"""Opaque, authenticated tokens that carry a reader's address through a link without showing it.

A token is ``base64url(version || nonce || ChaCha20-Poly1305(key, nonce, issued_at || address,
associated data = purpose))``, where the nonce is an HMAC of the purpose and the plaintext (a
synthetic IV, as in SIV modes): the same address, purpose and time always give the same token, so
a reader's unsubscribe link is stable from issue to issue, and a repeated nonce can only ever
reveal that two tokens are equal.  Encrypting rather than only signing keeps the address out of the
link entirely (an HMAC'd ``address.mac`` pair shows it, even as base64), while still letting the
endpoint act for a reader who is in no store at all, such as a recipient of a CSV send.  The key is
derived from ``NEWSLETTER_SECRET`` with HKDF, so the same secret always opens the same tokens: a
key that changes invalidates every link already sent.  The purpose ("unsubscribe", "confirm") is
bound as associated data, so a confirmation token can never unsubscribe and vice versa; changing
any character breaks the Poly1305 tag.  ``cryptography`` does the AEAD in OpenSSL (a few
microseconds a token), cheap enough to make one per message.  The nonce's HMAC-SHA256 comes from
an ``hmac`` object keyed once per secret and copied per token: ``hmac.new`` or ``hmac.digest``
set the key up again on every call, which cost as much as the rest of a token, paid once per
message of a send.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import time
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from newsletter.errors import NewsletterError

SECRET_ENV = "NEWSLETTER_SECRET"  # the one secret every token, VERP MAC and link key comes from
VERSION = b"\x01"
_NONCE = 12
_TIME = struct.Struct(">Q")
UNSUBSCRIBE = "unsubscribe"  # never expires while the secret is kept
CONFIRM = "confirm"
CONFIRM_MAX_AGE = 7 * 24 * 3600


class TokenError(NewsletterError):
    """A token that was not made with this secret for this purpose, was altered, or is too old."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message, hint="ask for a new link" if expired else "use the link exactly as it came in the email")
        self.expired = expired


@lru_cache(maxsize=8)
def _keys(secret: bytes) -> tuple[ChaCha20Poly1305, bytes]:
    """The AEAD and the nonce key, derived from the secret (cached: HKDF costs more than a token)."""
    material = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"newsletter link token v1").derive(secret)
    return ChaCha20Poly1305(material[:32]), material[32:]


def _aead(secret: bytes) -> ChaCha20Poly1305:
    return _keys(secret)[0]


@lru_cache(maxsize=8)
def _nonce_hmac(secret: bytes) -> hmac.HMAC:
    """HMAC-SHA256 keyed with the nonce key, to be copied per token; cached with the key."""
    return hmac.new(_keys(secret)[1], digestmod=hashlib.sha256)


def _nonce(secret: bytes, message: bytes) -> bytes:
    """HMAC-SHA256(nonce key, message) cut to the nonce's length."""
    mac = _nonce_hmac(secret).copy()
    mac.update(message)
    return mac.digest()[:_NONCE]


def seal(secret: bytes, purpose: str, address: str, *, now: float | None = None) -> str:
    """An URL-safe token ([A-Za-z0-9_-]) for ``address`` and ``purpose``, made at ``now``."""
    issued = int(time.time() if now is None else now)
    aead = _keys(secret)[0]
    plain = _TIME.pack(issued) + address.encode("utf-8")
    label = purpose.encode("ascii")
    nonce = _nonce(secret, label + b"\0" + plain)
    sealed = aead.encrypt(nonce, plain, label)
    return binascii.b2a_base64(VERSION + nonce + sealed, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


_URLSAFE = bytes.maketrans(b"+/", b"-_")  # base64.urlsafe_b64encode's alphabet, without its Python-level wrapper


def unseal(secret: bytes, purpose: str, token: str, *, max_age: float | None = None, now: float | None = None) -> str:
    """The address a token was sealed for; ``TokenError`` if it is altered, foreign or too old."""
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise TokenError("this link is not valid: its token is damaged") from None
    if len(raw) < 1 + _NONCE + _TIME.size + 16 or raw[:1] != VERSION:
        raise TokenError("this link is not valid: its token is damaged")
    try:
        plain = _aead(secret).decrypt(raw[1 : 1 + _NONCE], raw[1 + _NONCE :], purpose.encode("ascii"))
    except InvalidTag:
        raise TokenError("this link is not valid: it was changed, or was not made for this purpose") from None
    (issued,) = _TIME.unpack_from(plain)
    if max_age is not None and (time.time() if now is None else now) - issued > max_age:
        raise TokenError("this link has expired", expired=True)
    try:
        return plain[_TIME.size :].decode("utf-8")
    except UnicodeDecodeError:  # only a token made by our own key can get here
        raise TokenError("this link is not valid: its token is damaged") from None
