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
