"""DKIM: keygen, configuration, and signatures on copies a real SMTP server received, checked by dkimpy and OpenDKIM."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa as _rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from click.testing import CliRunner

from dns_support import Dnsmasq
from newsletter.cli import main
from newsletter.content.config import check_config, load_config
from newsletter.delivery.send import SendOptions, execute, prepare
from newsletter.content.model import DkimSettings
from newsletter.errors import ConfigError
from newsletter.mail.dkim import DkimSigner, keygen, load_private_key, signer_for
from send_support import Server, people, write_list

MONTH = "2026-11"
_KEY = _rsa.generate_private_key(public_exponent=65537, key_size=1024)  # body hashing only: no signature is made


def cli(folder: Path, *args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, [*args, "--folder", str(folder)], env=env, catch_exceptions=False)


def add_dkim(folder: Path, text: str) -> None:
    with (folder / "newsletter.yaml").open("a", encoding="utf-8") as handle:
        handle.write("\n" + text)


@pytest.fixture
def signed(folder: Path) -> tuple[Path, bytes]:
    """The example folder with a new key for s1 configured; returns (folder, published TXT value)."""
    made = keygen(folder, "s1")
    add_dkim(folder, "dkim:\n  selector: s1\n  key_file: dkim/s1.pem\n")
    return folder, made.record.encode("ascii")


def dns_for(record: bytes, name: bytes = b"s1._domainkey.example.org."):
    """dkimpy's dnsfunc: the published record for our selector, nothing for any other name."""
    return lambda qname, timeout=5: record if qname == name else None


def test_keygen_writes_a_private_2048_bit_key_and_prints_the_record(folder: Path) -> None:
    result = cli(folder, "dkim", "keygen", "--selector", "mail2026")
    assert result.exit_code == 0, result.output
    key_path = folder / "dkim" / "mail2026.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    settings = load_config(folder)
    key = load_private_key(DkimSettings(selector="mail2026", domain="example.org", key_file="dkim/mail2026.pem"), folder)
    assert key.key_size == 2048
    assert "mail2026._domainkey.example.org" in result.output
    value = re.search(r"value: (v=DKIM1; k=rsa; p=\S+)", result.output).group(1)
    assert value == DkimSigner(key, "example.org", "mail2026").public_record()
    assert "key_file: dkim/mail2026.pem" in result.output
    assert settings.dkim is None  # keygen only prints what to add; it never edits newsletter.yaml
    again = cli(folder, "dkim", "keygen", "--selector", "mail2026")
    assert again.exit_code == 1
    assert "dkim/mail2026.pem: a key file is already there" in again.output
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_config_domain_must_align_with_from(folder: Path) -> None:
    add_dkim(folder, "dkim:\n  selector: s1\n  key_file: k.pem\n  domain: other.example.net\n")
    _, problems = check_config(folder)
    [problem] = [p for p in problems if p.is_error]
    assert problem.path == "newsletter.yaml" and problem.line is not None
    assert "dkim.domain 'other.example.net' does not align with the From domain 'example.org'" in problem.message


def test_config_parent_domain_aligns_and_key_is_required(folder: Path) -> None:
    add_dkim(folder, "dkim:\n  selector: s1\n")
    config, problems = check_config(folder, env={})
    assert not [p for p in problems if p.is_error]  # build and preview need no key
    assert [p.message for p in problems] == [
        "dkim has no key_file and NEWSLETTER_DKIM_KEY is not set: send will stop until one of them gives the private key"
    ]
    assert config is not None
    with pytest.raises(ConfigError) as missing:
        signer_for(config, folder, env={})
    assert str(missing.value).startswith("newsletter.yaml: dkim.selector is set but there is no private key")
    config, problems = check_config(folder, env={"NEWSLETTER_DKIM_KEY": "x"})
    assert config is not None and config.dkim is not None and config.dkim.domain == "example.org"


def test_key_from_the_environment_and_bad_keys_named(folder: Path) -> None:
    made = keygen(folder, "s1")
    pem = made.key_path.read_text()
    made.key_path.unlink()
    add_dkim(folder, "dkim:\n  selector: s1\n")
    config = load_config(folder, env={"NEWSLETTER_DKIM_KEY": pem})
    signer = signer_for(config, folder, env={"NEWSLETTER_DKIM_KEY": pem})
    assert signer is not None and signer.public_record() == made.record
    with pytest.raises(ConfigError) as bad:
        signer_for(config, folder, env={"NEWSLETTER_DKIM_KEY": "not a key"})
    assert str(bad.value).startswith("environment variable NEWSLETTER_DKIM_KEY: is not an unencrypted PEM private key")
    assert "not a key" not in str(bad.value)  # a secret is never echoed


