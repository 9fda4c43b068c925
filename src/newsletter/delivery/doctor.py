"""``newsletter doctor``: the sending domain's DNS and the SMTP server, checked one line each with the fix.

It lives in ``delivery/`` because it checks the path mail takes to readers: the
SMTP relay and the bounce domain of ``newsletter.yaml`` and the DKIM key the
send signs with (``mail.dkim``), all below this layer; ``mail`` could not use
the smtp settings' sender side, and nothing below needs the doctor.

DNS goes through dnspython, asking the server in ``NEWSLETTER_DNS_SERVER`` (or
``--dns``; ``host[:port]``) or the system's resolvers.  SPF is evaluated here
for one question only, whether the policy passes the SMTP host's addresses,
with the mechanisms ``ip4``, ``ip6``, ``a``, ``mx``, ``include``, ``all`` and
the ``redirect`` modifier (``exists``, ``ptr`` and macros are reported as not
checked): the SPF libraries resolve through the system's resolver only, so
neither a chosen DNS server nor a test's local one could be used.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.resolver
import dns.reversename
from cryptography.hazmat.primitives.serialization import load_der_public_key

from newsletter.content.config import load_config
from newsletter.content.model import Config
from newsletter.errors import ConfigError, NewsletterError
from newsletter.mail.dkim import signer_for

DNS_SERVER_VARIABLE = "NEWSLETTER_DNS_SERVER"
SPF_LOOKUP_LIMIT = 10  # RFC 7208 section 4.6.4


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, what was found, and the fix when it failed."""

    ok: bool
    what: str
    detail: str
    fix: str | None = None

    def line(self) -> str:
        text = f"{'✓' if self.ok else '✗'} {self.what}: {self.detail}"
        return text + (f"\n    fix: {self.fix}" if self.fix and not self.ok else "")


class DNSFailure(NewsletterError):
    """The DNS server did not answer (as opposed to answering 'no such record')."""


class Lookup:
    """DNS questions through one resolver; 'no such name' and 'no record' are empty answers."""

    def __init__(self, server: str | None) -> None:
        self.resolver = dns.resolver.Resolver(configure=server is None)
        self.server = server or ", ".join(self.resolver.nameservers) or "the system's resolver"
        if server:
            host, port = parse_server(server)
            self.resolver.nameservers = [host]
            self.resolver.port = port
        self.resolver.lifetime = 5.0

    def answer(self, name: str, kind: str) -> list[str]:
        """Each record of ``kind`` at ``name`` as text (TXT strings joined, names without the final dot)."""
        try:
            answer = self.resolver.resolve(name, kind, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise DNSFailure(f"the DNS server {self.server} gave no answer for {name} {kind} ({exc.__class__.__name__})",
                             hint=f"check {DNS_SERVER_VARIABLE} or --dns, or your network") from None
        if kind == "TXT":
            return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        if kind == "MX":
            return [f"{r.preference} {r.exchange.to_text(omit_final_dot=True)}" for r in answer]
        return [r.to_text().rstrip(".") for r in answer]

    def addresses(self, host: str) -> list[str]:
        """A and AAAA of a host name (an address literal is itself)."""
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            return self.answer(host, "A") + self.answer(host, "AAAA")

    def ptr(self, address: str) -> list[str]:
        return self.answer(dns.reversename.from_address(address).to_text(), "PTR")


def parse_server(text: str) -> tuple[str, int]:
    """'127.0.0.1:5353', '[::1]:53' or a bare address → (address, port)."""
    text = text.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":") or "53"
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ipaddress.ip_address(host)
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError
    except ValueError:
        raise ConfigError(f"'{text}' is not a DNS server address", path=f"{DNS_SERVER_VARIABLE} or --dns",
                          hint="give an IP address and optional port, such as 127.0.0.1:5353 or [::1]:53") from None
    return host, number


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def aligned(domain: str, from_domain: str, mode: str) -> bool:
    """DMARC identifier alignment; relaxed compares as parent and child (no public-suffix list here)."""
    if mode == "s":
        return domain == from_domain
    return domain == from_domain or from_domain.endswith("." + domain) or domain.endswith("." + from_domain)


