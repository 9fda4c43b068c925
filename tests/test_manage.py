"""`newsletter subscribers …` as a user runs it (real subprocesses), and sends from the store."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from newsletter.audience.store import STORE_FILE, SubscriberStore
from newsletter.delivery.send import SendOptions, execute, prepare
from send_support import Server

MONTH = "2026-11"


def run(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command line, in a child process, in the newsletter folder."""
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args], cwd=folder, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def send(folder: Path, server: Server, to: Path | None = None):
    plan = prepare(folder, SendOptions(issue=MONTH, to=to, sender="smtp", retry_delay=0.05), env=server.env())
    return plan, execute(plan)


def test_import_list_add_remove_and_reimport_keeps_out_who_left(folder: Path) -> None:
    write(folder / "old.csv", "email,name,city,status\nada@example.org,Ada,Oslo,\nbo@example.org,Bo,Bergen,subscribed\n"
          "gone@example.org,Gone,,unsubscribed\nspam@example.org,S,,complained\nnot-an-address,X,,\nADA@example.org,dup,,\n")
    result = run(folder, "subscribers", "import", "old.csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "imported old.csv: 2 added, 0 already in the store (name and fields updated)",
        "recorded from the status column: 1 complained, 1 unsubscribed",
        "1 duplicate row(s) ignored",
        "1 row(s) skipped:",
        "  old.csv:6: 'not-an-address' is not a valid email address (An email address must have an @-sign); row skipped",
    ]
    assert run(folder, "subscribers", "add", "cy@example.org", "--name", "Cy").stdout == "added cy@example.org (confirmed)\n"
    assert run(folder, "subscribers", "remove", "bo@example.org").stdout == "unsubscribed bo@example.org\n"
    assert run(folder, "subscribers", "add", "bo@example.org").stdout == (
        "bo@example.org is unsubscribed: not added back (only they can sign up again, through the subscribe form)\n")
    again = run(folder, "subscribers", "import", "old.csv")
    assert "imported old.csv: 0 added, 1 already in the store" in again.stdout
    assert "kept out 1 who left before (1 unsubscribed): an import never brings them back" in again.stdout
    listing = run(folder, "subscribers", "list").stdout.splitlines()
    assert listing[0] == "pending: 0  confirmed: 2  unsubscribed: 2  bounced: 0  complained: 1  forgotten: 0"
    assert [line.split("  ")[:2] for line in listing[1:]] == [
        ["ada@example.org", "confirmed"], ["bo@example.org", "unsubscribed"], ["cy@example.org", "confirmed"],
        ["gone@example.org", "unsubscribed"], ["spam@example.org", "complained"]]
    only = run(folder, "subscribers", "list", "--status", "confirmed").stdout.splitlines()
    assert [line.split("  ")[0] for line in only[1:]] == ["ada@example.org", "cy@example.org"]


