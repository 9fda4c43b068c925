"""The send flow through the real smtp sender to a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.delivery.ledger import Ledger, ledger_path
from newsletter.mail.tokens import UNSUBSCRIBE, unseal
from newsletter.delivery.send import RateLimiter, SendOptions, execute, prepare
from send_support import Receiver, Server, people, write_list

MONTH = "2026-11"


def run_send(folder: Path, server: Server, csv: Path, **options) -> object:
    opts = SendOptions(issue=MONTH, to=csv, sender="smtp", retry_delay=0.05, **options)
    plan = prepare(folder, opts, env=server.env())
    return execute(plan)


def body_without_personal_parts(got) -> tuple[str, str]:
    """Both decoded bodies with the greeting and the unsubscribe URL cut out."""
    msg = got.message
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    strip = lambda s: re.sub(r"https://notes\.example\.org/unsubscribe\?t=[\w.-]+", "URL", re.sub(r"Dear [^\r\n]*?,(?=\r?\n|</p>)", "GREETING", s))
    return strip(text), strip(html)


def test_every_valid_subscriber_once_with_headers(folder: Path) -> None:
    rows = people(30) + [("Reader0003@Example.org", "dup"), ("not-an-address", "x"), ("r\u00f8n@example.org", "Marta R\u00f8nnestad")]
    rows += [("nordic@example.org", "Karin Fagern\u00e4s"), ("eve@example.org", '"Eve\tBcc: evil"'), ("js@example.org", "<script>")]
    csv = write_list(folder / "list.csv", rows)
    (folder / "suppressed.txt").write_text("reader0007@example.org\n")
    with Server() as server:
        report = run_send(folder, server, csv, concurrency=3)
        got = server.receiver.received()
    valid = {a.lower() for a, _ in people(30) + rows[-3:]} - {"reader0007@example.org"}
    counts = Counter(g.rcpt.lower() for g in got)
    assert set(counts) == valid and set(counts.values()) == {1}
    assert report.counts["sent"] == len(valid) and report.ok
    bodies = set()
    for g in got:
        msg = g.message
        assert msg["To"].addresses[0].addr_spec.lower() == g.rcpt.lower()
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Id"] == "Practice Research Notes <practice-research-notes.example.org>"
        mailto = re.search(r"<mailto:unsubscribe@example\.org\?subject=unsubscribe%20([\w-]+)>", msg["List-Unsubscribe"]).group(1)
        token = re.search(r"<https://notes\.example\.org/unsubscribe\?t=([\w.-]+)>", msg["List-Unsubscribe"]).group(1)
        assert unseal(b"test secret", UNSUBSCRIBE, token) == g.rcpt
        assert unseal(b"test secret", UNSUBSCRIBE, mailto) == g.rcpt  # the mailto is per reader too
        assert g.rcpt.split("@")[0].lower() not in token.lower()
        assert "Bcc" not in msg and msg["Date"]
        bodies.add(body_without_personal_parts(g))
    assert len(bodies) == 1  # identical except the personal parts
    assert len({g.message["Message-ID"] for g in got}) == len(got)
    eve = next(g.message for g in got if g.rcpt == "eve@example.org")
    assert eve["To"].addresses[0].display_name == "Eve Bcc: evil"
    js = next(g.message for g in got if g.rcpt == "js@example.org")
    assert "Dear &lt;script&gt;," in js.get_body(("html",)).get_content()
    nordic = next(g for g in got if g.rcpt == "nordic@example.org")
    assert nordic.message["To"].addresses[0].display_name == "Karin Fagern\u00e4s"
    assert b"Fagern\xc3\xa4s" not in nordic.data.split(b"\r\n\r\n")[0]  # RFC 2047 in the header
    assert "Dear Karin Fagern\u00e4s," in nordic.message.get_body(("plain",)).get_content()


def test_faults_retried_failed_and_uncertain(folder: Path) -> None:
    csv = write_list(folder / "list.csv", people(12))
    receiver = Receiver(
        faults={
            "reader0001@example.org": ["451"],
            "reader0002@example.org": ["451", "451"],
            "reader0003@example.org": ["550"],
            "reader0004@example.org": ["421"],
            "reader0005@example.org": ["drop"],
            "reader0006@example.org": ["data-drop"],
            "reader0007@example.org": ["451"] * 10,
        },
        delay=0.01,
    )
    with Server(receiver) as server:
        report = run_send(folder, server, csv, concurrency=2, max_attempts=3)
        got = server.receiver.received()
    counts = Counter(g.rcpt for g in got)
    assert counts["reader0003@example.org"] == 0 and counts["reader0007@example.org"] == 0
    for i in (0, 1, 2, 4, 5, 8, 9, 10, 11):
        assert counts[f"reader{i:04d}@example.org"] == 1, i
    assert counts["reader0006@example.org"] == 1  # received, but the reply never came
    assert report.counts == {"pending": 0, "sending": 0, "sent": 9, "failed": 1, "deferred": 1, "uncertain": 1}
    assert not report.ok
    assert report.failures == [("reader0003@example.org", report.failures[0][1])]
    assert "550 5.1.1" in report.failures[0][1]
    with Ledger(ledger_path(folder, MONTH), recover=False) as ledger:
        by_address = {r.address: r for r in ledger.rows()}
    assert by_address["reader0002@example.org"].attempts == 3 and by_address["reader0002@example.org"].state == "sent"
    assert by_address["reader0007@example.org"].state == "deferred" and "451" in by_address["reader0007@example.org"].last_reply
    assert by_address["reader0006@example.org"].state == "uncertain"

    # a second run retries the deferred one, does not resend the uncertain one, sends nobody twice
    with Server(Receiver()) as server:
        report2 = run_send(folder, server, csv)
        assert [g.rcpt for g in server.receiver.received()] == ["reader0007@example.org"]
    assert report2.counts["uncertain"] == 1 and report2.counts["sent"] == 10
    # --resend-uncertain sends to the uncertain one only
    with Server(Receiver()) as server:
        run_send(folder, server, csv, resend_uncertain=True)
        assert [g.rcpt for g in server.receiver.received()] == ["reader0006@example.org"]


def test_rate_limiter_honours_every_one_second_window() -> None:
    clock = [0.0]
    starts: list[float] = []
    limiter = RateLimiter(3, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    for _ in range(20):
        starts.append(limiter.acquire())
        clock[0] += 0.01
    for t in starts:
        assert sum(1 for s in starts if t <= s < t + 1.0) <= 3
    assert starts[-1] < 7.0  # and it does not slow down more than needed
    slow = RateLimiter(0.5, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    a, b = slow.acquire(), slow.acquire()
    assert b - a >= 2.0


def cli(folder: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None):
    return CliRunner().invoke(main, [*args, "--folder", str(folder)], env=env, input=input, catch_exceptions=False)


def test_cli_refuses_without_terminal_and_sends_nothing(folder: Path) -> None:
    csv = write_list(folder / "list.csv", people(3))
    with Server() as server:
        result = cli(folder, "send", MONTH, "--to", str(csv), "--sender", "smtp", env=server.env())
        assert result.exit_code != 0
        assert "no terminal" in result.output and "--yes" in result.output
        assert "recipients: 3 after filtering" in result.output
        assert server.receiver.received() == []
    assert not ledger_path(folder, MONTH).exists()
    assert not any((folder / "sends").glob(".staging-*"))


def test_cli_dry_run_and_test(folder: Path) -> None:
    csv = write_list(folder / "list.csv", people(5) + [("bad@", "x")])
    with Server() as server:
        result = cli(folder, "send", MONTH, "--to", str(csv), "--sender", "smtp", "--dry-run", env=server.env())
        assert result.exit_code == 0, result.output
        assert "would send 5 message(s)" in result.output
        assert "list.csv:7: 'bad@' is not a valid email address" in result.output
        result = cli(folder, "send", MONTH, "--sender", "smtp", "--test", "me@example.net", "--test", "you@example.net", env=server.env())
        assert result.exit_code == 0, result.output
        got = server.receiver.received()
    assert sorted(g.rcpt for g in got) == ["me@example.net", "you@example.net"]
    assert all(g.message["Subject"] == "[TEST] Practice Research Notes \u2014 November 2026" for g in got)
    assert not ledger_path(folder, MONTH).exists()


def test_cli_send_status_exit_codes_and_already_sent(folder: Path) -> None:
    csv = write_list(folder / "list.csv", people(4))
    receiver = Receiver(faults={"reader0002@example.org": ["550"]})
    with Server(receiver) as server:
        env = server.env()
        result = cli(folder, "send", MONTH, "--to", str(csv), "--sender", "smtp", "--yes", env=env)
        assert result.exit_code == 1, result.output
        assert "3 sent, 1 failed" in result.output
        status = cli(folder, "status", MONTH)
        assert status.exit_code == 0
        assert "sent:          3" in status.output and "failed:        1" in status.output
        assert re.search(r"failed\s+reader0002@example.org .*550 5\.1\.1", status.output)
        again = cli(folder, "send", MONTH, "--to", str(csv), "--sender", "smtp", "--yes", env=env)
        assert again.exit_code == 1 and "already sent" in again.output and "--force" in again.output
        assert len(server.receiver.received()) == 3
        forced = cli(folder, "send", MONTH, "--to", str(csv), "--sender", "smtp", "--yes", "--force", env=env)
        assert forced.exit_code == 0, forced.output
        assert len(server.receiver.received()) == 7


def test_cli_bad_csv_names_file_and_line(folder: Path) -> None:
    (folder / "list.csv").write_text("name,address\nAda,ada@example.org\n")
    result = cli(folder, "send", MONTH, "--to", str(folder / "list.csv"), "--yes", "--dry-run")
    assert result.exit_code == 1
    assert "list.csv:1: no 'email' column in the header (found: name, address)" in result.output
    (folder / "list.csv").write_bytes(b"email\nada@example.org\n\xff\xfe@x.org\n")
    result = cli(folder, "send", MONTH, "--to", str(folder / "list.csv"), "--yes", "--dry-run")
    assert result.exit_code == 1 and "list.csv:3: not UTF-8" in result.output


def test_cli_with_yes_still_shows_who_was_skipped(folder: Path) -> None:
    csv = write_list(folder / "list.csv", people(2) + [("nope", "x"), ("READER0001@example.org", "dup")])
    with Server() as server:
        result = cli(folder, "send", MONTH, "--to", str(csv), "--sender", "smtp", "--yes", env=server.env())
        assert len(server.receiver.received()) == 2
    assert result.exit_code == 0, result.output
    assert "recipients: 2 after filtering (skipped: 1 duplicate, 1 invalid)" in result.output
    assert "skipped list.csv:4: 'nope' is not a valid email address (An email address must have an @-sign); row skipped" in result.output
    assert "this run: 2 sent" in result.output


@pytest.mark.parametrize("rows", [[("not-an-address", "x"), ("also bad", "y")], []], ids=["all-invalid", "header-only"])
def test_cli_a_list_with_nobody_to_send_to_is_refused_and_nothing_recorded(folder: Path, rows) -> None:
    csv = write_list(folder / "list.csv", rows)
    result = cli(folder, "send", MONTH, "--to", str(csv), "--yes")
    assert result.exit_code == 1
    assert f"error: list.csv: nobody to send to: list.csv has {len(rows)} row(s) and none is sendable" in result.output
    if rows:
        assert "(skipped: 2 invalid)\n  skipped list.csv:2: 'not-an-address' is not a valid email address (An email address must have an @-sign); row skipped" in result.output
    assert "nothing was sent or recorded" in result.output
    assert not ledger_path(folder, MONTH).exists() and not (folder / "archive" / MONTH).exists()
    assert not any((folder / "sends").glob(".staging-*"))


def test_cli_concurrency_zero_is_refused_not_replaced(folder: Path) -> None:
    csv = write_list(folder / "list.csv", people(2))
    result = cli(folder, "send", MONTH, "--to", str(csv), "--concurrency", "0", "--yes")
    assert result.exit_code == 1 and "error: --concurrency must be 1 or more" in result.output
    assert not ledger_path(folder, MONTH).exists()


def test_cli_secret_required_for_smtp_without_terminal(folder: Path) -> None:
    csv = write_list(folder / "list.csv", people(2))
    with Server() as server:
        env = server.env()
        env["NEWSLETTER_SECRET"] = ""
        result = cli(folder, "send", MONTH, "--to", str(csv), "--sender", "smtp", "--yes", env=env)
    assert result.exit_code == 1 and "NEWSLETTER_SECRET is not set" in result.output


def test_cli_suppress(folder: Path) -> None:
    result = cli(folder, "suppress", "Ada@Example.org", "bob@example.org")
    assert result.exit_code == 0 and "suppressed ada@example.org" in result.output
    result = cli(folder, "suppress", "ada@example.org", "not an address")
    assert result.exit_code == 1 and "'not an address'" in result.output and "nothing was added" in result.output
    assert (folder / "suppressed.txt").read_text() == "ada@example.org\nbob@example.org\n"


@pytest.mark.parametrize("sender", ["maildir"])
def test_maildir_default_sender(folder: Path, sender: str) -> None:
    csv = write_list(folder / "list.csv", people(3))
    result = cli(folder, "send", MONTH, "--to", str(csv), "--yes", "--sender", sender, env={"NEWSLETTER_SECRET": ""})
    assert result.exit_code == 0, result.output
    assert "random key" in result.output
    assert len(list((folder / "outbox" / "new").iterdir())) == 3


def test_slow_server_past_the_timeout_is_uncertain_not_resent(folder: Path) -> None:
    config = folder / "newsletter.yaml"
    config.write_text(config.read_text() + "smtp:\n  timeout: 0.5\n")
    csv = write_list(folder / "list.csv", people(4))
    receiver = Receiver(faults={"reader0001@example.org": ["data-slow"]}, slow=1.5)
    with Server(receiver) as server:
        report = run_send(folder, server, csv, concurrency=1)
        got = Counter(g.rcpt for g in server.receiver.received())
    assert got == Counter({f"reader{i:04d}@example.org": 1 for i in range(4)})  # it arrived, once
    assert report.counts["uncertain"] == 1 and report.counts["sent"] == 3
    assert report.uncertain == ["reader0001@example.org"]
    text = "\n".join(report.lines())
    assert "1 uncertain" in text and "--resend-uncertain" in text


def test_server_down_names_host_and_port(folder: Path) -> None:
    from send_support import free_port

    csv = write_list(folder / "list.csv", people(2))
    port = free_port()
    env = {"NEWSLETTER_SMTP_HOST": "127.0.0.1", "NEWSLETTER_SMTP_PORT": str(port), "NEWSLETTER_SMTP_SECURITY": "none", "NEWSLETTER_SECRET": "s"}
    result = cli(folder, "send", MONTH, "--to", str(csv), "--sender", "smtp", "--yes", env=env)
    assert result.exit_code == 1
    assert f"127.0.0.1:{port}" in result.output and "Traceback" not in result.output
    status = cli(folder, "status", MONTH)
    assert "not yet tried: 2" in status.output  # nothing lost: the next run sends them


def test_wire_bodies_differ_only_on_the_personal_lines(folder: Path) -> None:
    import difflib
    import quopri

    csv = write_list(folder / "list.csv", [("ada@example.org", "Ada Lovelace"), ("bjorn@example.org", "Bj\u00f8rn \u00c5s")])
    with Server() as server:
        run_send(folder, server, csv)
        got = {g.rcpt: g.data for g in server.receiver.received()}
    bodies = [got[a].split(b"\r\n\r\n", 1)[1].split(b"\r\n") for a in ("ada@example.org", "bjorn@example.org")]
    changed: list[bytes] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, *bodies, autojunk=False).get_opcodes():
        if tag != "equal":
            changed += bodies[0][i1:i2] + bodies[1][j1:j2]
    decoded = quopri.decodestring(b"\n".join(changed)).decode("utf-8")
    # every differing encoded line is a greeting or an unsubscribe link, nothing else
    leftover = re.sub(r"Dear (Ada Lovelace|Bj\u00f8rn \u00c5s),|https://notes\.example\.org/unsubscribe\?t=[\w-]+?(?=https:|Dear|\s|$)|\s", "", decoded.replace("\n", ""))
    assert leftover == ""
    # each message: the greeting and the link, in the text and the HTML part
    assert decoded.count("Dear Ada Lovelace,") == decoded.count("Dear Bj\u00f8rn \u00c5s,") == 2
    assert decoded.count("/unsubscribe?t=") == 4


def test_claims_shrink_near_the_end_so_connections_finish_together(folder: Path, monkeypatch) -> None:
    """A late claim of a whole batch keeps one connection busy while the others wait (a third of a
    second on a 20 ms round trip): near the end of the list each claim is at most a fair share of
    what is left, and every reader is still claimed exactly once."""
    sizes: list[int] = []
    claim = Ledger.claim

    def recording(self, rows):
        sizes.append(len(rows))
        return claim(self, rows)

    monkeypatch.setattr(Ledger, "claim", recording)
    csv = write_list(folder / "list.csv", people(400))
    with Server() as server:
        report = run_send(folder, server, csv, concurrency=4)
    assert report.counts["sent"] == 400 and sum(sizes) == 400
    assert max(sizes) == 400 // (8 * 4)  # the usual claim size for this list
    left = 400
    for size in sizes:
        assert size <= max(1, left // 4), (size, left, sizes)
        left -= size
    assert sizes[-4:] == [1, 1, 1, 1]


def test_plain_smtp_send_imports_no_entry_points_tls_prompt_or_idna(folder: Path) -> None:
    # A send through a relay on this machine (security: none, password-less, an ASCII host) needs neither
    # the scan of installed packages for senders, nor ssl, getpass, or the idna codec: each was fixed
    # start-up cost of every `newsletter send`.
    import os
    import subprocess
    import sys

    from newsletter.mail.build import render_issue

    render_issue(folder, MONTH)  # a warm user cache (tests share one): premailer, imported cold, registers importlib.metadata
    csv = write_list(folder / "list.csv", people(2))
    code = (
        "import sys; from newsletter.cli import main\n"
        "try:\n"
        f"    main(['send', {MONTH!r}, '--to', {str(csv)!r}, '--yes', '--sender', 'smtp', '--folder', {str(folder)!r}])\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(sorted(m for m in sys.modules if m in ('importlib.metadata', 'ssl', 'getpass', 'encodings.idna')))\n"
    )
    with Server() as server:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **server.env()})
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == "[]"
        assert sorted(got.rcpt for got in server.receiver.got) == ["reader0000@example.org", "reader0001@example.org"]


def test_send_without_dkim_imports_neither_dkimpy_nor_dnspython(folder: Path) -> None:
    # dkimpy and dnspython cost a third of a send's start-up; a send that signs nothing needs neither.
    import os
    import subprocess
    import sys

    csv = write_list(folder / "list.csv", people(1))
    code = (
        "import sys; from newsletter.cli import main\n"
        "try:\n"
        f"    main(['send', {MONTH!r}, '--to', {str(csv)!r}, '--yes', '--sender', 'maildir', '--folder', {str(folder)!r}])\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dkim', 'dns') or m == 'newsletter.mail.dkim'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "NEWSLETTER_SECRET": "s"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    assert len(list((folder / "outbox" / "new").iterdir())) == 1