# -- the checks --------------------------------------------------------------------------------


def doctor(folder: Path, env: Mapping[str, str] | None = None, dns_server: str | None = None) -> list[Check]:
    """Every check, in the order the README lists them."""
    env = os.environ if env is None else env
    config = load_config(folder, env)
    lookup = Lookup(dns_server or env.get(DNS_SERVER_VARIABLE) or None)
    host = config.smtp.host
    try:
        host_addresses = lookup.addresses(host) if host else []
    except DNSFailure as exc:
        return [Check(False, "DNS", exc.message, exc.hint)]
    checks = []
    for check in (check_spf, check_dkim, check_dmarc, check_bounce_mx, check_reverse_dns, check_starttls):
        try:
            checks.append(check(config, folder, env, lookup, host_addresses))
        except DNSFailure as exc:
            checks.append(Check(False, check.__doc__.split(":")[0] if check.__doc__ else "DNS", exc.message, exc.hint))
    return checks


def envelope_domain(config: Config) -> str:
    """The domain SPF is checked against: the Return-Path's (bounces.address when set, else From)."""
    return domain_of(config.bounces_address or config.sender_email)


def check_spf(config: Config, folder: Path, env: Mapping[str, str], lookup: Lookup, addresses: list[str]) -> Check:
    """SPF: a record at the envelope domain that passes the SMTP host."""
    domain = envelope_domain(config)
    records = [t for t in lookup.answer(domain, "TXT") if t.lower().startswith("v=spf1")]
    host = config.smtp.host
    fix_record = f'{domain}. TXT "v=spf1 a:{host} ~all"' if host else f'{domain}. TXT "v=spf1 include:<your provider> ~all"'
    if not records:
        return Check(False, "SPF", f"no SPF record at {domain}", f"publish {fix_record}")
    if len(records) > 1:
        return Check(False, "SPF", f"{len(records)} SPF records at {domain} (receivers treat that as an error)", "merge them into one")
    if not host:
        return Check(False, "SPF", f"{domain} has '{records[0]}', but newsletter.yaml sets no smtp.host to check it against",
                     "set smtp.host (or NEWSLETTER_SMTP_HOST) to the server you send through")
    if not addresses:
        return Check(False, "SPF", f"the SMTP host {host} has no A or AAAA record", f"publish the address of {host}")
    failing = []
    for address in addresses:
        passed, why = spf_passes(lookup, domain, address, [0])
        if not passed:
            failing.append(f"{address} ({why})")
    if failing:
        return Check(False, "SPF", f"'{records[0]}' at {domain} does not pass {host}: {', '.join(failing)}",
                     f"add a:{host} (or ip4:/ip6: with its addresses) before the 'all' of the record")
    return Check(True, "SPF", f"'{records[0]}' at {domain} passes {host} ({', '.join(addresses)})")


def spf_passes(lookup: Lookup, domain: str, address: str, lookups: list[int]) -> tuple[bool, str]:
    """Whether ``domain``'s SPF policy gives 'pass' for ``address``, and the deciding term."""
    records = [t for t in lookup.answer(domain, "TXT") if t.lower().startswith("v=spf1")]
    if len(records) != 1:
        return False, f"{'no' if not records else 'several'} SPF record(s) at {domain}"
    ip = ipaddress.ip_address(address)
    redirect = None
    for term in records[0].split()[1:]:
        qualifier = term[0] if term[0] in "+-~?" else "+"
        term = term.lstrip("+-~?")
        if "=" in term.split(":")[0]:
            name, _, value = term.partition("=")
            if name.lower() == "redirect":
                redirect = value
            continue
        name, _, argument = term.partition(":")
        name, _, bare_cidr = name.lower().partition("/")
        target, _, cidr = (argument or domain).partition("/") if argument else (domain, "", bare_cidr)
        if name in ("a", "mx", "include"):
            lookups[0] += 1
            if lookups[0] > SPF_LOOKUP_LIMIT:
                return False, f"more than {SPF_LOOKUP_LIMIT} DNS lookups (a permerror)"
        if name == "all":
            match = True
        elif name in ("ip4", "ip6"):
            try:
                match = ip in ipaddress.ip_network(argument, strict=False)
            except ValueError:
                return False, f"'{term}' is malformed"
        elif name == "a":
            match = _in_any(ip, lookup.addresses(target), cidr)
        elif name == "mx":
            hosts = [mx.split(" ", 1)[1] for mx in lookup.answer(target, "MX")]
            match = any(_in_any(ip, lookup.addresses(h), cidr) for h in hosts)
        elif name == "include":
            match = spf_passes(lookup, argument, address, lookups)[0]
        else:
            return False, f"'{term}' is not checked by doctor"
        if match:
            return qualifier == "+", f"{qualifier}{term}".lstrip("+")
    if redirect:
        return spf_passes(lookup, redirect, address, lookups)
    return False, "no term matches"


