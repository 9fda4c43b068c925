"""How fast does `newsletter inbox` work through a mailbox?  Run: .venv/bin/python bench/inbox_bench.py [--readers N]

In ``bench/.work/inbox/`` it sends the example issue 2026-11 through the maildir sender to N
readers with VERP envelope senders (so the send record is real), then fills a Maildir with one
Postfix-format DSN per reader, addressed to that reader's VERP address (half hard 5.1.1, half
soft 4.2.1), plus one unrelated personal message per ten readers.  In the same run it measures:

1. the reference: the standard library parsing each message (``email.message_from_bytes``),
   the least any reader of these messages must do;
2. ``returned.classify`` alone (parsing, DSN fields, original headers);
3. the whole of ``inbox.process`` on the Maildir: classify, match by VERP token against the send
   record, write the store's status and event, remember the Message-ID, move the file.

Prints messages per second and the ratios; nothing asserts (timings depend on the machine).
"""

from __future__ import annotations

import argparse
import email
import mailbox
import shutil
import time
from pathlib import Path

from newsletter.audience.inbox import process
from newsletter.audience.mailboxes import MaildirSource
from newsletter.audience.returned import classify
from newsletter.content.config import load_config
from newsletter.delivery.send import SendOptions, execute, prepare

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "inbox"
SECRET = "bench secret"
DSN = (ROOT / "tests" / "data" / "returned" / "postfix-user-unknown.eml").read_bytes()
PERSONAL = (ROOT / "tests" / "data" / "returned" / "personal-vacation-plans.eml").read_bytes()


def setup(readers: int) -> tuple[Path, list[bytes]]:
    shutil.rmtree(WORK, ignore_errors=True)
    folder = WORK / "letter"
    folder.mkdir(parents=True)
    shutil.copytree(ROOT / "issues", folder / "issues")
    (folder / "newsletter.yaml").write_text((ROOT / "newsletter.yaml").read_text() + "bounces:\n  address: bounces@newsletter.test\n")
    (folder / "list.csv").write_text("email\n" + "".join(f"reader{i}@readers.test\n" for i in range(readers)))
    execute(prepare(folder, SendOptions(issue="2026-11", to=folder / "list.csv", sender="maildir"), env={"NEWSLETTER_SECRET": SECRET}))
    messages = []
    for n, path in enumerate((folder / "outbox" / "new").iterdir()):
        sent = email.message_from_bytes(path.read_bytes())
        verp, reader = sent["Return-Path"].strip("<>"), sent["Delivered-To"]
        text = DSN.replace(b"ghost1@readers.test", reader.encode())
        text = text.replace(b"bounces+l4baaaaaaqf3psigjxn5vzqrm4@newsletter.test", verp.encode())
        if n % 2:
            text = text.replace(b"Status: 5.1.1", b"Status: 4.2.1").replace(b"Action: failed", b"Action: delayed")
        messages.append(text.replace(b"Message-Id: <", f"Message-Id: <{len(messages)}.".encode(), 1))
        if n % 10 == 9:
            messages.append(PERSONAL.replace(b"<plans-1@", f"<plans-{len(messages)}@".encode()))
    shutil.rmtree(folder / "outbox")
    return folder, messages


def rate(func, items: list[bytes]) -> float:
    start = time.perf_counter()
    for item in items:
        func(item)
    return len(items) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=2000)
    args = parser.parse_args()
    folder, messages = setup(args.readers)
    parse = max(rate(email.message_from_bytes, messages) for _ in range(3))
    classified = max(rate(classify, messages) for _ in range(3))
    box = mailbox.Maildir(WORK / "box", create=True)
    for message in messages:
        box.add(message)
    start = time.perf_counter()
    report = process(folder, load_config(folder), MaildirSource(WORK / "box"), secret=SECRET.encode())
    whole = len(messages) / (time.perf_counter() - start)
    print(f"{len(messages)} messages ({args.readers} DSNs, {len(messages) - args.readers} personal)")
    print(report.summary())
    print(f"email.message_from_bytes (reference): {parse:8.0f} msg/s")
    print(f"returned.classify:                    {classified:8.0f} msg/s  ({classified / parse:.2f}x the reference)")
    print(f"inbox.process, whole run:             {whole:8.0f} msg/s  ({whole / parse:.2f}x the reference)")


if __name__ == "__main__":
    main()
