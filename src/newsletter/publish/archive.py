"""Freeze a sent issue into ``archive/YYYY-MM/`` so what was sent is kept exactly.

An archive folder holds the issue file as sent (``issue.yaml``), the
non-personalised ``email.html`` and ``email.txt``, ``report.json`` (the send
report) and ``send-record.sqlite`` (a consistent copy of the send record made
with sqlite3's backup API).  The folder is written in a temporary directory and
renamed into place, so it is complete or absent.  Archiving an unchanged issue
again does nothing; an archived issue is read-only (its files are marked so
too), and replacing it needs ``force``, which keeps the earlier version in
``previous-<UTC time>/`` inside.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from newsletter.atomicdir import fsync_tree, replace_directory, temp_dir_beside
from newsletter.content.config import load_config
from newsletter.errors import NewsletterError
from newsletter.content.load import LoadedIssue, check_issue, display_path, resolve_issue_path
from newsletter.content.model import MONTH_RE, Config

ARCHIVE_DIR = "archive"
SENDS_DIR = "sends"
ISSUE_FILE = "issue.yaml"
HTML_FILE = "email.html"
TEXT_FILE = "email.txt"
REPORT_FILE = "report.json"
RECORD_FILE = "send-record.sqlite"
PREVIOUS_PREFIX = "previous-"
SENT_ELSEWHERE = "sent some other way (archived with `newsletter archive`)"


class ArchiveError(NewsletterError):
    """An issue cannot be archived (e.g. it is archived already and has changed)."""


@dataclass(frozen=True)
class ArchiveResult:
    """What ``archive_issue`` did: ``archived`` (new), ``unchanged``, ``updated`` or ``replaced``."""

    month: str
    directory: Path
    action: str
    previous: Path | None = None

    @property
    def message(self) -> str:
        where = _rel(self.directory)
        if self.action == "unchanged":
            return f"{self.month} is already archived in {where}/ and has not changed; nothing to do"
        if self.action == "archived":
            return f"archived {self.month} in {where}/"
        kept = f"; the previous version is kept in {_rel(self.previous)}/" if self.previous else ""
        if self.action == "updated":
            return f"updated the send report of {self.month} in {where}/{kept}"
        return f"replaced the archived {self.month} in {where}/{kept}"


@dataclass(frozen=True)
class ArchivedState:
    """What the archive holds for one month (for list, site and warnings in build/send)."""

    month: str
    directory: Path
    report: dict[str, Any] | None

    @property
    def issue_path(self) -> Path:
        return self.directory / ISSUE_FILE

    def differs_from(self, issue_file: Path) -> bool:
        """True if ``issue_file`` exists and is not byte-for-byte the archived issue."""
        try:
            return issue_file.read_bytes() != self.issue_path.read_bytes()
        except OSError:
            return False


def archive_dir(folder: Path, month: str) -> Path:
    """``archive/YYYY-MM`` of a newsletter folder."""
    return folder / ARCHIVE_DIR / month


def send_record_path(folder: Path, month: str) -> Path:
    """The send record (ledger database) of one month."""
    return folder / SENDS_DIR / f"{month}.sqlite"


def archived_months(folder: Path) -> list[str]:
    """Every month with a complete archive folder, oldest first."""
    root = folder / ARCHIVE_DIR
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if MONTH_RE.match(p.name) and (p / ISSUE_FILE).is_file())


def archived_state(folder: Path, month: str) -> ArchivedState | None:
    """The archive of ``month``, or None if it is not archived (build/send warn when it is)."""
    directory = archive_dir(folder, month)
    if not (directory / ISSUE_FILE).is_file():
        return None
    return ArchivedState(month, directory, read_report(directory))


def archived_warning(folder: Path, month: str) -> str | None:
    """A one-line warning for commands that touch an archived month, or None."""
    state = archived_state(folder, month)
    if state is None:
        return None
    return f"warning: {month} is archived in {_rel(state.directory)}/ (read-only); this does not change the archived copy (use `newsletter archive {month} --force` to replace it)"


def read_report(directory: Path) -> dict[str, Any] | None:
    """The archived report.json, or None if it is missing or unreadable."""
    try:
        data = json.loads((directory / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_archived_issue(folder: Path, month: str, config: Config) -> LoadedIssue:
    """Validate ``archive/YYYY-MM/issue.yaml`` like an issue file, checking its month against the folder name."""
    path = archive_dir(folder, month) / ISSUE_FILE
    return check_issue(path, config, folder, month_from=(month, f"its archive folder {ARCHIVE_DIR}/{month}"))


def archive_issues(folder: Path, issue_args: list[str], *, force: bool = False) -> list[tuple[str, ArchiveResult | NewsletterError]]:
    """Archive several issues sent some other way (e.g. a back catalogue); one failing does not stop the rest."""
    done: list[tuple[str, ArchiveResult | NewsletterError]] = []
    for issue_arg in issue_args:
        try:
            done.append((issue_arg, archive_issue(folder, issue_arg, report=None, force=force)))
        except NewsletterError as exc:
            done.append((issue_arg, exc))
    return done


def archive_issue(folder: Path, issue_arg: str, *, report: dict[str, Any] | None, force: bool = False) -> ArchiveResult:
    """Freeze ``issue_arg`` (YYYY-MM or a path) into archive/YYYY-MM/; see the module docstring.

    ``report`` is the send report (INTERFACES.md); None means the issue was
    sent some other way.  Raises ArchiveError if the archived issue differs and
    ``force`` is not set.
    """
    from newsletter.mail.build import render_issue  # imports the email toolchain; list and site do not need it

    config = load_config(folder)
    issue_path = resolve_issue_path(folder, issue_arg)
    loaded, rendered, _eml = render_issue(folder, issue_arg, config)
    assert loaded.issue is not None
    month = loaded.issue.month
    issue_bytes = _read(issue_path, folder)
    target = archive_dir(folder, month)
    state = archived_state(folder, month)

    same_issue = state is not None and state.issue_path.read_bytes() == issue_bytes
    if state is not None:
        if same_issue and (report is None or _same_report(report, state.report)):
            return ArchiveResult(month, target, "unchanged")
        if not same_issue and not force:
            raise ArchiveError(
                f"{month} is archived and read-only, but this file differs from the archived copy {display_path(state.issue_path, folder)}",
                path=display_path(issue_path, folder),
                hint=f"undo the change, or run `newsletter archive {month} --force` to archive this version (the archived one is kept beside it in {display_path(target, folder)}/{PREVIOUS_PREFIX}<time>/)",
            )

    record = send_record_path(folder, month)
    if report is None and state is None and not force and record.is_file():
        summary = read_send_record(record)
        if summary is not None and summary.open_rows:
            raise ArchiveError(
                f"the send of {month} is not finished: {summary.open_rows:,} of {summary.recipients:,} recipients are still to try",
                path=display_path(record, folder),
                hint=f"finish it with `newsletter send {month}`, or run `newsletter archive {month} --force` to archive it as it stands",
            )

    now = datetime.now(timezone.utc)
    tmp = temp_dir_beside(target)
    try:
        previous: Path | None = None
        if state is not None:
            previous = _keep_previous(state.directory, tmp, now)
            if same_issue:
                # Only the send report changed (e.g. a resumed send finished): the
                # email stays exactly what was archived, even if templates moved on.
                shutil.copy2(state.directory / HTML_FILE, tmp / HTML_FILE)
                shutil.copy2(state.directory / TEXT_FILE, tmp / TEXT_FILE)
            else:
                _write(tmp / HTML_FILE, rendered.html_utf8)
                _write(tmp / TEXT_FILE, rendered.text.encode("utf-8"))
        else:
            _write(tmp / HTML_FILE, rendered.html_utf8)
            _write(tmp / TEXT_FILE, rendered.text.encode("utf-8"))
        _write(tmp / ISSUE_FILE, issue_bytes)
        if report is not None:
            final_report = dict(report)
        elif state is not None and state.report is not None:
            final_report = dict(state.report)  # a forced replacement keeps the facts of the send
        else:
            final_report = _elsewhere_report(month, rendered.subject, read_send_record(send_record_path(folder, month)))
        final_report["archived"] = _iso(now)
        _write(tmp / REPORT_FILE, (json.dumps(final_report, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        if record.is_file():
            copy_sqlite(record, tmp / RECORD_FILE)
        _make_read_only(tmp)
        fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_directory(tmp, target)
    if state is None:
        return ArchiveResult(month, target, "archived")
    kept = target / previous.name if previous else None
    return ArchiveResult(month, target, "updated" if same_issue else "replaced", kept)


@dataclass(frozen=True)
class RecordSummary:
    """What a send record says, read without changing it."""

    meta: dict[str, str]
    counts: dict[str, int]  # only the states that occur, in a fixed order
    finished: str | None

    @property
    def recipients(self) -> int:
        return sum(self.counts.values())

    @property
    def open_rows(self) -> int:
        """Recipients still to try (pending, deferred, or in flight)."""
        return sum(self.counts.get(s, 0) for s in OPEN_STATES)


OPEN_STATES = ("pending", "sending", "deferred")
_STATE_ORDER = ("sent", "failed", "uncertain", "deferred", "sending", "pending")


def read_send_record(path: Path) -> RecordSummary | None:
    """Counts and meta of a send record, opened read-only so a running send is undisturbed; None if unreadable."""
    import sqlite3  # here: `newsletter build` asks whether a month is archived, and needs no SQLite

    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        counts = dict(conn.execute("SELECT state, COUNT(*) FROM recipients GROUP BY state").fetchall())
        try:
            meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta").fetchall()}
        except sqlite3.Error:
            meta = {}
        finished = meta.get("finished") or conn.execute(
            "SELECT MAX(updated_at) FROM recipients WHERE state NOT IN ('pending', 'sending')"
        ).fetchone()[0]
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    ordered = {s: int(counts[s]) for s in _STATE_ORDER if counts.get(s)}
    return RecordSummary(meta, ordered, finished)


def copy_sqlite(source: Path, dest: Path) -> None:
    """A consistent copy of a (possibly live, WAL-mode) SQLite database via the backup API.

    The copy is not fsynced here (eight fsyncs at the end of every send): it goes into a
    temporary folder that the caller fsyncs whole (``fsync_tree``) before renaming it."""
    import sqlite3

    try:
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(dest)
            try:
                dst.execute("PRAGMA synchronous=OFF")
                src.backup(dst)
                # A standalone file: no -wal/-shm companions appearing in the archive later.
                dst.execute("PRAGMA journal_mode=DELETE")
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise ArchiveError(f"cannot copy the send record: {exc}", path=str(source), hint="check the file is a readable SQLite database") from None


def _keep_previous(old: Path, new: Path, now: datetime) -> Path:
    """Copy the current archive version (and its own earlier versions) into ``new``."""
    for kept in sorted(old.glob(f"{PREVIOUS_PREFIX}*")):
        if kept.is_dir():
            shutil.copytree(kept, new / kept.name)
    name = f"{PREVIOUS_PREFIX}{now.strftime('%Y%m%dT%H%M%S.%fZ')}"
    shutil.copytree(old, new / name, ignore=shutil.ignore_patterns(f"{PREVIOUS_PREFIX}*", "*-wal", "*-shm", "*-journal"))
    return new / name


def _make_read_only(directory: Path) -> None:
    """Mark the archived files read-only, so an editor warns before anyone changes what was sent."""
    for path in directory.rglob("*"):
        if path.is_file():
            path.chmod(0o444)


def _same_report(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    if old is None:
        return False
    strip = lambda d: {k: v for k, v in json.loads(json.dumps(d)).items() if k != "archived"}  # noqa: E731
    return strip(new) == strip(old)


def _elsewhere_report(month: str, subject: str, record: RecordSummary | None) -> dict[str, Any]:
    """The report of `newsletter archive` without a send: counts from the send record if there is one."""
    if record is not None and record.recipients:
        counts = {k: record.counts.get(k, 0) for k in ("sent", "failed", "deferred", "uncertain", "pending")}
        counts["pending"] += record.counts.get("sending", 0)
        return {
            "month": month,
            "subject": record.meta.get("subject", subject),
            "sender": record.meta.get("sender", "unknown") + " (archived with `newsletter archive` from the send record)",
            "started": record.meta.get("started"),
            "finished": record.finished,
            "recipients": record.recipients,
            "counts": counts,
        }
    return {
        "month": month,
        "subject": subject,
        "sender": SENT_ELSEWHERE,
        "started": None,
        "finished": None,
        "recipients": None,
        "counts": None,
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read(path: Path, folder: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArchiveError(f"cannot read: {exc.strerror}", path=display_path(path, folder)) from None


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _rel(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