def _in_any(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, addresses: list[str], cidr: str) -> bool:
    for address in addresses:
        candidate = ipaddress.ip_address(address)
        if candidate.version != ip.version:
            continue
        bits = cidr.split("//")[0 if ip.version == 4 else -1] if cidr else ""
        network = ipaddress.ip_network(f"{candidate}/{bits or candidate.max_prefixlen}", strict=False)
        if ip in network:
            return True
    return False


def check_dkim(config: Config, folder: Path, env: Mapping[str, str], lookup: Lookup, addresses: list[str]) -> Check:
    """DKIM: the selector's TXT record holds our public key."""
    if config.dkim is None:
        return Check(False, "DKIM", "not configured: mail is not signed by this tool",
                     "run 'newsletter dkim keygen --selector s1', publish the record it prints and add dkim: to newsletter.yaml")
    signer = signer_for(config, folder, env)
    assert signer is not None
    name = f"{config.dkim.selector}._domainkey.{config.dkim.domain}"
    ours = signer.key.public_key().public_numbers()
    records = lookup.answer(name, "TXT")
    if not records:
        return Check(False, "DKIM", f"no TXT record at {name}", f"publish {name}. TXT \"{signer.public_record()}\"")
    for record in records:
        tags = dict(tag.strip().partition("=")[::2] for tag in record.split(";") if "=" in tag)
        try:
            published = load_der_public_key(base64.b64decode("".join(tags.get("p", "").split())))
        except ValueError:
            continue
        if getattr(published, "public_numbers", None) and published.public_numbers() == ours:  # type: ignore[union-attr]
            return Check(True, "DKIM", f"{name} holds the key in {config.dkim.key_file or 'NEWSLETTER_DKIM_KEY'}")
    return Check(False, "DKIM", f"the record at {name} is not our key (another key, or p= is damaged)",
                 f"publish {name}. TXT \"{signer.public_record()}\" (or set dkim.selector to the one that holds our key)")


def check_dmarc(config: Config, folder: Path, env: Mapping[str, str], lookup: Lookup, addresses: list[str]) -> Check:
    """DMARC: a policy for the From domain that our DKIM or SPF aligns with."""
    from_domain = domain_of(config.sender_email)
    found = None
    for name in (f"_dmarc.{from_domain}", f"_dmarc.{'.'.join(from_domain.split('.')[-2:])}"):
        records = [t for t in lookup.answer(name, "TXT") if t.replace(" ", "").lower().startswith("v=dmarc1")]
        if records:
            found = (name, records[0])
            break
    if found is None:
        return Check(False, "DMARC", f"no DMARC record at _dmarc.{from_domain}",
                     f"publish _dmarc.{from_domain}. TXT \"v=DMARC1; p=none; rua=mailto:dmarc@{from_domain}\", then tighten p= once reports look clean")
    name, record = found
    tags = {k.strip().lower(): v.strip() for k, _, v in (t.partition("=") for t in record.split(";")) if k.strip()}
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return Check(False, "DMARC", f"'{record}' at {name} has no valid p= (none, quarantine or reject)", "add p=none (then quarantine or reject)")
    dkim_ok = config.dkim is not None and aligned(config.dkim.domain, from_domain, tags.get("adkim", "r").lower())
    spf_ok = aligned(envelope_domain(config), from_domain, tags.get("aspf", "r").lower())
    if not (dkim_ok or spf_ok):
        return Check(False, "DMARC", f"p={policy} at {name}, but neither DKIM nor the envelope domain {envelope_domain(config)} aligns with From {from_domain}",
                     "sign with dkim.domain = the From domain, or relax adkim/aspf to r")
    how = " and ".join(w for w, ok in (("DKIM", dkim_ok), ("SPF", spf_ok)) if ok)
    note = "; p=none only reports: move to quarantine once the reports look clean" if policy == "none" else ""
    return Check(True, "DMARC", f"p={policy} at {name}, {how} aligned with From {from_domain}{note}")


