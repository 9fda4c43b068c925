"""What ``newsletter subscribers …`` does: import, add, remove, list, show, forget, export.

Each function takes the newsletter folder, works on the store (``store.py``)
and returns what happened for the CLI to print; none prints or asks.

``suppressed.txt`` keeps working: whenever the store is opened through
``open_store``, addresses in it that the store does not yet suppress are
recorded there as unsubscribed (with a note saying how many), so a send from
the store and a send to a CSV both honour it.

An import reads the CSV with the same reader as ``send --to`` (so a file that
sends is a file that imports); rows whose status column says unsubscribed,
bounced or complained are not skipped silently but recorded as such, so the
people who left an old tool's list stay out of this one.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from newsletter.audience.store import STATUSES, STORE_FILE, StoredSubscriber, SubscriberStore
from newsletter.audience.subscribers import SUPPRESSION_FILE, HashSeen, ReadStats, iter_subscribers, load_suppressed, suppression_path
from newsletter.content.addresses import address_key, address_problem
from newsletter.content.load import display_path
from newsletter.errors import NewsletterError, SubscriberError
from newsletter.fsutil import atomic_write
from newsletter.mail.headers import one_line

EXPORT_COLUMNS = ("email", "name", "status", "subscribed_at", "confirmed_at", "unsubscribed_at", "consent_how", "consent_source")
# How other tools' status words map onto ours (the words are subscribers.SKIP_STATUSES).
_BOUNCED_WORDS = {"bounced", "bounce", "hard_bounce", "hardbounce", "cleaned"}
_COMPLAINED_WORDS = {"complained", "complaint", "spam"}
_PENDING_WORDS = {"pending", "unconfirmed"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def open_store(folder: Path) -> tuple[SubscriberStore, list[str]]:
    """Open (creating) the folder's store, carrying suppressed.txt over; returns the store and notes to show."""
    store = SubscriberStore.open(folder)
    try:
        return store, sync_suppression_file(store, folder)
    except BaseException:
        store.close()
        raise


def sync_suppression_file(store: SubscriberStore, folder: Path) -> list[str]:
    """Record the addresses of suppressed.txt that the store does not suppress yet as unsubscribed."""
    listed = load_suppressed(folder)
    if not listed:
        return []
    # One read of every suppression (as a send takes it) rather than two queries per line of the file, every open.
    suppressed = store.suppression()
    new = []
    for address in sorted(listed):
        if address_problem(address) is None and address not in suppressed:
            store.set_status(address, "unsubscribed", event="unsubscribed", detail={"via": SUPPRESSION_FILE})
            suppressed.keys.add(address_key(address))  # two spellings of one address (an IDN domain) count once
            new.append(address)
    if not new:
        return []
    return [f"{SUPPRESSION_FILE}: {len(new)} address(es) recorded in {STORE_FILE} as unsubscribed "
            f"({SUPPRESSION_FILE} keeps working; `newsletter subscribers remove` records one directly)"]


