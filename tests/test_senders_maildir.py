"""The maildir sender: a real Maildir that the standard library's mail reader opens."""

from __future__ import annotations

import email
import email.policy
import mailbox
import threading
from pathlib import Path

import pytest

from newsletter.mail.build import render_issue
from newsletter.content.config import load_config
from newsletter.errors import SendError
from newsletter.senders import load_sender
from newsletter.senders.base import Connection, PermanentFailure, Sender
from newsletter.senders.maildir import MaildirSender

FROM = "notes@example.org"


def make_sender(folder: Path) -> MaildirSender:
    sender = load_sender("maildir", load_config(folder, env={}), folder, {})
    assert isinstance(sender, MaildirSender) and isinstance(sender, Sender)
    return sender


def test_stores_messages_a_mail_reader_opens(folder):
    _, rendered, eml = render_issue(folder, "2026-11")
    sender = make_sender(folder)
    assert sender.describe() == f"the Maildir outbox {folder / 'outbox'}/ (no mail leaves this machine)"
    with sender.connect() as connection:
        assert isinstance(connection, Connection)
        replies = [connection.deliver(FROM, to, eml) for to in ("ada@example.org", "grace@example.org")]

    names = sorted(p.name for p in (folder / "outbox" / "new").iterdir())
    assert sorted(r.removeprefix("stored ") for r in replies) == names
    assert list((folder / "outbox" / "tmp").iterdir()) == []
    box = mailbox.Maildir(folder / "outbox", create=False)
    messages = sorted((box[key] for key in box.keys()), key=lambda m: m["Delivered-To"])
    assert [m["Delivered-To"] for m in messages] == ["ada@example.org", "grace@example.org"]
    for stored in messages:
        assert stored["Return-Path"] == f"<{FROM}>"
        parsed = email.message_from_bytes(stored.as_bytes(), policy=email.policy.default)
        assert parsed["Subject"] == rendered.subject
        assert parsed["From"].addresses[0].display_name == "Åsa Rønning, Practice Research Notes"
        assert parsed.get_body(("plain",)).get_content() == rendered.text
        assert parsed.get_body(("html",)).get_content().strip() == rendered.html.strip()
    # the file itself is the message with LF line ends behind the two envelope headers
    raw = (folder / "outbox" / "new" / names[0]).read_bytes()
    assert raw.endswith(eml.replace(b"\r\n", b"\n")) and b"\r\n" not in raw


def test_parallel_connections_never_collide(folder):
    sender = make_sender(folder)
    message = b"Subject: hi\r\n\r\nbody\r\n"

    def work(n: int) -> None:
        connection = sender.connect()
        for i in range(50):
            connection.deliver(FROM, f"r{n}-{i}@example.org", message)
        connection.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    box = mailbox.Maildir(folder / "outbox", create=False)
    assert sorted(box[k]["Delivered-To"] for k in box.keys()) == sorted(f"r{n}-{i}@example.org" for n in range(4) for i in range(50))


def test_envelope_injection_is_refused(folder):
    with make_sender(folder).connect() as connection:
        with pytest.raises(PermanentFailure):
            connection.deliver(FROM, "a@example.org\nBcc: evil@example.org", b"Subject: x\r\n\r\nx\r\n")
    assert list((folder / "outbox" / "new").iterdir()) == []


def test_unwritable_outbox_is_a_clear_error(folder):
    (folder / "outbox").write_text("not a folder")
    with pytest.raises(SendError) as error:
        make_sender(folder).connect()
    assert "cannot create the Maildir outbox" in str(error.value) and str(folder / "outbox") in str(error.value)
