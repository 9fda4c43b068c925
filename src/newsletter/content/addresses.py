"""Email address checks shared by config, subscribers, the store and the send command.

The checks are email-validator's (syntax only: ``check_deliverability=False``,
so no DNS lookup ever leaves the machine), which knows internationalised
domains (``user@bücher.de``, IDNA 2008) and gives a sentence for every refusal.
What this module adds:

- quoted local parts, domain literals and display names are refused: a mailing
  list has no use for them and they are where header injection hides;
- ``localhost`` is accepted (local test setups send to it), as are ``.test``
  domains (RFC 2606, used by the Postfix tests);
- a fast path: plain ASCII addresses of the common shape are accepted by a
  regular expression plus email-validator's length and reserved-name rules,
  because email-validator takes ~90 microseconds an address (18 s over a
  200,000-row list at every send).  The fast path only ever accepts;
  everything else, and every refusal with its reason, goes to email-validator,
  and tests/test_addresses.py checks with Hypothesis that whatever the fast path
  accepts email-validator accepts too.
- ``sendable`` turns an internationalised domain into its punycode form, which
  every server accepts, so no message needs SMTPUTF8 for its domain.  A
  non-ASCII local part (``josé@…``) has no ASCII form and would need SMTPUTF8
  at every hop; it is refused, with that reason, rather than failing mid-send.

email-validator is imported on the first address the fast path does not accept,
not with this module: compiling its regular expressions took 13 ms, most of
the import cost of ``newsletter build``, which checks only the config's few
plain addresses.  The fast path's reserved names are therefore a copy of its
``SPECIAL_USE_DOMAIN_NAMES`` (tests/test_addresses.py fails if they differ).
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

_LOCAL_HOSTS = {"localhost"}
_COMMON_SHAPE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
# email-validator's SPECIAL_USE_DOMAIN_NAMES (2.x), copied so the fast path needs no import of it.
SPECIAL_USE_DOMAIN_NAMES = ("arpa", "invalid", "local", "localhost", "onion", "test")
_RESERVED = frozenset(name for name in SPECIAL_USE_DOMAIN_NAMES if name != "test")
_RESERVED_SUFFIXES = tuple("." + name for name in _RESERVED)


def address_problem(address: str) -> str | None:
    """None when ``address`` is a plain deliverable address (no display name), else the reason it is not."""
    if not address:
        return "the address is empty"
    if _fast_accept(address):
        return None
    local, at, host = address.rpartition("@")
    if at and host.lower() in _LOCAL_HOSTS:
        address = f"{local}@x.io"  # check the local part alone, as for any other domain
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(
            address, check_deliverability=False, test_environment=True, allow_smtputf8=False,
            allow_quoted_local=False, allow_domain_literal=False, allow_display_name=False,
        )
    except EmailNotValidError as exc:
        return str(exc).rstrip(".")
    return None


def _fast_accept(address: str) -> bool:
    """True for an ASCII address of the common shape that email-validator would accept (see the module docstring)."""
    match = _COMMON_SHAPE.fullmatch(address)
    if match is None or len(address) > 254 or address.index("@") > 64:
        return False
    domain = address[address.index("@") + 1:].lower()
    # "--" (punycode "xn--", or reserved R-LDH labels) needs IDNA's checks: the slow path.
    return len(domain) <= 253 and "--" not in domain and domain not in _RESERVED and not domain.endswith(_RESERVED_SUFFIXES)


def is_valid_address(address: str) -> bool:
    """True if ``address`` is a plain deliverable address (no display name)."""
    return address_problem(address) is None


def sendable(address: str) -> str:
    """The form to put on the envelope and in headers: the domain as punycode (ASCII) when it is internationalised.

    An address that is already ASCII or invalid is returned as given.
    """
    return address if address.isascii() else _punycode_domain(address)


@lru_cache(maxsize=1024)
def _punycode_domain(address: str) -> str:
    local, _, host = address.rpartition("@")
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(address, check_deliverability=False, test_environment=True, allow_smtputf8=True)
    except EmailNotValidError:
        return address
    ascii_domain = result.ascii_domain
    return f"{local}@{ascii_domain}" if ascii_domain and host != ascii_domain else address


def address_key(address: str) -> str:
    """The identity of an address: lowercased, an internationalised domain in its punycode form.

    ``user@Bücher.de`` and ``user@xn--bcher-kva.de`` are the same mailbox and get the same key.
    """
    return sendable(address.strip()).lower()


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


_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the name localhost (no DNS lookup: nothing leaves the machine)."""
    name = host.strip("[]").lower()
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name in _LOOPBACK_NAMES or name.endswith(".localhost")