@dataclass
class ImportResult:
    """What an import did: counts per outcome, and the first problems (file:line)."""

    source: str
    added: int = 0
    updated: int = 0
    kept_out: dict[str, int] = field(default_factory=dict)  # status -> rows not brought back
    recorded: dict[str, int] = field(default_factory=dict)  # status -> rows recorded from the status column
    stats: ReadStats = field(default_factory=ReadStats)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report printed by the command."""
        out = list(self.notes)
        out.append(f"imported {self.source}: {self.added} added, {self.updated} already in the store (name and fields updated)")
        if self.kept_out:
            detail = ", ".join(f"{n} {s}" for s, n in sorted(self.kept_out.items()))
            out.append(f"kept out {sum(self.kept_out.values())} who left before ({detail}): an import never brings them back")
        if self.recorded:
            detail = ", ".join(f"{n} {s}" for s, n in sorted(self.recorded.items()))
            out.append(f"recorded from the status column: {detail}")
        if self.stats.duplicates:
            out.append(f"{self.stats.duplicates} duplicate row(s) ignored")
        if self.stats.invalid:
            out.append(f"{self.stats.invalid} row(s) skipped:")
            out += [f"  {p}" for p in self.stats.problems]
            if self.stats.invalid > len(self.stats.problems):
                out.append(f"  ... and {self.stats.invalid - len(self.stats.problems)} more")
        return out


def import_csv(folder: Path, path: Path, *, status: str = "confirmed") -> ImportResult:
    """Import a subscriber CSV into the store as ``status`` (confirmed: an existing list has opted in)."""
    if status not in ("confirmed", "pending"):
        raise NewsletterError(f"--status {status}: an import adds subscribers as confirmed or pending")
    shown = display_path(path, folder)
    result = ImportResult(source=shown)
    store, result.notes = open_store(folder)
    with store:
        def status_row(address: str, word: str) -> None:
            # A row an old tool marked as gone: record it so nobody sends to them here either.
            mapped = ("bounced" if word in _BOUNCED_WORDS else "complained" if word in _COMPLAINED_WORDS
                      else "pending" if word in _PENDING_WORDS else "unsubscribed")
            current = store.status_of(address)
            if mapped == "pending":
                if current is None:
                    store.subscribe(address, how="import", status="pending", source=f"imported from {shown}")
                    result.recorded["pending"] = result.recorded.get("pending", 0) + 1
            elif current in (None, "pending", "confirmed"):
                store.set_status(address, mapped, event=mapped, detail={"source": f"imported from {shown}", "status column": word})
                result.recorded[mapped] = result.recorded.get(mapped, 0) + 1

        rows = iter_subscribers(path, seen=HashSeen(), stats=result.stats, display=shown, on_status_skipped=status_row)
        counts = store.subscribe_many(rows, how="import", status=status, source=f"imported from {shown}")
    result.added = counts.pop("added")
    result.updated = counts.pop("updated")
    result.kept_out = {s: n for s, n in counts.items() if n}
    return result


def add(folder: Path, email: str, name: str | None = None) -> tuple[str, list[str]]:
    """Add one subscriber, confirmed (the list owner vouches for the consent); returns a sentence and notes."""
    store, notes = open_store(folder)
    with store:
        before = store.status_of(email)
        after = store.subscribe(email, name, how="command", status="confirmed")
    if after in ("unsubscribed", "bounced", "complained", "forgotten"):
        return (f"{email.strip()} is {after}: not added back (only they can sign up again, through the subscribe form)", notes)
    if before is None:
        return f"added {email.strip()} (confirmed)", notes
    return f"{email.strip()} was already in the store ({after}){'; name updated' if name else ''}", notes


def remove(folder: Path, email: str) -> tuple[str, list[str]]:
    """Unsubscribe one address (recording an unknown one as unsubscribed, so no CSV send reaches it)."""
    if address_problem(email.strip()):
        raise SubscriberError(f"'{one_line(email)}' is not a valid email address: {address_problem(email.strip())}")
    store, notes = open_store(folder)
    with store:
        before = store.status_of(email)
        store.unsubscribe(email, via="command")
    if before is None:
        return f"{email.strip()} was not in the store; recorded as unsubscribed so no send reaches it", notes
    if before in ("unsubscribed", "bounced", "complained", "forgotten"):
        return f"{email.strip()} was already {before}: nothing is sent to them", notes
    return f"unsubscribed {email.strip()}", notes


def listing(folder: Path, status: str | None = None) -> tuple[dict[str, int], Iterator[StoredSubscriber]]:
    """The counts per status, and the rows (with ``status`` only, when given), ordered by address."""
    _check_status(status)
    store, _ = open_store(folder)
    counts = store.counts()

    def rows() -> Iterator[StoredSubscriber]:
        with store:
            yield from store.rows(status)

    return counts, rows()


def show(folder: Path, email: str) -> str:
    """Everything stored about one address, as indented JSON (a GDPR access request)."""
    store, _ = open_store(folder)
    with store:
        record = store.describe(email)
    if record is None:
        raise NewsletterError(f"nothing is stored about {one_line(email)}", path=STORE_FILE,
                              hint="check the spelling; `newsletter subscribers list` shows every address")
    return json.dumps(record, indent=2, ensure_ascii=False)


def forget(folder: Path, email: str) -> str:
    """Erase one person's data and history, keeping a salted hash; also drops them from suppressed.txt."""
    store, _ = open_store(folder)
    with store:
        erased = store.forget(email)
    removed_line = _drop_from_suppression_file(folder, address_key(email))
    what = "erased everything stored about" if erased else "nothing was stored about"
    extra = f"; removed from {SUPPRESSION_FILE}" if removed_line else ""
    return (f"{what} {email.strip()}{extra}. Only a salted hash of the address remains, so no import adds it again. "
            "Send records under sends/ still list who received which issue: delete them if the request covers them.")


def export(folder: Path, status: str | None = None) -> str:
    """The store as CSV text: EXPORT_COLUMNS, then one column per merge field."""
    _check_status(status)
    store, _ = open_store(folder)
    with store:
        names = sorted(set().union(*(store.field_names(s) for s in ([status] if status else STATUSES))))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*EXPORT_COLUMNS, *names])
        for sub in store.rows(status):
            row: list[Any] = [getattr(sub, column) or "" for column in EXPORT_COLUMNS]
            row[1] = _no_formula(row[1])
            writer.writerow([*row, *(_no_formula(sub.fields.get(n, "")) for n in names)])
    return out.getvalue()


def write_export(folder: Path, out: Path, status: str | None = None) -> int:
    """Write the export to ``out`` atomically; returns the number of rows."""
    text = export(folder, status)
    atomic_write(out, text)
    return text.count("\n") - 1


def _no_formula(value: str) -> str:
    """A leading = + - @ makes a spreadsheet run the cell as a formula (names come from a public form)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise NewsletterError(f"unknown status '{one_line(status)}'", hint=f"use one of: {', '.join(STATUSES)}")


def _drop_from_suppression_file(folder: Path, key: str) -> bool:
    path = suppression_path(folder)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError) as exc:
        raise SubscriberError(f"cannot read the suppression list: {exc}", path=str(path)) from None
    kept = [line for line in lines if line.strip().startswith("#") or address_key(line.strip()) != key]
    if len(kept) == len(lines):
        return False
    atomic_write(path, "".join(kept))
    return True
