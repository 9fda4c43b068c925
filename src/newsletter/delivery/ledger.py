"""The durable per-issue send record: ``<folder>/sends/YYYY-MM.sqlite``, one row per recipient.

A row is ``pending`` until a worker claims it.  A worker claims a few rows at
once, committing them as ``sending`` with ``synchronous=FULL`` (one fsync of
the WAL for the batch, shared with other workers' claims by a group commit):
after a power cut every claimed row is at worst ``uncertain``, never resent.
Right before a message's bytes leave, its row id is appended to the run's
hand-over log (``sends/YYYY-MM.handed``, one ``write`` to the page cache: it
survives a killed process, not a power cut; no fsync and no lock to wait for).  After the hand-over the row becomes
``sent``, ``failed`` (permanent, with the server's reply), ``deferred``
(temporary failures until the attempts ran out) or ``uncertain`` (the
connection died after the data went out).  Each outcome is appended to the
hand-over log too (the same kind of write), the moment it is known; the
database is not waited on: a flusher thread writes results every few
milliseconds in one transaction (to the WAL, no fsync).

Opening a record recovers rows a crash left ``sending``.  If the machine has
not rebooted since that run (same Linux boot id), the hand-over log is
complete: a claimed row never handed over goes back to ``pending``, a row
whose outcome is in the log gets that outcome, and only the ones whose final
reply had not arrived (at most one per connection) become ``uncertain``.
After a reboot (power cut, OS crash) or on another machine every ``sending``
row becomes ``uncertain``: the claims since the last fsync, up to a claim of
rows per connection (see send.CLAIM_SIZE).  Uncertain rows
may have been delivered, so they are not sent again unless the user asks
(``--resend-uncertain``).

A new record is written to a temporary file and renamed into place once every
subscriber is in it, so a crash while loading can never leave a half record
that a later run would "resume" and so skip people.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Iterable, Iterator

from newsletter.errors import NewsletterError
from newsletter.fsutil import fsync_dir
from newsletter.audience.subscribers import Subscriber

SENDS_DIR = "sends"
STATES = ("pending", "sending", "sent", "failed", "deferred", "uncertain")
FINAL_STATES = ("sent", "failed")
FLUSH_SECONDS = 0.005  # how long a result may wait in memory before it is written
_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS recipients (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,            -- the lowercased address: one row per person
    address TEXT NOT NULL,
    name TEXT,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'deferred', 'uncertain')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_reply TEXT,
    updated_at TEXT,
    message_id TEXT,
    line INTEGER,                         -- where the address was in the subscriber list
    fields TEXT                           -- the list's other columns (merge fields), JSON; NULL if none
);
"""
_STATE_INDEX = "CREATE INDEX IF NOT EXISTS recipients_state ON recipients (state, id)"
_SCHEMA = f"{_TABLES}{_STATE_INDEX};\n"


_last_second: tuple[int, str] = (-1, "")


def now() -> str:
    """ISO-8601 UTC with seconds, as stored in updated_at and in reports.

    Formatted once a second: every result of a send stamps its row, thousands a second.
    """
    global _last_second
    second = int(time.time())
    if second != _last_second[0]:
        _last_second = (second, datetime.fromtimestamp(second, timezone.utc).isoformat(timespec="seconds"))
    return _last_second[1]


def boot_id() -> str | None:
    """This boot of the machine (Linux); None where unknown, which makes recovery conservative."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def ledger_path(folder: Path, month: str) -> Path:
    return folder / SENDS_DIR / f"{month}.sqlite"


@dataclass(frozen=True)
class Row:
    """One recipient's record."""

    id: int
    address: str
    name: str | None
    state: str
    attempts: int
    last_reply: str | None
    updated_at: str | None
    message_id: str | None
    fields_json: str | None = None

    @property
    def fields(self) -> dict[str, str]:
        """The merge-field columns this recipient had in the subscriber list."""
        return json.loads(self.fields_json) if self.fields_json else {}


