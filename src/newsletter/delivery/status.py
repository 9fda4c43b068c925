"""``newsletter list``: every issue in issues/ and archive/ with its state.

States: ``draft`` (the issue file fails validation), ``checked`` (valid, not
sent), ``sending`` (a send record with recipients still to try: in progress or
interrupted), ``sent`` (a finished send record, not archived yet) and
``archived`` (frozen in archive/, with when and to how many from report.json).
Send records are opened read-only and queried directly, so listing never
changes them while a send is running.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from newsletter.publish.archive import RECORD_FILE, SENT_ELSEWHERE, archived_months, archived_state, read_send_record, send_record_path
from newsletter.content.config import check_config
from newsletter.content.load import check_issue, display_path, issue_paths

@dataclass(frozen=True)
class SendSummary:
    """What a send record or report says: when, to how many, with which outcomes."""

    finished: str | None
    recipients: int | None
    counts: dict[str, int]

    def describe(self) -> str:
        if self.recipients is None:
            return "sent"
        when = f" {_when(self.finished)}" if self.finished else ""
        outcome = ", ".join(f"{n:,} {state}" for state, n in self.counts.items() if n)
        return f"sent{when} to {self.recipients:,} recipient{'s' if self.recipients != 1 else ''}" + (f" ({outcome})" if outcome else "")


@dataclass(frozen=True)
class IssueStatus:
    """One month's state and a one-line explanation."""

    month: str
    state: str
    detail: str
    send: SendSummary | None = None


def list_issues(folder: Path) -> list[IssueStatus]:
    """Every issue in issues/ and archive/, newest first."""
    files = {p.stem: p for p in issue_paths(folder)}
    archived = set(archived_months(folder))
    config, _problems = check_config(folder)
    result = []
    for month in sorted(set(files) | archived, reverse=True):
        path = files.get(month)
        if month in archived:
            result.append(_archived(folder, month, path))
            continue
        assert path is not None
        record = send_record_path(folder, month)
        if record.is_file():
            result.append(_from_record(folder, month, record))
            continue
        if config is None:
            result.append(IssueStatus(month, "draft", f"{display_path(path, folder)}: cannot check, newsletter.yaml has errors (run `newsletter check`)"))
            continue
        loaded = check_issue(path, config, folder)
        if loaded.errors or loaded.issue is None:
            n = len(loaded.errors)
            result.append(IssueStatus(month, "draft", f"{loaded.display}: {n} error{'s' if n != 1 else ''} (run `newsletter check {month}`)"))
        else:
            n = len(loaded.issue.articles)
            warn = f", {len(loaded.warnings)} warning(s)" if loaded.warnings else ""
            result.append(IssueStatus(month, "checked", f"{loaded.display}: {n} article{'s' if n != 1 else ''}{warn}; not sent"))
    return result


def _archived(folder: Path, month: str, path: Path | None) -> IssueStatus:
    state = archived_state(folder, month)
    assert state is not None
    summary = summary_from_report(state.report)
    record = state.directory / RECORD_FILE
    if summary is None and record.is_file():
        read = read_send_record(record)
        summary = SendSummary(read.finished, read.recipients, read.counts) if read else None
    where = display_path(state.directory, folder) + "/"
    if summary is None:
        sent = "sent some other way" if (state.report or {}).get("sender") == SENT_ELSEWHERE else "no send report"
    else:
        sent = summary.describe()
    detail = f"{sent}; {where}"
    if path is not None and state.differs_from(path):
        detail += f"; {display_path(path, folder)} has changed since (the archive is read-only; `newsletter archive {month} --force` replaces it)"
    return IssueStatus(month, "archived", detail, summary)


def summary_from_report(report: dict[str, Any] | None) -> SendSummary | None:
    """The send facts of an archived report.json, or None if it has none."""
    if not report or not isinstance(report.get("recipients"), int):
        return None
    counts = report.get("counts") if isinstance(report.get("counts"), dict) else {}
    return SendSummary(report.get("finished"), report["recipients"], {k: int(v) for k, v in counts.items() if isinstance(v, int)})


def _from_record(folder: Path, month: str, record: Path) -> IssueStatus:
    read = read_send_record(record)
    where = display_path(record, folder)
    if read is None:
        return IssueStatus(month, "sending", f"{where} exists but cannot be read; see `newsletter send` for its state")
    summary, open_rows = SendSummary(read.finished, read.recipients, read.counts), read.open_rows
    if open_rows:
        done = summary.counts.get("sent", 0) + summary.counts.get("failed", 0) + summary.counts.get("uncertain", 0)
        return IssueStatus(month, "sending", f"{done:,} of {summary.recipients:,} handled ({', '.join(f'{n:,} {s}' for s, n in summary.counts.items())}); in progress or interrupted, resume with `newsletter send {month}`", summary)
    return IssueStatus(month, "sent", f"{summary.describe()}; not archived yet (`newsletter archive {month}`)", summary)


def _when(iso: str) -> str:
    """'2026-10-05 09:04 UTC' from an ISO-8601 time; the text unchanged if it is not one."""
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return moment.strftime("%Y-%m-%d %H:%M") + (" UTC" if moment.utcoffset() is not None and not moment.utcoffset() else "")
