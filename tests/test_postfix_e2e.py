"""End to end through a real Postfix: SMTPSender -> Postfix smtpd on 127.0.0.1 -> virtual(8) -> a Maildir.

The test runs a private Postfix instance (``postfix -c DIR``) with its own
main.cf/master.cf, queue and data directories in a fresh directory, listening only on
127.0.0.1:<free port>; the system's Postfix (if any) is not touched.  It needs
root (Postfix's master runs as root) and the Debian postfix package, which
scripts/test installs.
"""

from __future__ import annotations

import email
import email.policy
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from newsletter.content.config import load_config
from newsletter.delivery.send import SendOptions, execute, prepare
from newsletter.senders import load_sender
from process_support import wait_until_listening
from smtp_fault_server import free_port

pytestmark = pytest.mark.postfix

POSTFIX = "/usr/sbin/postfix"
DOMAIN = "readers.test"
READERS = ("ada", "grace", "linus")


def _require_postfix() -> None:
    if not os.path.exists(POSTFIX):
        pytest.fail("Postfix is not installed; run scripts/test, which installs it")
    if os.geteuid() != 0:
        pytest.skip("a private Postfix instance needs root (its master process runs as root)")


def _master_cf(port: int) -> str:
    """Debian's master.cf with chroot off, and smtpd listening on 127.0.0.1:port only."""
    lines = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        fields = line.split()
        if not line or line[0] in " \t#" or len(fields) < 8:
            lines.append(line)
            continue
        if fields[1] == "inet":  # every network listener of the system config is dropped
            continue
        fields[4] = "n"  # no chroot: the queue directory has no copy of /etc
        lines.append("  ".join(fields))
    lines.append(f"127.0.0.1:{port} inet n - n - - smtpd")
    return "\n".join(lines) + "\n"


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie (a container's init may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class PrivatePostfix:
    """A Postfix instance under ``root`` that delivers mail for DOMAIN into Maildirs under root/mail."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "etc"
        self.queue = root / "queue"
        self.data = root / "data"
        self.mail = root / "mail"
        self.log = root / "postfix.log"
        self.port = free_port()
        self.owner = pwd.getpwnam("postfix")

    def write_config(self) -> None:
        for path in (self.config, self.queue, self.data, self.mail):
            path.mkdir(parents=True, exist_ok=True)
        os.chown(self.data, self.owner.pw_uid, self.owner.pw_gid)
        # virtual(8) writes the Maildirs as the 'nobody' user: it must reach them.
        nobody = pwd.getpwnam("nobody")
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        (self.config / "vmailbox").write_text("".join(f"{r}@{DOMAIN} {DOMAIN}/{r}/\n" for r in READERS))
        (self.config / "main.cf").write_text(
            f"""\
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.data}
maillog_file = {self.log}
maillog_file_prefixes = {self.root}
myhostname = mx.newsletter.test
mydomain = newsletter.test
myorigin = $mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
relayhost =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = texthash:{self.config}/vmailbox
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
default_destination_concurrency_limit = 4
smtputf8_enable = no
biff = no
# nothing may leave 127.0.0.1: no reverse lookups of clients, no DNS for delivery
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
default_transport = error:this test instance delivers only to {DOMAIN}
"""
        )
        (self.config / "master.cf").write_text(_master_cf(self.port))

    def postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([POSTFIX, "-c", str(self.config), *args], capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        self.write_config()
        result = self.postfix("start")
        if result.returncode != 0:
            pytest.fail(f"postfix start failed ({result.returncode}): {result.stderr.strip()}\n{self.log_text()}")
        wait_until_listening(self.port, "Postfix", self.log_text)

    def stop(self) -> None:
        pid_file = self.queue / "pid" / "master.pid"
        pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        self.postfix("stop")
        deadline = time.monotonic() + 10
        while pid is not None and _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no Postfix log)"

    def maildir(self, reader: str) -> Path:
        return self.mail / DOMAIN / reader / "new"

    def wait_for(self, count: int, timeout: float = 30) -> list[Path]:
        deadline = time.monotonic() + timeout
        while True:
            files = [f for r in READERS if self.maildir(r).is_dir() for f in self.maildir(r).iterdir()]
            if len(files) >= count or time.monotonic() > deadline:
                return files
            time.sleep(0.2)


@pytest.fixture
def postfix():
    """A private Postfix, stopped and removed afterwards.

    Its directory is a fresh one in /tmp rather than tmp_path: Postfix's daemons
    reach the data directory and the Maildirs as unprivileged users, and pytest
    keeps its base directory private (0700) and re-applies that on every run.
    """
    _require_postfix()
    root = Path(tempfile.mkdtemp(prefix="newsletter-postfix-", dir="/tmp"))
    root.chmod(0o711)
    instance = PrivatePostfix(root)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_example_issue_through_postfix_to_maildirs(folder, postfix):
    env = {"NEWSLETTER_SMTP_HOST": "127.0.0.1", "NEWSLETTER_SMTP_PORT": str(postfix.port), "NEWSLETTER_SMTP_SECURITY": "none",
           "NEWSLETTER_SECRET": "e2e-secret"}
    (folder / "subscribers.csv").write_text(
        "email,name\n" + "".join(f"{r}@{DOMAIN},{n}\n" for r, n in zip(READERS, ("Ada Lovelace", "Grace Hopper", "")))
    )
    plan = prepare(folder, SendOptions(issue="2026-11", to=folder / "subscribers.csv", sender="smtp", concurrency=2), env=env)
    report = execute(plan)
    assert report.counts["sent"] == 3, report.lines()

    files = postfix.wait_for(3)
    assert len(files) == 3, f"Postfix delivered {len(files)} of 3 messages\n{postfix.log_text()}"
    by_reader = {}
    for path in files:
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        by_reader[path.parent.parent.name] = parsed
    assert sorted(by_reader) == sorted(READERS)
    for reader, parsed in by_reader.items():
        assert parsed["Delivered-To"] == f"{reader}@{DOMAIN}"
        assert parsed["Subject"] == "Practice Research Notes — November 2026"
        sender = parsed["From"].addresses[0]
        assert (sender.display_name, sender.addr_spec) == ("Åsa Rønning, Practice Research Notes", "notes@example.org")
        assert parsed["To"].addresses[0].addr_spec == f"{reader}@{DOMAIN}"
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "Received" in parsed and "mx.newsletter.test" in parsed["Received"]
        text = parsed.get_body(("plain",)).get_content()
        html = parsed.get_body(("html",)).get_content()
        assert "Feedback From Routine Outcome Monitoring Helps Clients at Risk" in text
        assert "Feedback From Routine Outcome Monitoring Helps Clients at Risk" in html
        assert "Kleinstäuber" in text  # UTF-8 survived quoted-printable and Postfix
    assert "Dear Ada Lovelace," in by_reader["ada"].get_body(("plain",)).get_content()
    assert "Dear Grace Hopper," in by_reader["grace"].get_body(("plain",)).get_content()
    assert len({p["Message-ID"] for p in by_reader.values()}) == 3


def test_sender_to_postfix_reuses_one_session_and_reports_unknown_users(folder, postfix):
    env = {"NEWSLETTER_SMTP_HOST": "127.0.0.1", "NEWSLETTER_SMTP_PORT": str(postfix.port), "NEWSLETTER_SMTP_SECURITY": "none"}
    sender = load_sender("smtp", load_config(folder, env=env), folder, env)
    message = b"From: notes@example.org\r\nSubject: direct\r\n\r\n.leading dot\r\nbody\r\n"
    from newsletter.senders.base import PermanentFailure

    with sender.connect() as connection:
        replies = [connection.deliver("notes@example.org", f"{r}@{DOMAIN}", message) for r in READERS]
        with pytest.raises(PermanentFailure) as failure:
            connection.deliver("notes@example.org", f"nobody@{DOMAIN}", message)
        assert connection.sessions == 1
    # Postfix offers CHUNKING, so these went as BDAT, whose reply also counts the bytes
    assert all(re.match(r"250 2\.0\.0 Ok: (\d+ bytes )?queued as ", r) for r in replies), replies
    assert failure.value.code == 550 and f"127.0.0.1:{postfix.port}: 550 5.1.1 <nobody@{DOMAIN}>" in failure.value.reply
    files = postfix.wait_for(3)
    assert len(files) == 3, postfix.log_text()
    for path in files:
        assert path.read_bytes().endswith(b"\n.leading dot\nbody\n")


def test_pipelined_bdat_through_postfix_gives_each_message_its_own_outcome(folder, postfix):
    """Issue 15: Postfix offers PIPELINING and CHUNKING, so each message goes as RSET, MAIL, RCPT
    and BDAT with the whole message in one write, the previous message's replies read after it.
    An unknown user in the middle gets its own 550; the others are delivered byte for byte."""
    env = {"NEWSLETTER_SMTP_HOST": "127.0.0.1", "NEWSLETTER_SMTP_PORT": str(postfix.port), "NEWSLETTER_SMTP_SECURITY": "none"}
    sender = load_sender("smtp", load_config(folder, env=env), folder, env)
    from newsletter.senders.base import PermanentFailure

    outcomes: dict[str, object] = {}
    order: list[str] = []
    recipients = ["ada", "nobody", "grace", "linus"]
    with sender.connect() as connection:
        assert "chunking" in connection._extensions and "pipelining" in connection._extensions
        for reader in recipients:
            message = f"From: notes@example.org\r\nTo: {reader}@{DOMAIN}\r\nSubject: chunked\r\n\r\n.dot for {reader}\r\n".encode()
            connection.submit("notes@example.org", f"{reader}@{DOMAIN}", message, handing_over=lambda r=reader: order.append(f"handing {r}"),
                              done=lambda outcome, r=reader: (outcomes.setdefault(r, outcome), order.append(f"done {r}")))
        connection.flush()
        assert connection.sessions == 1
    assert set(outcomes) == set(recipients)
    for reader in ("ada", "grace", "linus"):
        assert re.match(r"250 2\.0\.0 Ok: \d+ bytes queued as ", str(outcomes[reader])), outcomes
    nobody = outcomes["nobody"]
    assert isinstance(nobody, PermanentFailure) and nobody.code == 550 and f"<nobody@{DOMAIN}>" in nobody.reply
    # two messages on their way at once: each message's outcome comes after the next one left
    assert order == ["handing ada", "handing nobody", "done ada", "handing grace", "done nobody", "handing linus", "done grace", "done linus"]
    files = postfix.wait_for(3)
    assert len(files) == 3, postfix.log_text()
    assert sorted(path.read_bytes().rsplit(b"\n\n", 1)[1] for path in files) == [b".dot for ada\n", b".dot for grace\n", b".dot for linus\n"]