def _json_text(reply: str | None) -> bytes:
    """``json.dumps(reply)`` as bytes, through the json module's C string encoder (once per result)."""
    return b"null" if reply is None else encode_basestring_ascii(reply).encode("ascii")


_ROW_COLUMNS = "id, address, name, state, attempts, last_reply, updated_at, message_id, fields"


def _fields_json(sub: Subscriber) -> str | None:
    return json.dumps(sub.fields, ensure_ascii=False, separators=(",", ":")) if sub.fields else None


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        if "fields" not in {column[1] for column in conn.execute("PRAGMA table_info(recipients)")}:
            conn.execute("ALTER TABLE recipients ADD COLUMN fields TEXT")  # a record from before merge fields
    except sqlite3.DatabaseError as exc:
        raise NewsletterError(f"cannot open the send record: {exc}", path=str(path), hint="check free disk space and that sends/ is writable; if the file is damaged, move it aside (the archive keeps a copy of finished sends)") from None
    return conn


def storage_error(what: str, exc: BaseException, path: Path) -> NewsletterError:
    """A clear error for a send record that cannot be written (full disk, read-only folder)."""
    reason = getattr(exc, "strerror", None) or str(exc)
    return NewsletterError(
        f"{what}: {reason}", path=str(path),
        hint=f"free some disk space and check that {path.parent if path.suffix else path}/ is writable, then run the same command again",
    )


