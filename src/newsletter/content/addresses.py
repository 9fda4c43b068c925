"""Email address checks shared by config, subscribers and the send command."""

from __future__ import annotations

import re

# Deliberately pragmatic: what real mail systems accept from a mailing list,
# not the full RFC 5322 grammar (quoted local parts are rejected on purpose).
_ADDRESS_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_LOCAL_HOSTS = {"localhost"}


def is_valid_address(address: str) -> bool:
    """True if ``address`` is a plain deliverable address (no display name)."""
    if len(address) > 254 or any(c in address for c in "\r\n\x00 "):
        return False
    if _ADDRESS_RE.match(address):
        return True
    local, _, host = address.rpartition("@")
    return bool(local) and host in _LOCAL_HOSTS and _ADDRESS_RE.match(local + "@x.io") is not None


def domain_of(address: str) -> str:
    """The domain part of an address (used for Message-ID and List-Id)."""
    return address.rpartition("@")[2] or "localhost"


# The VERP token (mail/verp.py) is 26 characters after "local+"; a local part is at most 64 octets
# (RFC 5321 section 4.5.3.1.1), so the bounces mailbox's own local part must leave room for it.
VERP_TOKEN_LENGTH = 26
MAX_LOCAL_PART = 64


def bounces_address_problem(address: str) -> str | None:
    """Why ``address`` cannot be the bounces address of VERP senders, or None when it can."""
    local = address.rpartition("@")[0]
    if "+" in local:
        return f"bounces.address '{address}' already contains '+'; give the plain mailbox (bounces@example.org), the token is added after a '+'"
    room = MAX_LOCAL_PART - 1 - VERP_TOKEN_LENGTH
    if len(local) > room:
        return f"bounces.address '{address}': the part before '@' is too long for a VERP address (at most {room} characters); use a shorter mailbox such as bounces@"
    return None