def test_missing_key_file_stops_the_send_before_anything_leaves(folder: Path) -> None:
    add_dkim(folder, "dkim:\n  selector: s1\n  key_file: dkim/missing.pem\n")
    csv = write_list(folder / "list.csv", people(2))
    with Server() as server:
        result = cli(folder, "send", MONTH, "--to", str(csv), "--sender", "smtp", "--yes", env=server.env())
        assert result.exit_code == 1
        assert "error: dkim/missing.pem: cannot read the DKIM key (dkim.key_file): No such file or directory" in result.output
        assert server.receiver.received() == []


def test_every_received_copy_verifies_with_dkimpy(signed: tuple[Path, bytes]) -> None:
    folder, record = signed
    csv = write_list(folder / "list.csv", people(12) + [("zoe@example.net", "Zoë Ünal, \"PhD\"")])
    with Server() as server:
        report = execute(prepare(folder, SendOptions(issue=MONTH, to=csv, sender="smtp", retry_delay=0.05), env=server.env()))
        got = server.receiver.received()
    assert report.counts.get("sent") == 13 and len(got) == 13
    for copy in got:
        assert copy.data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org;")
        assert dkim.verify(copy.data, dnsfunc=dns_for(record)), copy.rcpt
        head = copy.data.split(b"\r\n\r\n", 1)[0]
        assert max(len(line) for line in head.split(b"\r\n")) <= 998
        tags = dict(t.strip().split("=", 1) for t in copy.message["DKIM-Signature"].split(";"))
        signed_names = [n.strip() for n in re.sub(r"\s+", "", tags["h"]).split(":")]
        # every listed header, with From and the List-Unsubscribe pair named once more than they occur
        assert signed_names == [
            "from", "from", "to", "subject", "date", "message-id", "mime-version", "content-type", "list-id",
            "list-unsubscribe", "list-unsubscribe", "list-unsubscribe-post", "list-unsubscribe-post", "feedback-id",
        ]
    assert not dkim.verify(got[0].data, dnsfunc=dns_for(b"v=DKIM1; k=rsa; p=" + record.split(b"p=")[1][:-8] + b"AAAAAAAA"))


def test_test_copies_are_signed(signed: tuple[Path, bytes]) -> None:
    folder, record = signed
    with Server() as server:
        result = cli(folder, "send", MONTH, "--sender", "smtp", "--test", "me@example.net", env=server.env())
        assert result.exit_code == 0, result.output
        [copy] = server.receiver.received()
    assert copy.message["Subject"].startswith("[TEST]")
    assert dkim.verify(copy.data, dnsfunc=dns_for(record))


def _one_signed_copy(folder: Path, name: str = "Ann Example") -> bytes:
    csv = write_list(folder / "one.csv", [("ann@example.net", name)])
    with Server() as server:
        execute(prepare(folder, SendOptions(issue=MONTH, to=csv, sender="smtp", retry_delay=0.05), env=server.env()))
        [copy] = server.receiver.received()
    return copy.data


@pytest.mark.parametrize(
    "change",
    [
        (b"Subject: Practice", b"Subject: Practise"),  # a signed header
        (b"\r\nTo: Ann Example <ann@example.net>", b"\r\nTo: Ann Example <anne@example.net>"),
        (b"Dear Ann Example,", b"Dear Ann Examplf,"),  # the body, in a per-recipient slot
        (b"Lambert, M. J.", b"Lambert, M. K."),  # the body, in a shared chunk
        (b"\r\nList-Unsubscribe-Post:", b"\r\nList-Unsubscribe-Post: x\r\nList-Unsubscribe-Post:"),  # a header added later
        (b"\r\nFrom:", b"\r\nFrom: Mallory <m@example.net>\r\nFrom:"),
    ],
)
def test_one_changed_byte_fails_verification(signed: tuple[Path, bytes], change: tuple[bytes, bytes]) -> None:
    folder, record = signed
    data = _one_signed_copy(folder)
    assert dkim.verify(data, dnsfunc=dns_for(record))
    old, new = change
    assert old in data
    assert not dkim.verify(data.replace(old, new, 1), dnsfunc=dns_for(record))


