"""The subscriber list (a CSV export) and the suppression list, read as streams.

``iter_subscribers`` yields one ``Subscriber`` at a time and keeps nothing per
row except, optionally, an 8-byte hash per address for duplicate detection, so
memory does not grow with the list.  What real exports look like is accepted:
UTF-8 with or without a BOM, CRLF, ``;`` or ``,`` (sniffed from the header
line), stray spaces, and a ``status`` column whose unsubscribed/bounced rows
are skipped.  Bad rows are reported (file:line) through a callback and skipped;
a file that cannot be read at all raises ``SubscriberError`` naming file:line.

A list that may have been misread stops the whole read, since one misread row
can put other readers' addresses into someone's To header and greeting: a
quoted field running over several lines (a stray ``"`` swallows every row after
it), an email address inside a name or merge field (a shifted column), or a
row count that disagrees with the file's lines.  Multi-line cells are refused
for the same reason; a real list has none.

Duplicates: the send flow lets the send record (SQLite, a primary key on the
lowercased address) drop duplicates, which costs no memory at all.  Standalone
use passes ``HashSeen``: a set of 64-bit BLAKE2b hashes (~70 bytes per address,
about 14 MB for 200,000).  The trade-off of hashing rather than keeping the
addresses: two different addresses could collide and the second be dropped as
a "duplicate"; at 1,000,000 addresses the chance of any collision is about
3 in 100 million.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Container, Iterator, Protocol

from newsletter.content.addresses import address_key, address_problem, is_valid_address, sendable
from newsletter.errors import NewsletterError, SubscriberError, visible
from newsletter.fsutil import atomic_write, utf16_name
from newsletter.mail.headers import one_line

SUPPRESSION_FILE = "suppressed.txt"
# Values of a status column that mean "do not send"; compared case-insensitively.
SKIP_STATUSES = frozenset(
    {
        "unsubscribed", "unsubscribe", "bounced", "bounce", "hard_bounce",
        "hardbounce", "complained", "complaint", "spam", "cleaned", "inactive", "deleted",
        "disabled", "blocked", "blacklisted", "blocklisted", "suppressed", "optout", "opt-out",
        "opted out", "opted-out", "removed", "invalid", "pending", "unconfirmed",
    }
)
EMAIL_COLUMNS = ("email", "e-mail", "email address", "e-mail address", "mail")
NAME_COLUMNS = ("name", "full name", "fullname")
# Something that looks like an address inside a name or merge field (a shifted column, a swallowed row).
_ADDRESS_LIKE = re.compile(r"[^\s@<>\"',;:()\[\]]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
MISREAD_HINT = "fix the file and run the command again; nothing was sent or recorded"


@dataclass(frozen=True)
class Subscriber:
    """One recipient: a valid address, an optional display name, other columns as merge fields."""

    email: str
    name: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    line: int = 0

    @property
    def key(self) -> str:
        """The identity used for duplicates and suppression: the lowercased address (an IDN domain as punycode)."""
        return address_key(self.email)


@dataclass
class ReadStats:
    """What reading the list found; filled in while the generator runs."""

    rows: int = 0
    yielded: int = 0
    invalid: int = 0
    duplicates: int = 0
    suppressed: int = 0
    status_skipped: int = 0
    problems: list[str] = field(default_factory=list)  # the first few, "file:line: message"

    MAX_KEPT = 50

    def note(self, message: str) -> None:
        if len(self.problems) < self.MAX_KEPT:
            self.problems.append(message)


class Seen(Protocol):
    """Remembers addresses; ``add`` returns False for one already seen."""

    def add(self, key: str) -> bool: ...


class HashSeen:
    """Duplicate detection in memory with 8-byte hashes (see the module docstring for the trade-off)."""

    def __init__(self) -> None:
        self._hashes: set[int] = set()

    def add(self, key: str) -> bool:
        digest = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")
        if digest in self._hashes:
            return False
        self._hashes.add(digest)
        return True


def iter_subscribers(
    path: Path,
    *,
    suppressed: Container[str] = frozenset(),
    seen: Seen | None = None,
    stats: ReadStats | None = None,
    display: str | None = None,
    on_problem: Callable[[str], None] | None = None,
    on_status_skipped: Callable[[str, str], None] | None = None,
) -> Iterator[Subscriber]:
    """Yield each sendable subscriber of a CSV file, in file order, skipping (and reporting) the rest.

    ``seen`` drops duplicates (pass None when the consumer deduplicates);
    ``suppressed`` holds lowercased addresses never to send to (a set, or the
    subscriber store's suppressions); ``on_status_skipped`` hears (address,
    status) of each valid row skipped for its status column, so an import can
    record who had unsubscribed.
    """
    stats = stats if stats is not None else ReadStats()
    shown = display or str(path)

    def problem(line: int, message: str) -> None:
        text = f"{shown}:{line}: {message}"
        stats.note(text)
        if on_problem:
            on_problem(text)

    with _open_list(path, shown) as raw:
        # Decoded line by line (not by an 8 KB TextIOWrapper) so a bad byte is reported on its own line.
        text = _DecodedLines(raw, shown)
        header, delimiter = _read_header(text.lines, shown)
        email_col = _find_column(header, EMAIL_COLUMNS)
        assert email_col is not None
        name_col = _find_column(header, NAME_COLUMNS)
        status_col = _find_column(header, ("status",))
        reader = csv.reader(text.lines, delimiter=delimiter)
        address_columns = {i for i, h in enumerate(header) if "mail" in h} | {email_col}
        while True:
            start_line = reader.line_num + 2  # the header was line 1, read before the reader
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise SubscriberError(f"malformed CSV: {_csv_reason(exc)}", path=shown, line=start_line, hint=MISREAD_HINT) from None
            end_line = reader.line_num + 1
            if end_line != start_line:
                raise SubscriberError(
                    f"a quoted field starts on this line and runs over {end_line - start_line + 1} lines (to line {end_line}): "
                    "probably a stray '\"', which would swallow the rows after it",
                    path=shown, line=start_line, hint="close or remove the quote (a cell cannot hold a line break); " + MISREAD_HINT,
                )
            if not row or all(not cell.strip() for cell in row):
                continue
            stats.rows += 1
            cells = [cell.strip() for cell in row]
            _refuse_addresses_in_text(cells, header, address_columns, shown, start_line)
            address = cells[email_col] if email_col < len(cells) else ""
            if status_col is not None and status_col < len(cells) and cells[status_col].lower() in SKIP_STATUSES:
                stats.status_skipped += 1
                if on_status_skipped is not None and address and address_problem(address) is None:
                    on_status_skipped(sendable(address), cells[status_col].lower())
                continue
            if not address:
                stats.invalid += 1
                problem(start_line, "no email address; row skipped")
                continue
            reason = address_problem(address)
            if reason:
                stats.invalid += 1
                problem(start_line, f"'{visible(address)}' is not a valid email address ({reason}); row skipped")
                continue
            address = sendable(address)  # an internationalised domain goes out as punycode
            key = address.lower()
            if key in suppressed:
                stats.suppressed += 1
                continue
            if seen is not None and not seen.add(key):
                stats.duplicates += 1
                continue
            name = one_line(cells[name_col]) if name_col is not None and name_col < len(cells) else ""
            merge = {
                header[i]: one_line(cells[i])
                for i in range(min(len(header), len(cells)))
                if header[i] and i not in (email_col, name_col, status_col)
            }
            stats.yielded += 1
            yield Subscriber(address, name or None, merge, start_line)
        if text.count != reader.line_num + 1:
            # every line read must have become exactly one row (or a blank line): anything else is a misread
            raise SubscriberError(
                f"the file has {text.count} lines but {reader.line_num + 1} were read as rows; the list may be misread",
                path=shown, line=text.count, hint=MISREAD_HINT,
            )


def _refuse_addresses_in_text(cells: list[str], header: list[str], address_columns: set[int], shown: str, line: int) -> None:
    """Stop at an address inside a name or merge field: it would be shown to this reader."""
    for i, cell in enumerate(cells):
        if i in address_columns or "@" not in cell:
            continue
        found = _ADDRESS_LIKE.search(cell)
        if found:
            column = header[i] if i < len(header) and header[i] else f"column {i + 1}"
            raise SubscriberError(
                f"the '{column}' field contains an email address ('{visible(found.group())}'): a shifted column or a stray quote "
                "could show one reader another reader's address",
                path=shown, line=line, hint="remove the address from that field, or name the column with 'email' in it; " + MISREAD_HINT,
            )


def _csv_reason(exc: csv.Error) -> str:
    """The csv module's complaint in the user's terms."""
    if "new-line character" in str(exc):
        return "a line break (a lone carriage return) inside a line; save the file as CSV UTF-8 with ordinary line endings"
    return str(exc)


def merge_columns(path: Path, display: str | None = None) -> tuple[str, ...]:
    """The columns templates can use as ``subscriber.<column>``: email, name and every other named column."""
    shown = display or str(path)
    with _open_list(path, shown) as raw:
        header, _ = _read_header(_DecodedLines(raw, shown).lines, shown)
    skip = {_find_column(header, EMAIL_COLUMNS), _find_column(header, NAME_COLUMNS), _find_column(header, ("status",))}
    return ("email", "name", *(h for i, h in enumerate(header) if h and i not in skip))


def _open_list(path: Path, shown: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise SubscriberError(f"cannot read the subscriber list: {exc.strerror}", path=shown, hint="check the path given to --to") from None


def _read_header(text: Iterator[str], shown: str) -> tuple[list[str], str]:
    """The lowercased column names of the first line, and the delimiter; it must name an email column."""
    header_line = next(text, "")
    if not header_line.strip():
        raise SubscriberError("the file is empty; expected a header line naming an 'email' column", path=shown, line=1)
    delimiter = _sniff_delimiter(header_line)
    try:
        header = [h.strip().lower() for h in next(csv.reader([header_line], delimiter=delimiter))]
    except csv.Error as exc:
        raise SubscriberError(f"malformed CSV header: {_csv_reason(exc)}", path=shown, line=1, hint=MISREAD_HINT) from None
    if _find_column(header, EMAIL_COLUMNS) is None:
        raise SubscriberError(
            f"no 'email' column in the header (found: {', '.join(h for h in header if h) or 'nothing'})",
            path=shown, line=1, hint="the first line must name the columns, e.g. email,name",
        )
    return header, delimiter


class _DecodedLines:
    """The file's lines decoded one by one, counted, so a bad byte is reported on its own line."""

    def __init__(self, raw: Iterator[bytes], shown: str) -> None:
        self.count = 0
        self.lines = self._decode(raw, shown)

    def _decode(self, raw: Iterator[bytes], shown: str) -> Iterator[str]:
        for data in raw:
            self.count += 1
            if self.count == 1 and utf16_name(data):
                raise SubscriberError("the file is UTF-16 text: save it as UTF-8", path=shown, line=1, hint="in the spreadsheet, save as 'CSV UTF-8'")
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SubscriberError(f"not UTF-8 text ({exc.reason} at column {exc.start + 1})", path=shown, line=self.count, hint="export the list as CSV UTF-8") from None
            yield line[1:] if self.count == 1 and line.startswith("\ufeff") else line


