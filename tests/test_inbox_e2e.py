"""Mail that comes back, end to end with real servers.

A private Postfix on 127.0.0.1 takes an issue sent with VERP envelope senders
and produces real DSNs: "user unknown" (5.1.1) for two readers that do not
exist, "mailbox full" (5.2.2) for one and a delay warning (4.2.1, Action: delayed)
for one it keeps deferring, each returned to its reader's
``bounces+<token>@newsletter.test`` address and delivered into one Maildir.
Into the same Maildir, through the same Postfix, come an ARF abuse report
about another reader, a reader's vacation reply, a mailto unsubscribe
made from the List-Unsubscribe header a reader received, and an unrelated
personal message.  `newsletter inbox` then reads that Maildir directly, or
the same mail served by a private Dovecot over IMAP with TLS.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import smtplib
import subprocess
import sys
import time
import urllib.parse
from email.message import EmailMessage
from pathlib import Path

import pytest

from dovecot_support import PrivateDovecot, served_copy_of
from newsletter.delivery.send import SendOptions, execute, prepare
from test_postfix_e2e import DOMAIN, PrivatePostfix, _require_postfix

pytestmark = pytest.mark.postfix

ROOT = Path(__file__).resolve().parent.parent
LIST_DOMAIN = "newsletter.test"
SECRET = "inbox e2e secret"
READERS = ("ada", "linus")  # delivered
FULL = "grace"  # Postfix answers 5.2.2 mailbox full
SLOW = "slow"  # Postfix defers (4.2.1) and sends a delay warning
GHOSTS = ("ghost1", "ghost2")  # no such user: 5.1.1
PERSONAL_SUBJECT = "Lunch on Friday?"


class BouncingPostfix(PrivatePostfix):
    """The test Postfix, also accepting mail for unknown users (so that it bounces them later, with a DSN)
    and delivering bounces+*@ and unsubscribe@newsletter.test into one Maildir."""

    def write_config(self) -> None:
        super().write_config()
        with open(self.config / "vmailbox", "a") as out:
            out.write(f"bounces@{LIST_DOMAIN} {LIST_DOMAIN}/box/\nunsubscribe@{LIST_DOMAIN} {LIST_DOMAIN}/box/\n")
        (self.config / "transport").write_text(
            f"{FULL}@{DOMAIN} error:5.2.2 Mailbox full: quota exceeded\n"
            f"{SLOW}@{DOMAIN} retry:4.2.1 Mailbox temporarily unavailable\n"
        )
        with open(self.config / "main.cf", "a") as out:
            out.write(
                f"virtual_mailbox_domains = {DOMAIN}, {LIST_DOMAIN}\n"
                "recipient_delimiter = +\n"
                "smtpd_reject_unlisted_recipient = no\n"
                f"transport_maps = texthash:{self.config}/transport\n"
                # a delay warning (a real 4.x.x DSN) one second after the first deferral
                "delay_warning_time = 1s\nqueue_run_delay = 1s\nminimal_backoff_time = 1s\nmaximal_backoff_time = 2s\n"
            )

    def box(self) -> Path:
        return self.mail / LIST_DOMAIN / "box"

    def wait_for_box(self, count: int, timeout: float = 60) -> list[Path]:
        deadline = time.monotonic() + timeout
        while True:
            new = self.box() / "new"
            files = sorted(new.iterdir()) if new.is_dir() else []
            if len(files) >= count or time.monotonic() > deadline:
                return files
            time.sleep(0.2)


def _newsletter_folder(target: Path) -> Path:
    target.mkdir(parents=True)
    shutil.copytree(ROOT / "issues", target / "issues")
    config = (ROOT / "newsletter.yaml").read_text().replace("email: unsubscribe@example.org", f"email: unsubscribe@{LIST_DOMAIN}")
    (target / "newsletter.yaml").write_text(config + f"bounces:\n  address: bounces@{LIST_DOMAIN}\n")
    return target


def _delivered(postfix: PrivatePostfix, reader: str) -> bytes:
    [path] = list(postfix.maildir(reader).iterdir())
    return path.read_bytes()


def _parsed(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def _arf_about(original: bytes) -> bytes:
    """An RFC 5965 abuse report as a mailbox provider's feedback loop sends it, the reader's copy attached as received."""
    received = email.message_from_bytes(original)
    return (
        "From: Feedback Loop <fbl@isp.test>\r\n"
        f"To: bounces@{LIST_DOMAIN}\r\n"
        "Subject: FW: abuse report\r\n"
        "Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n"
        "Message-ID: <arf-1@isp.test>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="arf"\r\n\r\n'
        "--arf\r\nContent-Type: text/plain\r\n\r\n"
        "This is an email abuse report for an email message received from IP 127.0.0.1.\r\n"
        "--arf\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: ExampleFBL/1.0\r\nVersion: 1\r\n"
        f"Original-Mail-From: {received['Return-Path']}\r\n"
        f"Original-Rcpt-To: <{received['Delivered-To']}>\r\n"
        "Arrival-Date: Mon, 30 Nov 2026 09:58:00 +0000\r\nReporting-MTA: dns; mx.isp.test\r\nSource-IP: 127.0.0.1\r\n\r\n"
        "--arf\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
    ).encode() + original.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n--arf--\r\n"


def _vacation_reply(original: EmailMessage) -> EmailMessage:
    """An RFC 3834 auto-reply, sent (as that RFC says) to the Return-Path of the message it answers."""
    reply = EmailMessage()
    reply["From"] = original["Delivered-To"]
    reply["To"] = original["Return-Path"].strip("<>")
    reply["Subject"] = f"Auto: {original['Subject']}"
    reply["Auto-Submitted"] = "auto-replied"
    reply["In-Reply-To"] = original["Message-ID"]
    reply["Message-ID"] = "<vacation-1@readers.test>"
    reply.set_content("I am away until Monday and will read your message then.\n")
    return reply


def _mailto_unsubscribe(original: EmailMessage) -> EmailMessage:
    """What a mail client sends for the mailto: in List-Unsubscribe (RFC 6068: address and subject)."""
    mailto = next(p.strip().strip("<>") for p in original["List-Unsubscribe"].split(",") if "mailto:" in p)
    parsed = urllib.parse.urlsplit(mailto)
    request = EmailMessage()
    request["From"] = original["Delivered-To"]
    request["To"] = parsed.path
    request["Subject"] = urllib.parse.parse_qs(parsed.query)["subject"][0]
    request["Message-ID"] = "<unsub-1@readers.test>"
    request.set_content("This message will unsubscribe you.\n")
    return request


def _personal() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Friend <friend@elsewhere.test>"
    message["To"] = f"bounces@{LIST_DOMAIN}"
    message["Subject"] = PERSONAL_SUBJECT
    message["Message-ID"] = "<lunch-1@elsewhere.test>"
    message.set_content("Are you free for lunch on Friday?\n")
    return message


@pytest.fixture(scope="module")
def returned(tmp_path_factory):
    """(newsletter folder, Maildir) after a send through Postfix: its DSNs, an ARF report, a vacation reply,
    a mailto unsubscribe and a personal message, all delivered by Postfix into the Maildir."""
    _require_postfix()
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="newsletter-postfix-", dir="/tmp"))
    root.chmod(0o711)
    postfix = BouncingPostfix(root)
    work = tmp_path_factory.mktemp("inbox-e2e")
    folder = _newsletter_folder(work / "letter")
    try:
        postfix.start()
        env = {"NEWSLETTER_SMTP_HOST": "127.0.0.1", "NEWSLETTER_SMTP_PORT": str(postfix.port), "NEWSLETTER_SMTP_SECURITY": "none",
               "NEWSLETTER_SECRET": SECRET}
        everyone = (*READERS, FULL, SLOW, *GHOSTS)
        (folder / "subscribers.csv").write_text("email,name\n" + "".join(f"{r}@{DOMAIN},{r.title()}\n" for r in everyone))
        report = execute(prepare(folder, SendOptions(issue="2026-11", to=folder / "subscribers.csv", sender="smtp"), env=env))
        assert report.counts["sent"] == len(everyone), report.lines()
        assert len(postfix.wait_for(len(READERS))) == len(READERS), postfix.log_text()
        ada, linus = _delivered(postfix, "ada"), _delivered(postfix, "linus")
        with smtplib.SMTP("127.0.0.1", postfix.port) as smtp:
            smtp.sendmail("fbl@isp.test", [f"bounces@{LIST_DOMAIN}"], _arf_about(linus))
            for message in (_vacation_reply(_parsed(ada)), _mailto_unsubscribe(_parsed(ada)), _personal()):
                smtp.send_message(message, from_addr="someone@elsewhere.test")
        files = postfix.wait_for_box(4 + 4)
        assert len(files) == 8, f"{len(files)} messages in the box\n{postfix.log_text()}"
        box = work / "box"
        shutil.copytree(postfix.box(), box)
    finally:
        postfix.stop()
        shutil.rmtree(root, ignore_errors=True)
    return folder, box


def _copy(returned, tmp_path: Path) -> tuple[Path, Path]:
    folder, box = returned
    shutil.copytree(folder, tmp_path / "letter")
    shutil.copytree(box, tmp_path / "box")
    return tmp_path / "letter", tmp_path / "box"


def _run(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": "/usr/bin:/bin", "NEWSLETTER_SECRET": SECRET, "NEWSLETTER_CACHE_DIR": os.environ["NEWSLETTER_CACHE_DIR"], **(env or {})}
    return subprocess.run([sys.executable, "-m", "newsletter", *args, "--folder", str(folder)],
                          capture_output=True, text=True, env=full_env, timeout=120)


def _personal_file(box: Path) -> Path:
    for path in (box / "new").iterdir():
        if PERSONAL_SUBJECT.encode() in path.read_bytes():
            return path
    raise AssertionError("the personal message is not in new/")


SUMMARY = "handled 2 hard, 2 soft, 1 complaints, 1 unsubscribes, 1 auto-replies, 0 unmatched, 1 left alone"
AGAIN = "handled 0 hard, 0 soft, 0 complaints, 0 unsubscribes, 0 auto-replies, 0 unmatched, 1 left alone"


def test_inbox_reads_a_maildir_of_real_bounces(returned, tmp_path: Path) -> None:
    folder, box = _copy(returned, tmp_path)
    personal = _personal_file(box)
    personal_bytes, personal_stat = personal.read_bytes(), personal.stat()

    dry = _run(folder, "inbox", "--maildir", str(box), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"Maildir {box}: would handle 2 hard, 2 soft" in dry.stdout
    assert len(list((box / "new").iterdir())) == 8 and not (box / ".newsletter-processed").exists()

    first = _run(folder, "inbox", "--maildir", str(box))
    assert first.returncode == 0, first.stderr
    assert f"Maildir {box}: {SUMMARY}" in first.stdout, first.stdout
    for ghost in GHOSTS:
        assert f"hard bounce {ghost}@{DOMAIN} (2026-11): 5.1.1" in first.stdout
    assert f"soft bounce {FULL}@{DOMAIN} (2026-11): 5.2.2" in first.stdout
    assert f"soft bounce {SLOW}@{DOMAIN} (2026-11): 4.2.1" in first.stdout
    assert f"complaint  linus@{DOMAIN} (2026-11)" in first.stdout
    assert f"unsubscribe ada@{DOMAIN}" in first.stdout
    assert f"auto-reply ada@{DOMAIN} (2026-11): ignored" in first.stdout

    # only the personal message is left where it was, byte for byte, under the same name
    assert list((box / "new").iterdir()) == [personal]
    assert personal.read_bytes() == personal_bytes and personal.stat().st_mtime_ns == personal_stat.st_mtime_ns
    assert len(list((box / ".newsletter-processed" / "new").iterdir())) == 7

    _check_store(folder)
    before = _store_snapshot(folder)
    second = _run(folder, "inbox", "--maildir", str(box))
    assert second.returncode == 0, second.stderr
    assert f"Maildir {box}: {AGAIN}" in second.stdout
    assert _store_snapshot(folder) == before
    assert list((box / "new").iterdir()) == [personal] and personal.read_bytes() == personal_bytes

    shown = _run(folder, "subscribers", "show", f"ghost1@{DOMAIN}")
    assert shown.returncode == 0, shown.stderr
    assert '"status": "5.1.1"' in shown.stdout and '"reporting_mta": "dns; mx.newsletter.test"' in shown.stdout
    assert 'unknown user: \\"ghost1@readers.test\\"' in shown.stdout and '"matched_by": "verp"' in shown.stdout
    # the next issue to the same list skips whoever bounced, complained or unsubscribed
    following = _run(folder, "send", "2026-10", "--to", str(folder / "subscribers.csv"), "--dry-run", "--sender", "maildir")
    assert following.returncode == 0, following.stderr
    assert "dry run: would send 2 message(s)" in following.stdout, following.stdout

    status = _run(folder, "status", "2026-11")
    assert "came back:     2 hard bounces, 2 soft bounces, 1 complaints, 1 auto-replies" in status.stdout, status.stdout + status.stderr


def _check_store(folder: Path) -> None:
    from newsletter.audience.store import SubscriberStore

    with SubscriberStore.open(folder) as store:
        for ghost in GHOSTS:
            assert store.status_of(f"{ghost}@{DOMAIN}") == "bounced"
            [event] = [e for e in store.events(f"{ghost}@{DOMAIN}") if e["event"] == "bounced"]
            detail = event["detail"]
            assert detail["status"] == "5.1.1" and detail["matched_by"] == "verp" and detail["issue"] == "2026-11"
            assert detail["reporting_mta"] == "dns; mx.newsletter.test"
            assert "unknown user" in detail["diagnostic_code"].lower() and detail["date"]
        assert store.status_of(f"{FULL}@{DOMAIN}") != "bounced"
        [soft] = [e for e in store.events(f"{FULL}@{DOMAIN}") if e["event"] == "soft-bounce"]
        assert soft["detail"]["status"] == "5.2.2" and soft["detail"]["score"] == 0.5
        [delayed] = [e for e in store.events(f"{SLOW}@{DOMAIN}") if e["event"] == "soft-bounce"]
        assert delayed["detail"]["status"] == "4.2.1" and delayed["detail"]["action"] == "delayed"
        assert store.status_of(f"linus@{DOMAIN}") == "complained"
        assert store.status_of(f"ada@{DOMAIN}") == "unsubscribed"


def _store_snapshot(folder: Path) -> list:
    from newsletter.audience.store import SubscriberStore

    with SubscriberStore.open(folder) as store:
        everyone = [f"{r}@{DOMAIN}" for r in (*READERS, FULL, SLOW, *GHOSTS)]
        return [(a, store.status_of(a), store.events(a)) for a in everyone]


def test_inbox_reads_the_same_mail_over_imap_with_tls(returned, tmp_path: Path) -> None:
    import imaplib
    import ssl

    folder, _box = returned
    shutil.copytree(folder, tmp_path / "letter")
    folder = tmp_path / "letter"
    root, maildir = served_copy_of(_box)
    dovecot = PrivateDovecot(root, maildir)
    try:
        dovecot.start()

        def personal_state() -> list[tuple[bytes, bytes]]:
            with imaplib.IMAP4_SSL("127.0.0.1", dovecot.port, ssl_context=ssl.create_default_context(cafile=str(dovecot.cert))) as imap:
                imap.login("bounces", "imap test password")
                imap.select("INBOX", readonly=True)
                _, found = imap.uid("SEARCH", "SUBJECT", '"Lunch on Friday"')
                out = []
                for uid in found[0].split():
                    _, data = imap.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
                    flags = re.search(rb"FLAGS \(([^)]*)\)", data[0][0]).group(1).split()
                    # \Recent only says which session saw the message first (RFC 3501); it is no one's flag to keep
                    out.append((sorted(f for f in flags if f != rb"\Recent"), data[0][1]))
                return out

        before = personal_state()
        assert len(before) == 1
        no_password = _run(folder, "inbox", "--imap", dovecot.url, env={"NEWSLETTER_IMAP_CAFILE": str(dovecot.cert)})
        assert no_password.returncode == 1 and "no IMAP password for bounces@127.0.0.1" in no_password.stderr
        untrusted = _run(folder, "inbox", "--imap", dovecot.url, env={"NEWSLETTER_IMAP_PASSWORD": "x"})
        assert untrusted.returncode == 1 and "certificate is not trusted" in untrusted.stderr and "NEWSLETTER_IMAP_CAFILE" in untrusted.stderr
        wrong = _run(folder, "inbox", "--imap", dovecot.url, env={**dovecot.env(), "NEWSLETTER_IMAP_PASSWORD": "wrong"})
        assert wrong.returncode == 1 and "refused the login for bounces" in wrong.stderr and "wrong" not in wrong.stderr

        dry = _run(folder, "inbox", "--imap", dovecot.url, "--dry-run", env=dovecot.env())
        assert dry.returncode == 0 and "would handle 2 hard, 2 soft" in dry.stdout, dry.stdout + dry.stderr
        assert not (maildir / ".newsletter-processed").exists() and not (folder / "subscribers.sqlite").exists()

        first = _run(folder, "inbox", "--imap", dovecot.url, env=dovecot.env())
        assert first.returncode == 0, first.stderr + dovecot.log_text()
        assert f"IMAP imaps://bounces@127.0.0.1:{dovecot.port}/INBOX: {SUMMARY}" in first.stdout, first.stdout
        _check_store(folder)
        assert personal_state() == before  # same bytes, same flags (no \\Seen), still in INBOX
        second = _run(folder, "inbox", "--imap", dovecot.url, env=dovecot.env())
        assert second.returncode == 0 and AGAIN in second.stdout, second.stdout + second.stderr
        with imaplib.IMAP4_SSL("127.0.0.1", dovecot.port, ssl_context=ssl.create_default_context(cafile=str(dovecot.cert))) as imap:
            imap.login("bounces", "imap test password")
            _, count = imap.select("newsletter-processed", readonly=True)
            assert count == [b"7"]
            _, count = imap.select("INBOX", readonly=True)
            assert count == [b"1"]
    finally:
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)