def test_signing_whole_messages_and_pieces_agree(signed: tuple[Path, bytes]) -> None:
    """The cached piece-by-piece body hash equals the plain one, including awkward bodies."""
    folder, record = signed
    signer = signer_for(load_config(folder), folder)
    assert signer is not None
    head = b"From: A <a@example.org>\r\nTo: b@example.net\r\nSubject: x\r\n\r\n"
    bodies = [b"", b"\r\n", b"a  b \t\r\n\r\n\r\n", b"no line end", b"x" * 600 + b" \r\n", b"tab\there  \r\nend\r\n\r\n"]
    for body in bodies:
        whole = signer.sign(head + body, now=1)
        assert dkim.verify(whole, dnsfunc=dns_for(record)), body
        for cut in range(0, len(body) + 1, max(1, len(body) // 5)):
            pieces = [head[:7], head[7:], body[:cut], body[cut:]]
            assert signer.sign(pieces, now=1) == whole, (body, cut)


def _opendkim_verdict(tmp: Path, dns: Dnsmasq, data: bytes, name: str) -> str:
    """OpenDKIM's own verifier (opendkim -t), resolving through unbound forwarded to the test's dnsmasq."""
    (tmp / "unbound.conf").write_text(
        f'server:\n  do-not-query-localhost: no\nforward-zone:\n  name: "."\n  forward-addr: 127.0.0.1@{dns.port}\n'
    )
    (tmp / "opendkim.conf").write_text(f"Mode v\nSyslog no\nResolverConfiguration {tmp / 'unbound.conf'}\n")
    message = tmp / name
    message.write_bytes(data)
    result = subprocess.run(["opendkim", "-x", str(tmp / "opendkim.conf"), "-t", str(message)], capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


def test_opendkim_accepts_received_copies_and_refuses_a_changed_one(signed: tuple[Path, bytes], tmp_path: Path) -> None:
    if shutil.which("opendkim") is None:
        pytest.fail("opendkim is not installed; run scripts/test, which installs it")
    folder, record = signed
    data = _one_signed_copy(folder, "Zoë Ünal")
    with Dnsmasq(tmp_path, txt={"s1._domainkey.example.org": record.decode()}) as dns:
        good = _opendkim_verdict(tmp_path, dns, data, "good.eml")
        bad = _opendkim_verdict(tmp_path, dns, data.replace(b"Lambert, M. J.", b"Lambert, M. K."), "bad.eml")
    assert "verification (s=s1, d=example.org, 2048-bit key) succeeded" in good, good
    assert "failed: signature verification failed" in bad, bad


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(st.text(alphabet=" \t\r\nab=", max_size=12).map(lambda s: s.replace("\r", "").replace("\n", "")), max_size=8),
    trailing_blank=st.integers(0, 3), cuts=st.lists(st.integers(0, 200), max_size=4),
)
def test_body_hash_by_pieces_equals_dkimpys_canonical_body(lines: list[str], trailing_blank: int, cuts: list[int]) -> None:
    """Property: however a body is cut into pieces, the body hash is that of dkimpy's relaxed canonical form."""
    import base64
    import hashlib

    from dkim.canonicalization import Relaxed

    body = ("\r\n".join(lines) + "\r\n" * (trailing_blank + (1 if lines else 0))).encode("ascii")
    signer = DkimSigner(_KEY, "example.org", "s1")
    points = sorted({min(c, len(body)) for c in cuts})
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)])]
    expected = base64.b64encode(hashlib.sha256(Relaxed.canonicalize_body(body)).digest())
    assert signer.body_hash(pieces) == expected
    assert signer.body_hash([body]) == expected


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"from", b"to", b"subject", b"date", b"message-id", b"list-id", b"list-unsubscribe", b"feedback-id"]), max_size=12),
    st.from_regex(r"[a-z0-9]{1,20}(\.[a-z0-9-]{1,25}){1,3}", fullmatch=True),
    st.from_regex(r"[a-z0-9-]{1,40}", fullmatch=True),
    st.integers(0, 10**12),
    st.text(_B64, min_size=43, max_size=43).map(lambda s: s + "="),
    st.binary(min_size=128, max_size=128),
)
def test_signature_header_filled_into_its_folded_layout_is_what_fold_writes(names, domain, selector, stamp, body_hash, signature) -> None:
    # each copy's DKIM-Signature is filled into a layout folded once; dkimpy's fold of the whole must agree
    import base64

    from newsletter.mail.dkim import OVERSIGNED, SIGNED_HEADERS, _Layout

    signer = DkimSigner(_KEY, domain, selector)  # 1024 bits: a 128-byte signature
    layout = _Layout(signer, tuple(names), len(str(stamp)))
    include = [name for name in SIGNED_HEADERS for _ in range(names.count(name) + (name in OVERSIGNED))]
    t, bh, b = str(stamp).encode(), body_hash.encode(), base64.b64encode(signature)
    fields = [(b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/relaxed"), (b"d", domain.encode()), (b"s", selector.encode()),
              (b"t", t), (b"h", b" : ".join(include)), (b"bh", bh)]
    unsigned = dkim.fold(b"; ".join(b"=".join(f) for f in [*fields, (b"b", b"0" * 60)]), namelen=14).replace(b"b=" + b"0" * 60, b"b=")
    assert layout.include == include
    assert layout.unsigned.fill(t, bh) == unsigned
    assert layout.signed.fill(t, bh, b) == dkim.fold(b"; ".join(b"=".join(f) for f in [*fields, (b"b", b)]) + b"\r\n", namelen=14)
