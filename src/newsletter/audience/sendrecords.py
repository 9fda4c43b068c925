"""Read-only look-ups in the send records, for matching returned mail to the message it is about.

``audience`` sits below ``delivery`` and must not import its ledger, so this
is a small reader of its own on the same SQLite files: ``sends/YYYY-MM.sqlite``
(a send in progress or finished), ``sends/YYYY-MM.<time>.sqlite`` (a record
kept aside by ``send --force``) and ``archive/YYYY-MM/send-record.sqlite``.
It reads only the ``recipients`` table's ``id``, ``address`` and
``message_id`` columns, opens every file read-only (``mode=ro``), and never
holds a file open between look-ups, so a running send is never disturbed.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Iterator

from newsletter.fsutil import sqlite_uri

_RECORD = re.compile(r"^(\d{4}-\d{2})(\.[^/]*)?\.sqlite$")


def record_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(month, path) of every send record in the folder, newest month first."""
    found: list[tuple[str, Path]] = []
    sends = folder / "sends"
    if sends.is_dir():
        for path in sends.iterdir():
            match = _RECORD.match(path.name)
            if match and not path.name.startswith("."):
                found.append((match.group(1), path))
    archive = folder / "archive"
    if archive.is_dir():
        for path in archive.glob("*/send-record.sqlite"):
            found.append((path.parent.name, path))
    return iter(sorted(found, key=lambda item: (item[0], str(item[1])), reverse=True))


def _rows(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
    try:
        with closing(sqlite3.connect(sqlite_uri(path, read_only=True), uri=True, timeout=10)) as conn:
            return conn.execute(sql, params).fetchall()
    except sqlite3.DatabaseError:
        return []  # a damaged or foreign file: it cannot tell us anything


class SendRecords:
    """Look-ups over every send record of a newsletter folder (its files listed once, the Message-ID index built once)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: list[tuple[str, Path]] | None = None
        self._by_message_id: dict[str, tuple[str, str]] | None = None
        self._addresses: set[str] | None = None

    def addresses_of_row(self, month: str, row_id: int) -> list[str]:
        """The address of row ``row_id`` in each record of ``month`` (several after a ``send --force``)."""
        out = []
        for record_month, path in self._record_files():
            if record_month == month:
                out += [row[0] for row in _rows(path, "SELECT address FROM recipients WHERE id = ?", (row_id,))]
        return list(dict.fromkeys(out))

    def by_message_id(self, message_id: str) -> tuple[str, str] | None:
        """(month, address) of the message we sent with this Message-ID, or None."""
        if self._by_message_id is None:
            self._build()
        assert self._by_message_id is not None
        return self._by_message_id.get(message_id.strip())

    def was_sent_to(self, address: str) -> bool:
        """True when some send record has this address (any case)."""
        if self._addresses is None:
            self._build()
        assert self._addresses is not None
        return address.strip().lower() in self._addresses

    def _record_files(self) -> list[tuple[str, Path]]:
        # listed once per run, not once per returned message: the folder is scanned and globbed each time
        if self._files is None:
            self._files = list(record_files(self.folder))
        return self._files

    def _build(self) -> None:
        index: dict[str, tuple[str, str]] = {}
        addresses: set[str] = set()
        for month, path in self._record_files():
            for address, message_id in _rows(path, "SELECT address, message_id FROM recipients"):
                addresses.add(address.lower())
                if message_id:
                    index.setdefault(message_id.strip(), (month, address))
        self._by_message_id, self._addresses = index, addresses