def write_new(path: Path, subscribers: Iterable[Subscriber], meta: dict[str, str], *, shown: Path | None = None) -> tuple[int, int]:
    """Write a complete record of ``subscribers`` to ``path`` (temp file, fsync, rename);
    ``shown`` is the folder to name when that is impossible.

    Returns (recipients, duplicates); duplicates are dropped by the primary
    key on the lowercased address, which keeps memory flat for any list size.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)
        added, duplicates = _load(tmp, subscribers, meta)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except (OSError, sqlite3.OperationalError) as exc:  # disk full, read-only: not a damaged list
        raise storage_error("cannot write the send record", exc, shown or path.parent) from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)
    return added, duplicates


def _load(path: Path, subscribers: Iterable[Subscriber], meta: dict[str, str]) -> tuple[int, int]:
    conn = sqlite3.connect(str(path), isolation_level=None)
    with closing(conn):
        conn.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file to rename
        # Nobody opens the temporary file before it is renamed: one transaction and one fsync of the
        # finished file below, not four fsyncs for each of four transactions (a fixed cost of every send).
        conn.execute("PRAGMA synchronous=OFF")
        # The state index is built after the rows are in, from one sorted pass, rather than kept up to
        # date row by row while they go in.
        conn.executescript("BEGIN;" + _TABLES)
        conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta.items())
        stamp = now()
        insert = "INSERT OR IGNORE INTO recipients (key, address, name, updated_at, line, fields) VALUES (?, ?, ?, ?, ?, ?)"
        rows = 0

        def values() -> Iterator[tuple]:
            nonlocal rows
            for sub in subscribers:
                rows += 1
                yield (sub.key, sub.email, sub.name, stamp, sub.line, _fields_json(sub))

        # one executemany: a statement per row cost a third of staging a 10,000-row list
        added = conn.executemany(insert, values()).rowcount  # rows inserted; the others were duplicates
        conn.execute(_STATE_INDEX)  # in the same transaction (executescript would commit first)
        conn.execute("COMMIT")
        # Written here, unsynced, rather than by the first open (_connect), where it cost four fsyncs;
        # the mode is kept in the file's header, and closing removes the empty WAL.
        conn.execute("PRAGMA journal_mode=WAL")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # the whole record on disk before the rename publishes it
    finally:
        os.close(fd)
    return added, rows - added




class RunLock:
    """An exclusive lock on one issue's sending (sends/YYYY-MM.lock) so two runs never overlap.

    ``newsletter send`` takes it before it reads the send record and holds it to the end, across
    the confirmation prompt: what the run decided (resume, or a new record with --force) cannot
    be undone by another run finishing in between.  The holder's pid is written into the file
    for the message a second run gets.  The lock is flock(2): it goes when the process does.
    """

    def __init__(self, record: Path) -> None:
        import fcntl

        path = record.with_suffix(".lock")
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error("cannot lock the send record", exc, path)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self._fd, 20, 0).strip().decode("ascii", "replace")
            os.close(self._fd)
            self._fd = None
            raise NewsletterError(
                f"another send of {record.stem} is running (pid {holder if holder.isdigit() else 'unknown'})", path=str(path),
                hint="wait for it to finish (or stop it), then run this command again; two runs at once could send twice",
            ) from None
        try:  # unbuffered: on a full disk this fails here, quietly, not at close
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, b"%d\n" % os.getpid(), 0)
        except OSError:
            pass  # only the message of a second run loses the pid

    def release(self) -> None:
        """Let another run go ahead (idempotent)."""
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Ledger:
    """An open send record; one connection shared by the worker threads under a lock."""

    def __init__(self, path: Path, *, recover: bool = True) -> None:
        if not path.exists():
            raise NewsletterError("no send record for this issue yet", path=str(path), hint="run `newsletter send` first")
        self.path = path
        self._conn = _connect(path)
        self._lock = threading.Lock()
        self._sync = "FULL"
        self._handed_fd: int | None = None
        self._flusher: threading.Thread | None = None
        self._flusher_stop = threading.Event()
        # group commit state (see _group_commit)
        self._gc = threading.Condition()
        self._gc_pending: list[tuple[str, list[tuple], bool]] = []
        self._gc_batch = 1  # the number the next batch will get
        self._gc_done = 0  # the last batch committed
        self._gc_busy = False
        self._gc_error: BaseException | None = None
        self.recovered = self._recover() if recover else 0

    # -- lifecycle ------------------------------------------------------------------------------

    def _recover(self) -> int:
        """Rows a crashed run left in flight may have been delivered: mark them uncertain.

        Returns how many became uncertain; claimed rows that provably never left
        (same boot, not in the hand-over log) quietly go back to pending."""
        with self._lock:
            self._set_sync("FULL")
            conn = self._conn
            if not conn.execute("SELECT 1 FROM recipients WHERE state = 'sending' LIMIT 1").fetchone():
                return 0
            row = conn.execute("SELECT value FROM meta WHERE key = 'boot_id'").fetchone()
            handed = self._read_handed() if row is not None and row[0] and row[0] == boot_id() else None
            stamp = now()
            reply = "interrupted while handing over; it may have been delivered"
            conn.execute("BEGIN IMMEDIATE")
            if handed is None:  # rebooted, another machine, or no log: every claimed row may have left
                uncertain = conn.execute(
                    "UPDATE recipients SET state = 'uncertain', updated_at = ?, last_reply = ? WHERE state = 'sending'", (stamp, reply)
                ).rowcount
            else:
                uncertain = 0
                for (row_id,) in conn.execute("SELECT id FROM recipients WHERE state = 'sending'").fetchall():
                    if row_id not in handed:  # claimed, never handed over
                        conn.execute("UPDATE recipients SET state = 'pending', attempts = attempts - 1, updated_at = ? WHERE id = ?", (stamp, row_id))
                    elif handed[row_id] is None:  # handed over, no final reply: in flight
                        uncertain += 1
                        conn.execute("UPDATE recipients SET state = 'uncertain', updated_at = ?, last_reply = ? WHERE id = ?", (stamp, reply, row_id))
                    else:  # the outcome was known, only not yet in the database
                        state, last_reply = handed[row_id]
                        conn.execute("UPDATE recipients SET state = ?, last_reply = ?, updated_at = ? WHERE id = ?", (state, last_reply, stamp, row_id))
            conn.execute("COMMIT")
            return uncertain

    @property
    def handed_log(self) -> Path:
        return self.path.with_suffix(".handed")

    def _read_handed(self) -> dict[int, tuple[str, str | None] | None] | None:
        """The hand-over log: for each row handed over, its last outcome, or None if its final reply
        had not arrived.  Lines are ``<id>`` (handed over) and ``<id> <state> <reply as JSON>``."""
        try:
            data = self.handed_log.read_bytes()
        except FileNotFoundError:
            return None
        handed: dict[int, tuple[str, str | None] | None] = {}
        for line in data.split(b"\n"):
            row_id, _, outcome = line.partition(b" ")
            if not row_id.isdigit():
                continue  # a torn last line: that write never completed
            if not outcome:
                handed[int(row_id)] = None
                continue
            state, _, reply = outcome.partition(b" ")
            try:
                decoded = json.loads(reply)
            except ValueError:
                continue  # torn: the row keeps what it had (handed over: uncertain)
            name = state.decode("ascii", "replace")
            # an outcome is what mark_result writes, never "sending": a line saying so was edited or forged
            if name in STATES and name != "sending" and (decoded is None or isinstance(decoded, str)):
                handed[int(row_id)] = (name, decoded)
        return handed

    def start_run(self) -> None:
        """Start this run's hand-over log and remember the machine's boot id (see the module docstring);
        start the flusher that writes results in batches."""
        self.set_meta(boot_id=boot_id() or "")
        self._handed_fd = os.open(self.handed_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        if self._flusher is None:
            self._flusher_stop = threading.Event()
            self._flusher = threading.Thread(target=self._flush_results, name="ledger-flusher", daemon=True)
            self._flusher.start()

    def _flush_results(self) -> None:
        """Write waiting results every FLUSH_SECONDS (one transaction, no fsync), so a killed
        process loses at most the last few milliseconds of results (those rows become uncertain)."""
        while not self._flusher_stop.wait(FLUSH_SECONDS):
            with self._gc:
                idle = not self._gc_pending or self._gc_busy
            if not idle:
                try:
                    self._group_commit("UPDATE meta SET value = value WHERE 0", [()], durable=False, wait=True)
                except Exception:  # noqa: BLE001 - the workers' next commit raises it to them
                    return

    def close(self) -> None:
        """Write what is waiting and close; the hand-over log is kept while rows are in flight.
        When the record cannot be written (a full disk) everything is still closed, then that is raised."""
        if self._flusher is not None:
            self._flusher_stop.set()
            self._flusher.join()
            self._flusher = None
        failed: NewsletterError | None = None
        try:
            self.flush()
            in_flight = self.counts()["sending"]
        except NewsletterError as exc:
            failed, in_flight = exc, 1  # the log has outcomes the database lacks: keep it
        if self._handed_fd is not None:
            os.close(self._handed_fd)
            self._handed_fd = None
            if not in_flight:
                self.handed_log.unlink(missing_ok=True)  # nothing in flight: the log has no more use
        with self._lock:
            self._set_sync("FULL")
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.DatabaseError:
                pass
            self._conn.close()
        if failed is not None:
            raise failed

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _set_sync(self, level: str) -> None:
        if self._sync != level:
            self._conn.execute(f"PRAGMA synchronous={level}")
            self._sync = level

    # -- metadata -------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        with self._lock:
            return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, **values: str) -> None:
        with self._lock:
            self._set_sync("FULL")
            self._conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())

    # -- state changes --------------------------------------------------------------------------

    def claim(self, claims: list[tuple[int, str]]) -> None:
        """Durably mark rows ``sending`` with their Message-IDs (one fsync, shared by a group commit)."""
        stamp = now()
        self._group_commit(
            "UPDATE recipients SET state = 'sending', attempts = attempts + 1, message_id = ?, updated_at = ? WHERE id = ?",
            [(message_id, stamp, row_id) for row_id, message_id in claims], durable=True, wait=True,
        )

    def mark_sending(self, row_id: int, message_id: str) -> None:
        """Claim one row and mark it handed over (for callers that send one message at a time)."""
        self.claim([(row_id, message_id)])
        self.mark_handed(row_id)

    def mark_handed(self, row_id: int) -> None:
        """The bytes are about to leave: append the row to the hand-over log (one write, survives a killed process)."""
        if self._handed_fd is None:
            self.start_run()
        os.write(self._handed_fd, b"%d\n" % row_id)

    def release(self, row_ids: list[int]) -> None:
        """Claimed rows this run will not send after all (stopping): back to pending."""
        if row_ids:
            self._group_commit(
                "UPDATE recipients SET state = 'pending', attempts = attempts - 1, updated_at = ? WHERE id = ? AND state = 'sending'",
                [(now(), row_id) for row_id in row_ids], durable=False, wait=True,
            )

    def drop(self, row_id: int) -> None:
        """A row not to send after all (its reader unsubscribed since the list was loaded): removed,
        as ``merge`` removes rows that left the list.  Only a row not yet tried."""
        self._group_commit(
            "DELETE FROM recipients WHERE id = ? AND state IN ('pending', 'deferred')", [(row_id,)], durable=False, wait=False,
        )

    def mark_result(self, row_id: int, state: str, reply: str | None) -> None:
        """Record the outcome of a hand-over (sent, failed, deferred, uncertain or back to pending).

        Not waited on: written with the next claim or by the flusher within FLUSH_SECONDS
        (in the WAL: survives a killed process), fsynced with the next claim.
        """
        assert state in STATES and state != "sending"
        if self._handed_fd is not None:  # known now even if the process is killed before the flush
            try:
                os.write(self._handed_fd, b"%d %s %s\n" % (row_id, state.encode("ascii"), _json_text(reply)))
            except OSError:
                pass  # a full disk: the database below is then the only record, as before this log kept outcomes
        self._group_commit(
            "UPDATE recipients SET state = ?, last_reply = ?, updated_at = ? WHERE id = ?",
            [(state, reply, now(), row_id)], durable=False, wait=False,
        )

    def _group_commit(self, sql: str, params: list[tuple], *, durable: bool, wait: bool) -> None:
        """Group commit: whoever finds no commit running becomes the committer and writes every
        waiting update in one transaction (one fsync for several workers), again and again until
        none is waiting.  A durable update returns once its transaction is fsynced.  A result
        returns at once when a commit is running: that committer writes it right after (within
        one fsync), so a killed process can at worst leave its row "sending" and handed, i.e. uncertain."""
        with self._gc:
            if self._gc_error is not None:
                raise self._gc_error
            self._gc_pending.append((sql, params, durable))
            ticket = self._gc_batch
            if not wait and (self._gc_busy or self._flusher is not None):
                return  # the commit in progress, the next claim or the flusher (within FLUSH_SECONDS) writes it
            while self._gc_done < ticket:
                if self._gc_error is not None:
                    raise self._gc_error
                if self._gc_busy:
                    self._gc.wait()
                    continue
                self._gc_busy = True
                try:
                    while self._gc_pending:
                        batch, self._gc_pending = self._gc_pending, []
                        number, self._gc_batch = self._gc_batch, self._gc_batch + 1
                        self._gc.release()
                        try:
                            self._commit(batch)
                        finally:
                            self._gc.acquire()
                        self._gc_done = number
                        self._gc.notify_all()
                except BaseException as exc:
                    self._gc_error = exc if isinstance(exc, Exception) else RuntimeError("interrupted while recording")
                    raise
                finally:
                    self._gc_busy = False
                    self._gc.notify_all()

    def _commit(self, batch: list[tuple[str, list[tuple], bool]]) -> None:
        with self._lock:
            self._set_sync("FULL" if any(durable for _, _, durable in batch) else "NORMAL")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement, values, _ in batch:
                        self._conn.executemany(statement, values)
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:  # SQLite has already rolled back after a full disk
                        self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:  # full disk, I/O error: the outcomes are in the hand-over log
                raise storage_error("cannot write the send record", exc, self.path) from None

    def flush(self) -> None:
        """Wait until every update handed to the group committer is written."""
        with self._gc:
            while self._gc_busy or self._gc_pending:
                if self._gc_error is not None:
                    raise self._gc_error
                if not self._gc_busy:
                    break
                self._gc.wait()
        if self._gc_pending:
            self._group_commit("UPDATE meta SET value = value WHERE 0", [()], durable=True, wait=True)

    def resend_uncertain(self) -> int:
        """--resend-uncertain: put uncertain rows back in the queue."""
        self.flush()
        with self._lock:
            self._set_sync("FULL")
            return self._conn.execute(
                "UPDATE recipients SET state = 'pending', updated_at = ? WHERE state = 'uncertain'", (now(),)
            ).rowcount

    def merge(self, subscribers: Iterable[Subscriber]) -> tuple[int, int]:
        """Bring a resumed record up to date with the list: add new subscribers, refresh the name and
        merge fields of rows not yet delivered, drop not-yet-tried rows that left the list (unsubscribed or
        suppressed since).  Returns (added, removed)."""
        self.flush()
        with self._lock:
            self._set_sync("FULL")
            conn = self._conn
            conn.execute("BEGIN")
            try:
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS current (key TEXT PRIMARY KEY)")
                conn.execute("DELETE FROM temp.current")
                stamp = now()
                before = conn.execute("SELECT COUNT(*) FROM recipients").fetchone()[0]
                for sub in subscribers:
                    conn.execute("INSERT OR IGNORE INTO temp.current (key) VALUES (?)", (sub.key,))
                    # rows not yet delivered take the list's current name and merge fields (a fixed typo counts;
                    # uncertain ones too, for --resend-uncertain)
                    conn.execute(
                        "INSERT INTO recipients (key, address, name, updated_at, line, fields) VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET name = excluded.name, fields = excluded.fields "
                        "WHERE recipients.state IN ('pending', 'deferred', 'uncertain')",
                        (sub.key, sub.email, sub.name, stamp, sub.line, _fields_json(sub)),
                    )
                added = conn.execute("SELECT COUNT(*) FROM recipients").fetchone()[0] - before
                removed = conn.execute(
                    "DELETE FROM recipients WHERE state IN ('pending', 'deferred') AND key NOT IN (SELECT key FROM temp.current)"
                ).rowcount
                conn.execute("DELETE FROM temp.current")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return added, removed

    # -- reading --------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        self.flush()
        with self._lock:
            found = dict(self._conn.execute("SELECT state, COUNT(*) FROM recipients GROUP BY state").fetchall())
        return {state: found.get(state, 0) for state in STATES}

    def total(self) -> int:
        return sum(self.counts().values())

    def rows(self, states: tuple[str, ...] | None = None, batch: int = 500) -> Iterator[Row]:
        """Rows in list order (optionally only some states), fetched in batches to keep memory flat."""
        self.flush()
        last = 0
        where = f"AND state IN ({', '.join('?' * len(states))})" if states else ""
        while True:
            with self._lock:
                found = self._conn.execute(
                    f"SELECT {_ROW_COLUMNS} FROM recipients WHERE id > ? {where} ORDER BY id LIMIT ?",
                    (last, *(states or ()), batch),
                ).fetchall()
            if not found:
                return
            for values in found:
                yield Row(*values)
            last = found[-1][0]

    def is_finished(self) -> bool:
        """Nothing left to try: every row sent, failed or uncertain."""
        counts = self.counts()
        return counts["pending"] == counts["deferred"] == counts["sending"] == 0
