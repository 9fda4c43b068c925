"""A private Dovecot IMAP server for the tests: loopback only, TLS with a certificate made here.

``dovecot -c <config>`` runs with its own base, state and log directories under
a fresh directory in /tmp (its login processes run as ``dovenull`` and must
reach them, which pytest's private tmp_path would not allow), serves one
passwd-file user whose mail is a given Maildir, and listens for imaps on
127.0.0.1:<free port> only.  The system's Dovecot (if any) is not touched.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from process_support import wait_until_listening
from smtp_fault_server import free_port

DOVECOT = "/usr/sbin/dovecot"
USER = "bounces"
PASSWORD = "imap test password"


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and localhost), usable as its own CA file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "newsletter test IMAP")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


class PrivateDovecot:
    """Dovecot serving ``maildir`` as the INBOX of USER over imaps on 127.0.0.1."""

    def __init__(self, root: Path, maildir: Path) -> None:
        self.root, self.maildir = root, maildir
        self.port = free_port()
        self.config = root / "dovecot.conf"
        self.log = root / "dovecot.log"
        self.mail_user = pwd.getpwnam("nobody")

    def start(self) -> None:
        if not os.path.exists(DOVECOT):
            pytest.fail("Dovecot is not installed; run scripts/test, which installs dovecot-imapd")
        if os.geteuid() != 0:
            pytest.skip("a private Dovecot instance needs root (its master process runs as root)")
        self.cert, key = make_certificate(self.root)
        for sub in ("run", "state"):
            (self.root / sub).mkdir()
        uid, gid = self.mail_user.pw_uid, self.mail_user.pw_gid
        (self.root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{self.maildir}::\n")
        self.config.write_text(
            f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log}
info_log_path = {self.log}
ssl = required
ssl_cert = <{self.cert}
ssl_key = <{key}
disable_plaintext_auth = yes
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:{self.maildir}
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.root}/users
}}
userdb {{
  driver = passwd-file
  args = {self.root}/users
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.port}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""
        )
        # the master daemonises and keeps its inherited descriptors: capture into a file, not a pipe
        with open(self.root / "start.out", "w+") as out:
            result = subprocess.run([DOVECOT, "-c", str(self.config)], stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60)
            out.seek(0)
            if result.returncode != 0:
                pytest.fail(f"dovecot failed to start ({result.returncode}): {out.read().strip()}\n{self.log_text()}")
        wait_until_listening(self.port, "Dovecot", self.log_text)

    def stop(self) -> None:
        subprocess.run([DOVECOT, "-c", str(self.config), "stop"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        pid_file = self.root / "run" / "master.pid"
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no Dovecot log)"

    @property
    def url(self) -> str:
        return f"imaps://{USER}@127.0.0.1:{self.port}/INBOX"

    def env(self) -> dict[str, str]:
        return {"NEWSLETTER_IMAP_PASSWORD": PASSWORD, "NEWSLETTER_IMAP_CAFILE": str(self.cert)}


def served_copy_of(maildir: Path) -> tuple[Path, Path]:
    """A fresh /tmp directory (0711) with a copy of ``maildir`` owned by the mail user: (root, copy)."""
    root = Path(tempfile.mkdtemp(prefix="newsletter-dovecot-", dir="/tmp"))
    root.chmod(0o711)
    copy = root / "Maildir"
    shutil.copytree(maildir, copy)
    nobody = pwd.getpwnam("nobody")
    for path in [copy, *copy.rglob("*")]:
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    return root, copy