def test_show_prints_everything_stored_as_json(folder: Path) -> None:
    with SubscriberStore.open(folder) as store:
        store.subscribe("ada@example.org", "Ada", how="form", consent_text="Send me the monthly notes", ip="192.0.2.5",
                        user_agent="Firefox/140", fields={"city": "Oslo"})
        store.confirm("ada@example.org", ip="192.0.2.6", user_agent="Firefox/140")
    result = run(folder, "subscribers", "show", "ADA@example.org")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    conn = sqlite3.connect(folder / STORE_FILE)
    conn.row_factory = sqlite3.Row
    stored = dict(conn.execute("SELECT * FROM subscribers").fetchone())
    events = [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY id")]
    conn.close()
    # every stored column is shown (the key is the lowercased address itself)
    for column, value in stored.items():
        if column not in ("key", "fields"):
            assert record[column] == value, column
    assert record["fields"] == {"city": "Oslo"}
    assert [(e["at"], e["event"]) for e in record["events"]] == [(e["at"], e["event"]) for e in events]
    assert record["events"][1]["detail"] == {"ip": "192.0.2.6", "user_agent": "Firefox/140"}
    missing = run(folder, "subscribers", "show", "nobody@example.org")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("error: subscribers.sqlite: nothing is stored about nobody@example.org")


def test_forget_leaves_a_hash_and_a_reimport_does_not_readd(folder: Path) -> None:
    write(folder / "list.csv", "email,name\nerase.me@example.org,Erase Me\nstay@example.org,Stay\n")
    write(folder / "suppressed.txt", "# people who asked\nerase.me@example.org\n")
    run(folder, "subscribers", "import", "list.csv")
    result = run(folder, "subscribers", "forget", "Erase.Me@example.org")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("erased everything stored about Erase.Me@example.org; removed from suppressed.txt.")
    assert (folder / "suppressed.txt").read_text() == "# people who asked\n"
    again = run(folder, "subscribers", "import", "list.csv")
    assert "kept out 1 who left before (1 forgotten)" in again.stdout
    assert json.loads(run(folder, "subscribers", "show", "erase.me@example.org").stdout)["status"] == "forgotten"
    raw = b"".join(p.read_bytes() for p in folder.glob(STORE_FILE + "*"))
    assert b"erase.me" not in raw.lower() and b"Erase Me" not in raw


def test_export_columns_to_stdout_and_file(folder: Path) -> None:
    write(folder / "list.csv", "email,name,city\nada@example.org,Ada,Oslo\nbo@example.org,=HYPERLINK(\"x\"),Bergen\n")
    run(folder, "subscribers", "import", "list.csv")
    run(folder, "subscribers", "remove", "bo@example.org")
    out = run(folder, "subscribers", "export")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert list(rows[0]) == ["email", "name", "status", "subscribed_at", "confirmed_at", "unsubscribed_at",
                             "consent_how", "consent_source", "city"]
    assert [(r["email"], r["status"], r["city"], r["consent_source"]) for r in rows] == [
        ("ada@example.org", "confirmed", "Oslo", "imported from list.csv"),
        ("bo@example.org", "unsubscribed", "Bergen", "imported from list.csv")]
    assert rows[1]["unsubscribed_at"] and not rows[0]["unsubscribed_at"]
    assert rows[1]["name"] == "'=HYPERLINK(\"x\")"  # a spreadsheet must not run it
    to_file = run(folder, "subscribers", "export", "--status", "confirmed", "--out", "confirmed.csv")
    assert to_file.stdout == "" and to_file.stderr == "wrote 1 subscriber(s) to confirmed.csv\n"
    assert (folder / "confirmed.csv").read_text().splitlines()[1].startswith("ada@example.org,Ada,confirmed,")


def test_send_without_to_goes_to_the_confirmed_subscribers_only(folder: Path) -> None:
    with SubscriberStore.open(folder) as store:
        for i in range(5):
            store.subscribe(f"reader{i}@example.org", f"Reader {i}", how="command", status="confirmed", fields={"city": "Oslo"})
        store.subscribe("pending@example.org", how="form")
        store.unsubscribe("reader3@example.org", via="one-click")
        store.subscribe("bo@bücher.de", "Bo", how="command", status="confirmed")
    with Server() as server:
        plan, report = send(folder, server)
        got = server.receiver.received()
    assert "list:       subscribers.sqlite (its confirmed subscribers)" in plan.summary()
    assert Counter(g.rcpt for g in got) == Counter(
        ["reader0@example.org", "reader1@example.org", "reader2@example.org", "reader4@example.org", "bo@xn--bcher-kva.de"])
    assert report.ok and report.counts["sent"] == 5
    bo = next(g for g in got if g.rcpt == "bo@xn--bcher-kva.de")
    assert bo.data.isascii() and b"To: Bo <bo@xn--bcher-kva.de>" in bo.data  # punycode: no SMTPUTF8 needed


def test_csv_sends_honour_the_store_and_suppressed_txt(folder: Path) -> None:
    write(folder / "list.csv", "email,name\n" + "".join(f"reader{i}@example.org,R{i}\n" for i in range(6)))
    write(folder / "suppressed.txt", "reader5@example.org\n")
    with SubscriberStore.open(folder) as store:
        store.unsubscribe("Reader1@example.org", via="one-click")
        store.set_status("reader2@example.org", "bounced", event="bounced", detail={"status": "5.1.1"})
        store.set_status("reader3@example.org", "complained", event="complained")
        store.forget("reader4@example.org")
    with Server() as server:
        plan, report = send(folder, server, folder / "list.csv")
        got = server.receiver.received()
    assert [g.rcpt for g in got] == ["reader0@example.org"]
    assert "recipients: 1 after filtering (skipped: 5 suppressed)" in plan.summary()
    assert any(n.startswith("suppressed.txt: 1 address(es) recorded in subscribers.sqlite as unsubscribed") for n in plan.notes)
    with SubscriberStore.open(folder) as store:
        assert store.status_of("reader5@example.org") == "unsubscribed"


def test_no_list_and_no_store_says_what_to_do(folder: Path) -> None:
    result = run(folder, "send", MONTH, "--yes")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no subscriber list given, and no subscriber store (subscribers.sqlite) in this folder" in result.stderr
    assert "newsletter subscribers import subscribers.csv" in result.stderr


def test_an_empty_store_is_refused_and_nothing_recorded(folder: Path) -> None:
    with SubscriberStore.open(folder) as store:
        store.subscribe("pending@example.org", how="form")
    result = run(folder, "send", MONTH, "--yes")
    assert result.returncode == 1
    assert "subscribers.sqlite: nobody to send to: the subscriber store has no confirmed subscribers" in result.stderr
    assert not (folder / "sends" / f"{MONTH}.sqlite").exists()


def test_send_cli_from_the_store_to_the_maildir_outbox(folder: Path) -> None:
    run(folder, "subscribers", "add", "ada@example.org", "--name", "Ada")
    result = run(folder, "send", MONTH, "--yes", env={"NEWSLETTER_SECRET": "s3cret"})
    assert result.returncode == 0, result.stderr
    assert "list:       subscribers.sqlite (its confirmed subscribers)" in result.stdout
    delivered = [p for p in (folder / "outbox").rglob("*") if p.is_file() and "/new/" in str(p)]
    assert len(delivered) == 1 and b"To: Ada <ada@example.org>" in delivered[0].read_bytes()


def test_who_unsubscribes_during_a_send_is_not_sent_to(folder: Path) -> None:
    """A one-click unsubscribe while the send runs: the rows not yet sent are checked against the store."""
    import threading
    from send_support import Receiver

    with SubscriberStore.open(folder) as store:
        for i in range(40):
            store.subscribe(f"reader{i:02d}@example.org", how="command", status="confirmed")
    import asyncio

    receiver = Receiver(delay=0.05)  # a slow server: the send takes a couple of seconds
    first, unsubscribed = threading.Event(), threading.Event()
    original = receiver.handle_DATA

    async def handle_data(server, session, envelope):
        # the first message is answered only once the unsubscribes are committed
        first.set()
        await asyncio.get_running_loop().run_in_executor(None, unsubscribed.wait, 60)
        return await original(server, session, envelope)

    receiver.handle_DATA = handle_data  # type: ignore[method-assign]

    def unsubscribe_late_readers() -> None:
        first.wait(60)
        with SubscriberStore.open(folder) as other:  # another connection, as the web endpoint would be
            for i in range(35, 40):
                other.unsubscribe(f"reader{i:02d}@example.org", via="one-click")
        unsubscribed.set()

    helper = threading.Thread(target=unsubscribe_late_readers)
    helper.start()
    with Server(receiver) as server:
        plan = prepare(folder, SendOptions(issue=MONTH, sender="smtp", retry_delay=0.05, concurrency=1), env=server.env())
        report = execute(plan)
        got = {g.rcpt for g in server.receiver.received()}
    helper.join()
    assert not got & {f"reader{i:02d}@example.org" for i in range(35, 40)}
    assert got == {f"reader{i:02d}@example.org" for i in range(35)}
    assert report.ok and report.counts["sent"] == 35 and report.counts["pending"] == 0
    assert "5 reader(s) unsubscribed (or bounced, complained) after the list was loaded: not sent to" in report.lines()
