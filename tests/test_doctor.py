"""newsletter doctor against a real DNS server (dnsmasq on a loopback port) with a good and a broken zone, and a real
SMTP server (aiosmtpd) with and without STARTTLS."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from dns_support import Dnsmasq
from newsletter.cli import main
from newsletter.delivery.doctor import Check, doctor, parse_server
from newsletter.errors import ConfigError
from newsletter.mail.dkim import keygen
from send_support import Receiver, free_port

HOST = "mail.example.org"


def tls_context(tmp: Path) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for HOST."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return context


class SMTP:
    """aiosmtpd on 127.0.0.1, offering STARTTLS when given a TLS context."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self.port = free_port()
        self.controller = Controller(Receiver(), hostname="127.0.0.1", port=self.port, tls_context=context, require_starttls=False)

    def __enter__(self) -> "SMTP":
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def env_for(smtp: SMTP, dns: Dnsmasq) -> dict[str, str]:
    return {"NEWSLETTER_SMTP_HOST": HOST, "NEWSLETTER_SMTP_PORT": str(smtp.port), "NEWSLETTER_SMTP_SECURITY": "starttls",
            "NEWSLETTER_DNS_SERVER": dns.address}


@pytest.fixture
def keyed(folder: Path) -> tuple[Path, str]:
    made = keygen(folder, "s1")
    with (folder / "newsletter.yaml").open("a", encoding="utf-8") as handle:
        handle.write("\ndkim:\n  selector: s1\n  key_file: dkim/s1.pem\n")
    return folder, made.record


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.what: check for check in checks}


def test_a_good_zone_passes_every_check(keyed: tuple[Path, str], tmp_path: Path) -> None:
    folder, record = keyed
    zone = Dnsmasq(tmp_path, txt={
        "example.org": "v=spf1 mx a:mail.example.org -all",
        "s1._domainkey.example.org": record,
        "_dmarc.example.org": "v=DMARC1; p=quarantine; adkim=s",
    }, records=[f"--host-record={HOST},127.0.0.1", f"--mx-host=example.org,{HOST},10"])
    with zone as dns, SMTP(tls_context(tmp_path)) as smtp:
        result = CliRunner().invoke(main, ["doctor", "--folder", str(folder)], env=env_for(smtp, dns), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines == [
        f"✓ SPF: 'v=spf1 mx a:mail.example.org -all' at example.org passes {HOST} (127.0.0.1)",
        "✓ DKIM: s1._domainkey.example.org holds the key in dkim/s1.pem",
        "✓ DMARC: p=quarantine at _dmarc.example.org, DKIM and SPF aligned with From example.org",
        f"✓ Bounce MX: example.org receives mail at 10 {HOST}",
        f"✓ SMTP host DNS: {HOST}: 127.0.0.1 ↔ {HOST}",
        f"✓ STARTTLS: {HOST}:{smtp.port} offers STARTTLS and the TLS handshake works",
    ]


def test_a_broken_zone_fails_each_check_with_its_fix(keyed: tuple[Path, str], tmp_path: Path) -> None:
    folder, _ = keyed
    other = keygen(folder, "old").record  # a published key that is not ours
    zone = Dnsmasq(tmp_path, txt={
        "example.org": "v=spf1 ip4:192.0.2.1 include:_spf.example.org -all",
        "_spf.example.org": "v=spf1 ip4:198.51.100.0/24 -all",
        "s1._domainkey.example.org": other,
    }, records=[f"--address=/{HOST}/127.0.0.1", "--ptr-record=1.0.0.127.in-addr.arpa,elsewhere.example.net"])
    with zone as dns, SMTP(None) as smtp:
        result = CliRunner().invoke(main, ["doctor", "--folder", str(folder)], env=env_for(smtp, dns), catch_exceptions=False)
    assert result.exit_code == 1
    out = result.output
    assert "✗ SPF: 'v=spf1 ip4:192.0.2.1 include:_spf.example.org -all' at example.org does not pass mail.example.org: 127.0.0.1 (-all)" in out
    assert "fix: add a:mail.example.org (or ip4:/ip6: with its addresses) before the 'all' of the record" in out
    assert "✗ DKIM: the record at s1._domainkey.example.org is not our key" in out
    assert "✗ DMARC: no DMARC record at _dmarc.example.org" in out
    assert '    fix: publish _dmarc.example.org. TXT "v=DMARC1; p=none; rua=mailto:dmarc@example.org"' in out
    assert "✗ Bounce MX: example.org has no MX record" in out
    assert f"✗ SMTP host DNS: {HOST}: 127.0.0.1 points back to elsewhere.example.net, which does not resolve to 127.0.0.1" in out
    assert f"✗ STARTTLS: {HOST}:{smtp.port} does not offer STARTTLS" in out
    assert out.count("✗") == 6 and out.count("    fix: ") == 6


def test_dkim_not_configured_and_missing_records(folder: Path, tmp_path: Path) -> None:
    with Dnsmasq(tmp_path, txt={"_dmarc.example.org": "v=DMARC1; p=none"}) as dns, SMTP(None) as smtp:
        checks = by_name(doctor(folder, env=env_for(smtp, dns)))
    assert not checks["DKIM"].ok and "newsletter dkim keygen" in (checks["DKIM"].fix or "")
    assert not checks["SPF"].ok and checks["SPF"].detail == "no SPF record at example.org"
    assert checks["SPF"].fix == 'publish example.org. TXT "v=spf1 a:mail.example.org ~all"'
    assert checks["DMARC"].ok and "p=none only reports" in checks["DMARC"].detail  # SPF aligns: same domain
    assert not checks["SMTP host DNS"].ok and "has no A or AAAA record" in checks["SMTP host DNS"].detail


def test_a_silent_dns_server_is_named(folder: Path) -> None:
    port = free_port()  # nothing listens there
    checks = doctor(folder, env={"NEWSLETTER_SMTP_HOST": HOST, "NEWSLETTER_DNS_SERVER": f"127.0.0.1:{port}"})
    assert [c.ok for c in checks] == [False]
    assert checks[0].detail.startswith(f"the DNS server 127.0.0.1:{port} gave no answer for {HOST} A")


def test_dns_server_forms() -> None:
    assert parse_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_server("[::1]:53") == ("::1", 53)
    assert parse_server("10.0.0.1") == ("10.0.0.1", 53)
    with pytest.raises(ConfigError) as bad:
        parse_server("dns.example.org:53")
    assert "'dns.example.org:53' is not a DNS server address" in str(bad.value)


def test_dns_option_overrides_the_environment(folder: Path, tmp_path: Path) -> None:
    with Dnsmasq(tmp_path, txt={"example.org": "v=spf1 a:mail.example.org -all"}, records=[f"--host-record={HOST},127.0.0.1"]) as dns, SMTP(None) as smtp:
        env = {**env_for(smtp, dns), "NEWSLETTER_DNS_SERVER": f"127.0.0.1:{free_port()}"}  # nothing answers there
        result = CliRunner().invoke(main, ["doctor", "--dns", dns.address, "--folder", str(folder)], env=env, catch_exceptions=False)
    assert result.exit_code == 1  # DKIM, DMARC, MX and STARTTLS are missing here
    assert f"✓ SPF: 'v=spf1 a:mail.example.org -all' at example.org passes {HOST} (127.0.0.1)" in result.output
    assert "gave no answer" not in result.output