def check_bounce_mx(config: Config, folder: Path, env: Mapping[str, str], lookup: Lookup, addresses: list[str]) -> Check:
    """Bounce MX: the domain bounces go to receives mail."""
    domain = envelope_domain(config)
    records = lookup.answer(domain, "MX")
    if not records:
        return Check(False, "Bounce MX", f"{domain} has no MX record, so bounces and replies to the envelope sender are lost",
                     f"publish {domain}. MX 10 <the host of the mailbox bounces.address points at>")
    return Check(True, "Bounce MX", f"{domain} receives mail at {', '.join(sorted(records))}")


def check_reverse_dns(config: Config, folder: Path, env: Mapping[str, str], lookup: Lookup, addresses: list[str]) -> Check:
    """SMTP host DNS: A/AAAA and PTR agree (forward-confirmed reverse DNS)."""
    host = config.smtp.host
    if not host:
        return Check(False, "SMTP host DNS", "newsletter.yaml sets no smtp.host", "set smtp.host (or NEWSLETTER_SMTP_HOST)")
    if not addresses:
        return Check(False, "SMTP host DNS", f"{host} has no A or AAAA record", f"publish the address of {host}")
    problems, pairs = [], []
    for address in addresses:
        names = lookup.ptr(address)
        confirmed = [n for n in names if address in lookup.addresses(n)]
        if not names:
            problems.append(f"{address} has no PTR record")
        elif not confirmed:
            problems.append(f"{address} points back to {', '.join(names)}, which does not resolve to {address}")
        else:
            pairs.append(f"{address} ↔ {confirmed[0]}")
    if problems:
        return Check(False, "SMTP host DNS", f"{host}: {'; '.join(problems)}",
                     f"ask whoever runs {host}'s addresses to set the PTR of each to a name that resolves back to it (ideally {host})")
    return Check(True, "SMTP host DNS", f"{host}: {', '.join(pairs)}")


def check_starttls(config: Config, folder: Path, env: Mapping[str, str], lookup: Lookup, addresses: list[str]) -> Check:
    """STARTTLS: the SMTP server encrypts the connection."""
    host, port = config.smtp.host, config.smtp.port
    if not host:
        return Check(False, "STARTTLS", "newsletter.yaml sets no smtp.host", "set smtp.host (or NEWSLETTER_SMTP_HOST)")
    if not addresses:
        return Check(False, "STARTTLS", f"{host} has no A or AAAA record, so there is nothing to connect to", f"publish the address of {host}")
    target = addresses[0]
    # only whether TLS is offered and works: the certificate is checked when sending (senders.smtp)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        if config.smtp.security == "ssl":
            with smtplib.SMTP_SSL(target, port, timeout=10, context=context) as server:
                server.ehlo()
            return Check(True, "STARTTLS", f"{host}:{port} speaks TLS from the start (security: ssl)")
        with smtplib.SMTP(target, port, timeout=10) as server:
            server.ehlo()
            if not server.has_extn("starttls"):
                return Check(False, "STARTTLS", f"{host}:{port} does not offer STARTTLS: mail and the login would cross the network in clear",
                             "enable STARTTLS on the server, or use your provider's submission port (587 with starttls, 465 with ssl)")
            server.starttls(context=context)
            server.ehlo()
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        return Check(False, "STARTTLS", f"cannot talk to {host}:{port}: {exc}", "check smtp.host and smtp.port")
    return Check(True, "STARTTLS", f"{host}:{port} offers STARTTLS and the TLS handshake works")
