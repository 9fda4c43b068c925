"""archive.py and `newsletter list`: freezing what was sent, idempotence, read-only, --force, states."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.publish.archive import archive_issue, archived_state, check_archived_issue
from newsletter.mail.build import render_issue
from newsletter.cli import main
from newsletter.content.config import load_config
from newsletter.delivery.ledger import Ledger, ledger_path, write_new
from newsletter.audience.subscribers import Subscriber

REPORT = {
    "month": "2026-10",
    "subject": "Practice Research Notes — October 2026",
    "sender": "maildir outbox ./outbox",
    "started": "2026-10-05T09:00:00+00:00",
    "finished": "2026-10-05T09:04:00+00:00",
    "recipients": 3,
    "counts": {"sent": 2, "failed": 1, "deferred": 0, "uncertain": 0, "pending": 0},
}


def run(folder: Path, *args: str):
    return CliRunner().invoke(main, [*args, "--folder", str(folder)], catch_exceptions=False)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def make_send_record(folder: Path, month: str, outcomes: list[str]) -> Path:
    path = ledger_path(folder, month)
    write_new(path, [Subscriber(f"reader{i}@example.org", line=i + 2) for i in range(len(outcomes))], {"month": month})
    with Ledger(path) as ledger:
        for row, outcome in zip(ledger.rows(), outcomes):
            if outcome != "pending":
                ledger.mark_result(row.id, outcome, "250 2.0.0 ok" if outcome == "sent" else "550 5.1.1 no such user")
    return path


def test_archive_freezes_issue_email_and_report(folder: Path) -> None:
    result = archive_issue(folder, "2026-10", report=REPORT)
    target = folder / "archive" / "2026-10"
    assert result.action == "archived" and result.directory == target
    assert (target / "issue.yaml").read_bytes() == (folder / "issues" / "2026-10.yaml").read_bytes()
    _loaded, rendered, _eml = render_issue(folder, "2026-10")
    assert (target / "email.html").read_text(encoding="utf-8") == rendered.html
    assert (target / "email.txt").read_text(encoding="utf-8") == rendered.text
    report = json.loads((target / "report.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in report.items() if k != "archived"} == REPORT
    assert report["archived"].endswith("Z")
    assert all(p.stat().st_mode & 0o777 == 0o444 for p in target.iterdir())
    # nothing half-written left beside it
    assert sorted(p.name for p in (folder / "archive").iterdir()) == ["2026-10"]


def test_archiving_twice_is_a_no_op_that_says_so(folder: Path) -> None:
    first = run(folder, "archive", "2026-10")
    assert first.exit_code == 0, first.output
    assert first.output == "archived 2026-10 in " + str(folder / "archive" / "2026-10") + "/\n"
    before = snapshot(folder / "archive")
    second = run(folder, "archive", "2026-10")
    assert second.exit_code == 0
    assert "is already archived" in second.output and "has not changed; nothing to do" in second.output
    assert snapshot(folder / "archive") == before
    # the send hook with the same report is a no-op too
    archive_issue(folder, "2026-11", report={**REPORT, "month": "2026-11"})
    before = snapshot(folder / "archive")
    assert archive_issue(folder, "2026-11", report={**REPORT, "month": "2026-11"}).action == "unchanged"
    assert snapshot(folder / "archive") == before


def test_changed_archived_issue_is_refused_without_force(folder: Path) -> None:
    archive_issue(folder, "2026-10", report=REPORT)
    before = snapshot(folder / "archive")
    issue = folder / "issues" / "2026-10.yaml"
    issue.write_text(issue.read_text(encoding="utf-8").replace("three studies", "3 studies"), encoding="utf-8")
    result = run(folder, "archive", "2026-10")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: issues/2026-10.yaml: 2026-10 is archived and read-only, but this file differs from the archived copy archive/2026-10/issue.yaml\n"
        "  hint: undo the change, or run `newsletter archive 2026-10 --force` to archive this version "
        "(the archived one is kept beside it in archive/2026-10/previous-<time>/)\n"
    )
    assert "Traceback" not in result.output
    assert snapshot(folder / "archive") == before
    # the send hook gets the same refusal as an exception, not a silent overwrite
    with pytest.raises(Exception, match="is archived and read-only"):
        archive_issue(folder, "2026-10", report={**REPORT, "recipients": 4})


def test_force_replaces_and_keeps_the_previous_version(folder: Path) -> None:
    archive_issue(folder, "2026-10", report=REPORT)
    target = folder / "archive" / "2026-10"
    old_issue, old_html = (target / "issue.yaml").read_bytes(), (target / "email.html").read_bytes()
    issue = folder / "issues" / "2026-10.yaml"
    issue.write_text(issue.read_text(encoding="utf-8").replace("three studies", "three fine studies"), encoding="utf-8")
    result = run(folder, "archive", "2026-10", "--force")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("replaced the archived 2026-10")
    previous = [p for p in target.iterdir() if p.name.startswith("previous-")]
    assert len(previous) == 1
    assert (previous[0] / "issue.yaml").read_bytes() == old_issue
    assert (previous[0] / "email.html").read_bytes() == old_html
    assert (target / "issue.yaml").read_bytes() == issue.read_bytes()
    assert "three fine studies" in (target / "email.txt").read_text(encoding="utf-8")
    # the facts of the send stay with the replaced issue
    assert json.loads((target / "report.json").read_text())["recipients"] == 3
    # a second forced change keeps both earlier versions
    issue.write_text(issue.read_text(encoding="utf-8").replace("three fine studies", "three good studies"), encoding="utf-8")
    archive_issue(folder, "2026-10", report=None, force=True)
    kept = sorted(p for p in target.iterdir() if p.name.startswith("previous-"))
    assert len(kept) == 2
    assert (kept[0] / "issue.yaml").read_bytes() == old_issue
    assert b"three fine studies" in (kept[1] / "issue.yaml").read_bytes()


def test_new_report_for_unchanged_issue_updates_report_and_keeps_email(folder: Path) -> None:
    archive_issue(folder, "2026-10", report=REPORT)
    target = folder / "archive" / "2026-10"
    html = (target / "email.html").read_bytes()
    # templates changed since the send: the archived email must stay what was sent
    (folder / "templates").mkdir()
    (folder / "templates" / "email.txt.j2").write_text("changed template {{ issue.month }}\n{{ unsubscribe_url }}\n{{ config.postal_address }}\n", encoding="utf-8")
    later = {**REPORT, "finished": "2026-10-06T10:00:00+00:00", "counts": {**REPORT["counts"], "sent": 3, "failed": 0}}
    result = archive_issue(folder, "2026-10", report=later)
    assert result.action == "updated"
    assert json.loads((target / "report.json").read_text())["counts"]["sent"] == 3
    assert (target / "email.html").read_bytes() == html
    assert "changed template" not in (target / "email.txt").read_text(encoding="utf-8")
    assert result.previous is not None and json.loads((result.previous / "report.json").read_text())["counts"]["sent"] == 2


def test_send_record_is_copied_consistently(folder: Path) -> None:
    make_send_record(folder, "2026-10", ["sent", "sent", "failed"])
    archive_issue(folder, "2026-10", report=REPORT)
    copy = folder / "archive" / "2026-10" / "send-record.sqlite"
    conn = sqlite3.connect(copy)
    try:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM recipients GROUP BY state").fetchall())
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    assert states == {"sent": 2, "failed": 1}
    assert mode == "delete"  # a standalone file, no -wal companion needed
    assert sorted(p.name for p in copy.parent.iterdir() if p.name.startswith("send-record")) == ["send-record.sqlite"]


def test_manual_archive_report_says_sent_some_other_way(folder: Path) -> None:
    archive_issue(folder, "2026-10", report=None)
    report = json.loads((folder / "archive" / "2026-10" / "report.json").read_text())
    assert report["sender"] == "sent some other way (archived with `newsletter archive`)"
    assert report["recipients"] is None and report["counts"] is None
    assert report["month"] == "2026-10" and report["subject"].startswith("Practice Research Notes — October 2026")


def test_archived_state_and_build_warning(folder: Path) -> None:
    assert archived_state(folder, "2026-10") is None
    archive_issue(folder, "2026-10", report=REPORT)
    state = archived_state(folder, "2026-10")
    assert state is not None and state.report is not None and state.report["recipients"] == 3
    loaded = check_archived_issue(folder, "2026-10", load_config(folder))
    assert loaded.issue is not None and loaded.issue.month == "2026-10"
    result = run(folder, "build", "2026-10")
    assert result.exit_code == 0
    assert "warning: 2026-10 is archived in" in result.stderr
    assert "does not change the archived copy" in result.stderr
    assert "archived" not in run(folder, "build", "2026-11").stderr


def test_archived_issue_month_is_checked_against_its_folder(folder: Path) -> None:
    archive_issue(folder, "2026-10", report=REPORT)
    archived = folder / "archive" / "2026-10" / "issue.yaml"
    archived.chmod(0o644)
    archived.write_text(archived.read_text(encoding="utf-8").replace("month: 2026-10", "month: 2026-09"), encoding="utf-8")
    loaded = check_archived_issue(folder, "2026-10", load_config(folder))
    assert [str(p) for p in loaded.errors] == [
        "archive/2026-10/issue.yaml:1:8: error: month 2026-09 does not match its archive folder archive/2026-10; fix the month"
    ]


def test_archiving_an_invalid_issue_reports_the_problem(folder: Path) -> None:
    issue = folder / "issues" / "2026-10.yaml"
    issue.write_text(issue.read_text(encoding="utf-8").replace("research_type: Naturalistic Study", "research_type: Naturalistc"), encoding="utf-8")
    result = run(folder, "archive", "2026-10")
    assert result.exit_code == 1
    assert "issues/2026-10.yaml:" in result.stderr and "unknown research type 'Naturalistc'" in result.stderr
    assert not (folder / "archive" / "2026-10").exists()


def test_list_shows_every_state(folder: Path) -> None:
    archive_issue(folder, "2026-10", report=REPORT)
    make_send_record(folder, "2026-11", ["sent", "failed", "pending", "pending"])
    (folder / "issues" / "2026-12.yaml").write_text((folder / "issues" / "2026-11.yaml").read_text().replace("month: 2026-11", "month: 2026-12"), encoding="utf-8")
    (folder / "issues" / "2027-01.yaml").write_text("month: 2027-01\nintro: hello\n", encoding="utf-8")
    result = run(folder, "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["2027-01", "draft"], ["2026-12", "checked"], ["2026-11", "sending"], ["2026-10", "archived"],
    ]
    assert "issues/2027-01.yaml: 1 error (run `newsletter check 2027-01`)" in lines[0]
    assert "3 articles; not sent" in lines[1]
    assert "2 of 4 handled (1 sent, 1 failed, 2 pending)" in lines[2]
    assert "sent 2026-10-05 09:04 UTC to 3 recipients (2 sent, 1 failed); archive/2026-10/" in lines[3]

    # the send finishes: sent, not archived yet
    with Ledger(ledger_path(folder, "2026-11")) as ledger:
        for row in ledger.rows(("pending",)):
            ledger.mark_result(row.id, "sent", "250 ok")
    line = [l for l in run(folder, "list").output.splitlines() if l.startswith("2026-11")][0]
    assert line.split()[1] == "sent"
    assert "to 4 recipients (3 sent, 1 failed); not archived yet (`newsletter archive 2026-11`)" in line

    # an archived issue edited afterwards is flagged
    issue = folder / "issues" / "2026-10.yaml"
    issue.write_text(issue.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    line = [l for l in run(folder, "list").output.splitlines() if l.startswith("2026-10")][0]
    assert "issues/2026-10.yaml has changed since" in line


def test_list_reads_an_archive_without_an_issue_file(folder: Path) -> None:
    archive_issue(folder, "2026-10", report=REPORT)
    (folder / "issues" / "2026-10.yaml").unlink()
    result = run(folder, "list")
    assert [l.split()[:2] for l in result.output.splitlines()] == [["2026-11", "checked"], ["2026-10", "archived"]]


def test_a_finished_send_archives_itself(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    result = run(folder, "send", "2026-10", "--to", str(folder / "subscribers.example.csv"), "--yes")
    assert result.exit_code == 0, result.output + result.stderr
    target = folder / "archive" / "2026-10"
    report = json.loads((target / "report.json").read_text(encoding="utf-8"))
    assert report["month"] == "2026-10" and report["counts"]["sent"] == report["recipients"] > 0
    conn = sqlite3.connect(target / "send-record.sqlite")
    try:
        assert conn.execute("SELECT COUNT(*) FROM recipients WHERE state = 'sent'").fetchone()[0] == report["recipients"]
    finally:
        conn.close()
    line = run(folder, "list").output.splitlines()[-1]
    assert line.startswith("2026-10  archived  sent ") and f"to {report['recipients']} recipients" in line


def test_manual_archive_of_an_unfinished_send_needs_force_and_takes_counts_from_the_record(folder: Path) -> None:
    make_send_record(folder, "2026-10", ["sent", "failed", "pending"])
    result = run(folder, "archive", "2026-10")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: sends/2026-10.sqlite: the send of 2026-10 is not finished: 1 of 3 recipients are still to try\n"
        "  hint: finish it with `newsletter send 2026-10`, or run `newsletter archive 2026-10 --force` to archive it as it stands\n"
    )
    assert not (folder / "archive" / "2026-10").exists()
    assert run(folder, "archive", "2026-10", "--force").exit_code == 0
    report = json.loads((folder / "archive" / "2026-10" / "report.json").read_text())
    assert report["recipients"] == 3
    assert report["counts"] == {"sent": 1, "failed": 1, "deferred": 0, "uncertain": 0, "pending": 1}
    assert report["sender"].endswith("(archived with `newsletter archive` from the send record)")