def _sniff_delimiter(header_line: str) -> str:
    """';' when the header has more semicolons than commas (European spreadsheet exports), else ','."""
    return ";" if header_line.count(";") > header_line.count(",") else ","


def _find_column(header: list[str], names: tuple[str, ...]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


# -- the suppression list -----------------------------------------------------------------------


def suppression_path(folder: Path) -> Path:
    return folder / SUPPRESSION_FILE


def load_suppressed(folder: Path) -> set[str]:
    """Lowercased addresses in suppressed.txt (blank lines and # comments ignored)."""
    path = suppression_path(folder)
    try:
        content = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return set()
    except (OSError, UnicodeDecodeError) as exc:
        raise SubscriberError(f"cannot read the suppression list: {exc}", path=str(path)) from None
    return {s.strip().lower() for s in content.splitlines() if s.strip() and not s.lstrip().startswith("#")}


def suppress(folder: Path, addresses: list[str]) -> tuple[list[str], list[str]]:
    """Add addresses to suppressed.txt atomically; return (added, already there).

    Every address is validated first, so a typo adds nothing.
    """
    bad = [a for a in addresses if not is_valid_address(a.strip())]
    if bad:
        raise NewsletterError(
            "not a valid email address: " + ", ".join(f"'{visible(b)}'" for b in bad) + "; nothing was added",
            path=str(suppression_path(folder)),
            hint="give plain addresses like name@example.org",
        )
    path = suppression_path(folder)
    try:
        existing = path.read_bytes()
    except FileNotFoundError:
        existing = b""
    known = load_suppressed(folder)
    added: list[str] = []
    already: list[str] = []
    for address in addresses:
        key = address.strip().lower()
        if key in known:
            already.append(key)
        else:
            known.add(key)
            added.append(key)
    if added:
        prefix = existing if not existing or existing.endswith(b"\n") else existing + b"\n"
        atomic_write(path, prefix + "".join(a + "\n" for a in added).encode("utf-8"))
    return added, already


__all__ = [
    "Subscriber", "ReadStats", "HashSeen", "iter_subscribers", "merge_columns", "load_suppressed", "suppress",
    "suppression_path", "SUPPRESSION_FILE", "SKIP_STATUSES",
]
