"""`newsletter inbox` on local mailboxes: matching, scoring, idempotency, and what is never touched.

The send records come from real sends through the maildir sender (with VERP envelope senders);
the returned messages are DSNs in Postfix's format addressed to those envelope senders.
"""

from __future__ import annotations

import email
import mailbox
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from newsletter.audience.inbox import process, read_inbox
from newsletter.audience.mailboxes import MaildirSource, MboxSource, parse_imap_url
from newsletter.audience.store import SubscriberStore
from newsletter.content.config import load_config
from newsletter.delivery.send import SendOptions, execute, prepare
from newsletter.errors import NewsletterError
from send_support import write_list

SECRET = "inbox unit secret"
DATA = Path(__file__).parent / "data" / "returned"
READERS = ("ada@readers.test", "grace@readers.test", "linus@readers.test")
DAY = 86400.0
START = datetime(2026, 12, 1, 9, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def sent(folder: Path) -> dict[str, dict[str, str]]:
    """Send 2026-11 to three readers; each reader's Return-Path and Message-ID as they left."""
    (folder / "newsletter.yaml").write_text((folder / "newsletter.yaml").read_text() + "bounces:\n  address: bounces@example.org\n")
    csv = write_list(folder / "list.csv", [(a, a.split("@")[0].title()) for a in READERS])
    execute(prepare(folder, SendOptions(issue="2026-11", to=csv, sender="maildir"), env={"NEWSLETTER_SECRET": SECRET}))
    out = {}
    for path in (folder / "outbox" / "new").iterdir():
        msg = email.message_from_bytes(path.read_bytes())
        out[msg["Delivered-To"]] = {"return_path": msg["Return-Path"].strip("<>"), "message_id": msg["Message-ID"]}
    return out


def dsn(to: str, reader: str, status: str, *, message_id: str, original_id: str = "<unknown@example.org>",
        list_id: bool = True, action: str = "failed") -> bytes:
    """A DSN in Postfix's format."""
    list_header = "List-Id: Practice Research Notes <practice-research-notes.example.org>\n" if list_id else ""
    return f"""Return-Path: <>
Delivered-To: {to}
From: Mail Delivery System <MAILER-DAEMON@mx.readers.test>
To: {to}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Message-Id: {message_id}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

<{reader}>: {status}

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.readers.test
Arrival-Date: Tue,  1 Dec 2026 09:00:00 +0000 (UTC)

Final-Recipient: rfc822; {reader}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {status} test

--B
Content-Type: text/rfc822-headers

From: Practice Research Notes <notes@example.org>
To: {reader}
Message-ID: {original_id}
{list_header}
--B--
""".encode()


def maildir(tmp_path: Path, *messages: bytes) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    box = mailbox.Maildir(tmp_path / "box", create=True)
    for message in messages:
        box.add(message)
    return tmp_path / "box"


def run(folder: Path, box: Path, when: float, *, dry_run: bool = False, secret: str | None = SECRET):
    return process(folder, load_config(folder), MaildirSource(box), secret=secret.encode() if secret else None, dry_run=dry_run, clock=lambda: when)


def status(folder: Path, address: str) -> tuple[str | None, list[dict]]:
    with SubscriberStore.open(folder) as store:
        return store.status_of(address), store.events(address)


def test_soft_bounces_score_once_a_day_up_to_the_threshold(folder: Path, sent, tmp_path: Path) -> None:
    grace = sent["grace@readers.test"]
    seen = []
    for day in range(6):
        for n in range(2):  # two soft bounces a day: only the first counts
            box = maildir(tmp_path / f"d{day}n{n}", dsn(grace["return_path"], "grace@readers.test", "4.2.0", message_id=f"<soft-{day}-{n}@mx>"))
            report = run(folder, box, START + day * DAY + n * 60)
            assert report.counts["soft"] == 1
            seen.append(status(folder, "grace@readers.test")[0])
    state, events = status(folder, "grace@readers.test")
    scored = [e for e in events if "score" in e["detail"]]
    scores = [(e["detail"]["score"], e["detail"]["counted"]) for e in scored]
    assert scores[:5] == [(0.5, True), (0.5, False), (1.0, True), (1.0, False), (1.5, True)]
    assert scores[-1] == (3.0, True) and scored[-1]["event"] == "bounced"  # day 6 reaches the threshold of 3
    assert [e["event"] for e in scored[:-1]] == ["soft-bounce"] * 10
    assert seen.index("bounced") == 10 and state == "bounced"
    assert events[-1]["detail"]["note"] == "already bounced; not scored"


def test_a_score_starts_again_when_the_last_bounce_is_old(folder: Path, sent, tmp_path: Path) -> None:
    grace = sent["grace@readers.test"]
    run(folder, maildir(tmp_path / "a", dsn(grace["return_path"], "grace@readers.test", "4.2.0", message_id="<s1@mx>")), START)
    run(folder, maildir(tmp_path / "b", dsn(grace["return_path"], "grace@readers.test", "4.2.0", message_id="<s2@mx>")), START + DAY)
    run(folder, maildir(tmp_path / "c", dsn(grace["return_path"], "grace@readers.test", "4.2.0", message_id="<s3@mx>")), START + 10 * DAY)
    scores = [e["detail"]["score"] for e in status(folder, "grace@readers.test")[1]]
    assert scores == [0.5, 1.0, 0.5]


def test_hard_bounce_by_verp_and_by_message_id_and_by_final_recipient(folder: Path, sent, tmp_path: Path) -> None:
    box = maildir(
        tmp_path,
        dsn(sent["ada@readers.test"]["return_path"], "ada@readers.test", "5.1.1", message_id="<h1@mx>"),
        # to the plain bounces address (VERP lost): the original's Message-ID finds grace
        dsn("bounces@example.org", "grace@readers.test", "5.1.1", message_id="<h2@mx>", original_id=sent["grace@readers.test"]["message_id"]),
        # neither: our List-Id in the original and an address we sent to
        dsn("bounces@example.org", "linus@readers.test", "5.1.1", message_id="<h3@mx>"),
    )
    report = run(folder, box, START)
    assert report.counts["hard"] == 3, report.lines
    how = {a: status(folder, a)[1][-1]["detail"]["matched_by"] for a in READERS}
    assert how == {"ada@readers.test": "verp", "grace@readers.test": "message-id", "linus@readers.test": "final-recipient"}
    assert all(status(folder, a)[0] == "bounced" for a in READERS)
    assert status(folder, "ada@readers.test")[1][-1]["detail"]["issue"] == "2026-11"


def test_what_is_not_provably_ours_is_left_where_it_was(folder: Path, sent, tmp_path: Path) -> None:
    ada = sent["ada@readers.test"]
    forged_row = re.sub(r"\+(.{6})", lambda m: "+" + m.group(1)[:5] + ("b" if m.group(1)[5] != "b" else "c"), ada["return_path"])
    messages = [
        (DATA / "personal-bounce.eml").read_bytes(),  # the owner's own mail bounced: no List-Id, no VERP
        (DATA / "personal-vacation-plans.eml").read_bytes(),
        dsn(forged_row, "ada@readers.test", "5.1.1", message_id="<forged@mx>", list_id=False),  # a token that does not verify
        dsn("bounces@example.org", "stranger@readers.test", "5.1.1", message_id="<stranger@mx>"),  # never sent to
        b"From: mallory@evil.test\nTo: unsubscribe@example.org\nSubject: unsubscribe " + b"A" * 60 + b"\nMessage-ID: <u@evil>\n\nx\n",
        b"From: ada@readers.test\nTo: bounces@example.org\nSubject: Out of Office\nAuto-Submitted: auto-replied\nMessage-ID: <o@r>\n\naway\n",
    ]
    box = maildir(tmp_path, *messages)
    before = {p: p.read_bytes() for p in (box / "new").iterdir()}
    report = run(folder, box, START)
    assert report.counts == {"hard": 0, "soft": 0, "complaints": 0, "unsubscribes": 0, "auto-replies": 0, "unmatched": 4, "left alone": 2}
    assert {p: p.read_bytes() for p in (box / "new").iterdir()} == before
    assert not (box / ".newsletter-processed").exists()
    assert all(status(folder, a)[0] is None for a in READERS)


def test_without_the_secret_verp_cannot_be_checked(folder: Path, sent, tmp_path: Path) -> None:
    box = maildir(tmp_path, dsn(sent["ada@readers.test"]["return_path"], "ada@readers.test", "5.1.1", message_id="<h1@mx>", list_id=False))
    report = read_inbox(folder, maildir=box, env={})
    assert report.lines[0].startswith("note: NEWSLETTER_SECRET is not set")
    assert report.counts["unmatched"] == 1


def test_dry_run_changes_nothing(folder: Path, sent, tmp_path: Path) -> None:
    box = maildir(tmp_path, dsn(sent["ada@readers.test"]["return_path"], "ada@readers.test", "5.1.1", message_id="<h1@mx>"))
    report = run(folder, box, START, dry_run=True)
    assert report.counts["hard"] == 1 and report.lines[0].startswith("would: hard bounce ada@readers.test (2026-11): 5.1.1")
    assert "would handle 1 hard" in report.summary()
    assert not (folder / "subscribers.sqlite").exists() and not (folder / "returned-mail.sqlite").exists()
    assert len(list((box / "new").iterdir())) == 1


def test_an_mbox_is_read_only_and_a_second_run_changes_nothing(folder: Path, sent, tmp_path: Path) -> None:
    path = tmp_path / "returned.mbox"
    box = mailbox.mbox(path)
    box.add(dsn(sent["ada@readers.test"]["return_path"], "ada@readers.test", "5.1.1", message_id="<h1@mx>"))
    box.add((DATA / "personal-vacation-plans.eml").read_bytes())
    box.close()
    before = path.read_bytes()
    config = load_config(folder)
    first = process(folder, config, MboxSource(path), secret=SECRET.encode(), clock=lambda: START)
    events = status(folder, "ada@readers.test")[1]
    second = process(folder, config, MboxSource(path), secret=SECRET.encode(), clock=lambda: START + DAY)
    assert first.counts["hard"] == 1 and second.counts["hard"] == 0 and second.already == 1
    assert "1 already processed earlier" in second.summary()
    assert status(folder, "ada@readers.test")[1] == events
    assert path.read_bytes() == before


def test_mailto_unsubscribe_needs_the_token_from_the_readers_own_header(folder: Path, sent, tmp_path: Path) -> None:
    [path] = [p for p in (folder / "outbox" / "new").iterdir() if b"Delivered-To: linus@readers.test" in p.read_bytes()]
    header = " ".join(email.message_from_bytes(path.read_bytes())["List-Unsubscribe"].split())
    token = re.search(r"mailto:unsubscribe@example\.org\?subject=unsubscribe%20([\w-]+)>", header).group(1)
    # sent From someone else entirely: the token decides, not the From
    request = f"From: someone@else.test\nTo: unsubscribe@example.org\nSubject: unsubscribe {token}\nMessage-ID: <u1@else>\n\n".encode()
    report = run(folder, maildir(tmp_path, request), START)
    assert report.counts["unsubscribes"] == 1
    state, events = status(folder, "linus@readers.test")
    assert state == "unsubscribed" and events[-1]["detail"] == {"via": "mailto"}


def test_imap_urls() -> None:
    location = parse_imap_url("imaps://me%40example.org@imap.example.org/INBOX/bounces")
    assert (location.user, location.host, location.port, location.folder) == ("me@example.org", "imap.example.org", 993, "INBOX/bounces")
    assert parse_imap_url("imaps://u@127.0.0.1:10993").folder == "INBOX"
    for bad, message in (("imap://u@h/INBOX", "only imaps://"), ("imaps://u:pw@h/INBOX", "do not put the password"), ("imaps://h/INBOX", "a user and a host")):
        with pytest.raises(NewsletterError, match=message):
            parse_imap_url(bad)


def test_the_command_needs_exactly_one_mailbox(folder: Path) -> None:
    from click.testing import CliRunner

    from newsletter.cli import main

    result = CliRunner().invoke(main, ["inbox", "--folder", str(folder)])
    assert result.exit_code == 1
    assert "error: give exactly one of --imap URL, --maildir DIR or --mbox FILE" in result.output
    result = CliRunner().invoke(main, ["inbox", "--maildir", str(folder), "--folder", str(folder)])
    assert result.exit_code == 1 and "is not a Maildir (it needs new/ and cur/ folders)" in result.output


def test_a_redacted_complaint_is_matched_by_the_envelope_sender_it_quotes(folder: Path, sent, tmp_path: Path) -> None:
    """Providers redact the reader's address in ARF reports; our VERP Return-Path, quoted back, still names them."""
    grace = sent["grace@readers.test"]
    report = f"""From: fbl@isp.test
To: abuse-desk@example.org
Subject: complaint
Message-ID: <arf-redacted@isp.test>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="arf"

--arf
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: FBL/1
Version: 1
Original-Mail-From: <{grace["return_path"]}>

--arf
Content-Type: text/rfc822-headers

Return-Path: <{grace["return_path"]}>
From: Practice Research Notes <notes@example.org>
To: redacted@isp.test
Message-ID: <redacted@isp.test>

--arf--
""".encode()
    result = run(folder, maildir(tmp_path, report), START)
    assert result.counts["complaints"] == 1, result.lines
    state, events = status(folder, "grace@readers.test")
    assert state == "complained" and events[-1]["detail"]["matched_by"] == "verp"
    assert events[-1]["detail"]["feedback_type"] == "abuse" and events[-1]["detail"]["issue"] == "2026-11"


def test_the_feedback_id_marks_an_original_as_ours(folder: Path, sent, tmp_path: Path) -> None:
    [path] = [p for p in (folder / "outbox" / "new").iterdir() if b"Delivered-To: linus@readers.test" in p.read_bytes()]
    ours = email.message_from_bytes(path.read_bytes())["Feedback-ID"].strip()
    bounce = dsn("bounces@example.org", "linus@readers.test", "5.1.1", message_id="<f1@mx>", list_id=False)
    bounce = bounce.replace(b"Message-ID: <unknown@example.org>\n", f"Message-ID: <unknown@example.org>\nFeedback-ID: {ours}\n".encode())
    result = run(folder, maildir(tmp_path, bounce), START)
    assert result.counts["hard"] == 1, result.lines
    detail = status(folder, "linus@readers.test")[1][-1]["detail"]
    assert detail["matched_by"] == "final-recipient" and detail["issue"] == "2026-11"


def test_a_folder_whose_name_has_uri_characters_is_read_and_written_in_place(tmp_path: Path) -> None:
    """'#', '?' and '%' in the folder's path must not cut the SQLite URI short (and open a file outside it)."""
    import sqlite3
    from contextlib import closing

    from newsletter.audience.inbox import STATE_FILE, InboxState, bounces_by_issue
    from newsletter.audience.sendrecords import SendRecords

    folder = tmp_path / "notes #1 ?50%"
    (folder / "sends").mkdir(parents=True)
    with closing(sqlite3.connect(folder / "sends" / "2026-11.sqlite")) as conn:
        conn.execute("CREATE TABLE recipients (id INTEGER PRIMARY KEY, address TEXT, message_id TEXT)")
        conn.execute("INSERT INTO recipients VALUES (7, 'ada@readers.test', '<m7@example.org>')")
        conn.commit()
    records = SendRecords(folder)
    assert records.addresses_of_row("2026-11", 7) == ["ada@readers.test"]
    assert records.by_message_id("<m7@example.org>") == ("2026-11", "ada@readers.test")
    state = InboxState(folder, write=True)
    state.close()
    assert (folder / STATE_FILE).is_file()
    assert bounces_by_issue(folder, "2026-11") == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


def test_a_maildir_message_moved_away_meanwhile_does_not_stop_the_run(tmp_path: Path) -> None:
    """A mail server (Dovecot moving new/ to cur/) or a second run may move a message between reading and moving it."""
    box = tmp_path / "box"
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True)
    (box / "new" / "1.host").write_bytes(b"Subject: x\n\nbody\n")
    source = MaildirSource(box)
    [(key, _data)] = list(source.messages())
    (box / "new" / "1.host").rename(box / "cur" / "1.host:2,S")
    source.move_to_processed(key)
    assert (box / "cur" / "1.host:2,S").is_file()
