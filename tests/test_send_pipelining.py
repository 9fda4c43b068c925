"""The send loop over a pipelining connection (issue 15): the same exact outcomes in the send
record as one message at a time, with faults between pipelined messages, against real aiosmtpd."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from newsletter.delivery.ledger import Ledger, ledger_path
from newsletter.delivery.send import SendOptions, execute, prepare
from send_support import Receiver, Server, people, write_list

MONTH = "2026-11"


class PipeliningReceiver(Receiver):
    """The send tests' receiver, advertising PIPELINING (aiosmtpd handles pipelined commands)."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        responses.insert(1, "250-PIPELINING")
        return responses


def test_faults_between_pipelined_messages_keep_exact_outcomes(folder: Path) -> None:
    """A 5xx, a 421, a drop at the next envelope and a drop after the data, each in the middle of
    a pipelined stream: every other reader gets the issue exactly once, each fault lands on its reader."""
    csv = write_list(folder / "list.csv", people(14))
    receiver = PipeliningReceiver(faults={
        "reader0001@example.org": ["451"],
        "reader0003@example.org": ["550"],
        "reader0004@example.org": ["421"],
        "reader0005@example.org": ["drop"],
        "reader0006@example.org": ["data-drop"],
        "reader0009@example.org": ["550"],
        "reader0010@example.org": ["550"],
    })
    with Server(receiver) as server:
        plan = prepare(folder, SendOptions(issue=MONTH, to=csv, sender="smtp", retry_delay=0.05, concurrency=2, max_attempts=3), env=server.env())
        report = execute(plan)
        got = server.receiver.received()
    counts = Counter(g.rcpt for g in got)
    for i in (0, 1, 2, 4, 5, 6, 7, 8, 11, 12, 13):
        assert counts[f"reader{i:04d}@example.org"] == 1, i
    assert counts["reader0003@example.org"] == counts["reader0009@example.org"] == counts["reader0010@example.org"] == 0
    assert report.counts == {"pending": 0, "sending": 0, "sent": 10, "failed": 3, "deferred": 0, "uncertain": 1}
    with Ledger(ledger_path(folder, MONTH), recover=False) as ledger:
        rows = {r.address: r for r in ledger.rows()}
    assert rows["reader0006@example.org"].state == "uncertain"
    for i in (3, 9, 10):
        row = rows[f"reader{i:04d}@example.org"]
        assert row.state == "failed" and f"<reader{i:04d}@example.org>: Recipient address rejected" in row.last_reply
    # retried after its 421 (and once more if it was next in line behind the dropped one)
    assert rows["reader0004@example.org"].state == "sent" and rows["reader0004@example.org"].attempts >= 2
    assert rows["reader0002@example.org"].state == "sent" and rows["reader0002@example.org"].attempts == 1
