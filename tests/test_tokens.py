"""Link tokens: bound to one address and one purpose, opaque, tamper-evident, expiring on demand."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.errors import NewsletterError
from newsletter.mail.tokens import CONFIRM, CONFIRM_MAX_AGE, UNSUBSCRIBE, TokenError, seal, unseal

SECRET = b"a long random string"


def test_round_trip_and_url_safe() -> None:
    token = seal(SECRET, UNSUBSCRIBE, "Ada.Lovelace@Example.org")
    assert unseal(SECRET, UNSUBSCRIBE, token) == "Ada.Lovelace@Example.org"
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_the_address_never_shows_not_even_as_base64() -> None:
    address = "ada.lovelace@example.org"
    token = seal(SECRET, UNSUBSCRIBE, address)
    assert "ada" not in token.lower() and "lovelace" not in token.lower()
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"lovelace" not in raw.lower() and b"example" not in raw.lower()


def test_bound_to_purpose_and_secret() -> None:
    token = seal(SECRET, CONFIRM, "a@example.org")
    with pytest.raises(TokenError, match="not made for this purpose"):
        unseal(SECRET, UNSUBSCRIBE, token)
    with pytest.raises(TokenError):
        unseal(b"another secret", CONFIRM, token)
    assert isinstance(TokenError("x"), NewsletterError)


@pytest.mark.parametrize("bad", ["", "garbage", "é", "A" * 80, "=="])
def test_garbage_is_refused_clearly(bad: str) -> None:
    with pytest.raises(TokenError, match="not valid"):
        unseal(SECRET, UNSUBSCRIBE, bad)


def test_confirm_tokens_expire_unsubscribe_tokens_do_not() -> None:
    made = 1_700_000_000
    confirm = seal(SECRET, CONFIRM, "a@example.org", now=made)
    assert unseal(SECRET, CONFIRM, confirm, max_age=CONFIRM_MAX_AGE, now=made + CONFIRM_MAX_AGE - 1) == "a@example.org"
    with pytest.raises(TokenError) as caught:
        unseal(SECRET, CONFIRM, confirm, max_age=CONFIRM_MAX_AGE, now=made + CONFIRM_MAX_AGE + 1)
    assert caught.value.expired
    old = seal(SECRET, UNSUBSCRIBE, "a@example.org", now=made)
    assert unseal(SECRET, UNSUBSCRIBE, old, now=made + 20 * 365 * 86400) == "a@example.org"


@settings(max_examples=200, deadline=None)
@given(address=st.emails(), position=st.integers(min_value=0), replacement=st.sampled_from("AQgw-_09"))
def test_changing_one_character_invalidates(address: str, position: int, replacement: str) -> None:
    token = seal(SECRET, UNSUBSCRIBE, address)
    i = position % len(token)
    if token[i] == replacement:
        replacement = "B" if replacement != "B" else "C"
    changed = token[:i] + replacement + token[i + 1 :]
    try:
        result = unseal(SECRET, UNSUBSCRIBE, changed)
    except TokenError:
        return
    # The last base64 character can carry unused low bits: only then may the same bytes decode.
    assert i == len(token) - 1 and result == address


def test_same_input_same_token_and_different_addresses_differ() -> None:
    assert seal(SECRET, UNSUBSCRIBE, "a@example.org", now=0) == seal(SECRET, UNSUBSCRIBE, "a@example.org", now=0)
    assert seal(SECRET, UNSUBSCRIBE, "a@example.org", now=0) != seal(SECRET, UNSUBSCRIBE, "b@example.org", now=0)
    assert seal(SECRET, UNSUBSCRIBE, "a@example.org", now=0) != seal(SECRET, CONFIRM, "a@example.org", now=0)


def test_tokens_made_before_still_open_and_are_made_the_same() -> None:
    # made by the version that used hmac.new and base64.urlsafe_b64encode: links already sent must keep working
    sent = "AVwAH4CVarCXcbCVzT5P2Fc5gIvyvjC151fuqEDmMl1sBXUR3icCGfuioPofxnPiIumjuKL6"
    assert unseal(b"bench-secret", CONFIRM, sent) == "Åsa@exämple.org"
    assert seal(b"bench-secret", CONFIRM, "Åsa@exämple.org", now=1764633600) == sent
    assert seal(b"s", UNSUBSCRIBE, "a@b.c", now=0) == "AZlxW0-sw1LF6evupzMcbHlRvbSOcuOOo_kNbAR_jNWMXiwGAYBJZnie"


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=80), st.sampled_from([UNSUBSCRIBE, CONFIRM]), st.text(max_size=60), st.integers(0, 2**40))
def test_seal_equals_the_straightforward_construction(secret: bytes, purpose: str, address: str, issued: int) -> None:
    # the nonce's HMAC from a copied keyed hmac object and base64 through binascii, against hmac.new and base64 as documented
    import hashlib
    import hmac
    import struct

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    material = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"newsletter link token v1").derive(secret)
    plain = struct.pack(">Q", issued) + address.encode("utf-8")
    nonce = hmac.new(material[32:], purpose.encode("ascii") + b"\0" + plain, hashlib.sha256).digest()[:12]
    sealed = ChaCha20Poly1305(material[:32]).encrypt(nonce, plain, purpose.encode("ascii"))
    expected = base64.urlsafe_b64encode(b"\x01" + nonce + sealed).rstrip(b"=").decode("ascii")
    assert seal(secret, purpose, address, now=issued) == expected
