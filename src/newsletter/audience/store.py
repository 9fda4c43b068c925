"""The subscriber store: ``subscribers.sqlite`` in the newsletter folder, one row per address.

Everything that knows the store is SQLite lives in this module, so a site that
outgrows one file (several web servers) can put another implementation of the
same API in its place (a shared PostgreSQL; see the README, "Running the list").

What it holds, per address (keyed lowercased, stored as given): the status
(``STATUSES``), the name, the other columns as merge fields, the consent (when,
how, from which file, the text shown, the IP address and user agent of a form
sign-up and of its confirmation), and an event history.  ``forget`` erases all
of that and keeps only an HMAC of the address under a random salt kept in the
file, so no import can bring the person back while the address itself is gone.

Invariants and why:

- Every write runs in ``BEGIN IMMEDIATE`` and is committed before the method
  returns.  IMMEDIATE takes the write lock at the start, so the busy timeout
  applies to it; a deferred transaction that upgrades from read to write in WAL
  mode fails at once with "database is locked" when another writer got in
  first, whatever the timeout.
- WAL mode with a long busy timeout: readers never block the writer, and
  writers (a web endpoint's threads, a running send, the inbox reader, a
  command) queue instead of failing.  ``synchronous=FULL`` so a committed
  unsubscribe survives a power cut too (the law counts it from the request).
- One connection per thread (SQLite connections must not be shared by threads
  mid-transaction); ``close`` closes them all.
- Nothing is ever brought back by import or command: someone unsubscribed,
  bounced, complained or forgotten stays out.  Only the person can come back,
  through a new form sign-up, which makes them ``pending`` (new consent,
  confirmed by the emailed link).
- Long reads (``confirmed``, ``rows``) page by key in short read transactions
  so a send over 100,000 rows never pins the WAL or holds a snapshot while the
  endpoint writes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from newsletter.audience import STORE_FILE
from newsletter.audience.subscribers import Subscriber
from newsletter.content.addresses import address_key, address_problem, sendable
from newsletter.errors import NewsletterError, SubscriberError
from newsletter.mail.headers import one_line

STATUSES = ("pending", "confirmed", "unsubscribed", "bounced", "complained")
FORGOTTEN = "forgotten"
SUPPRESSED_STATUSES = frozenset({"unsubscribed", "bounced", "complained"})
HOWS = ("form", "import", "command")
UNSUBSCRIBE_VIA = ("one-click", "link", "mailto", "command")
EVENTS = ("subscribed", "confirmed", "unsubscribed", "bounced", "soft-bounce", "complained", "imported", "forgotten",
          "confirmation-sent")  # the last: a double opt-in email went out (the endpoint sends one per 15 minutes at most)
BUSY_TIMEOUT_SECONDS = 60.0
PAGE = 500  # rows per read transaction when iterating

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscribers (
    key TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT,
    status TEXT NOT NULL,
    fields TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    subscribed_at TEXT,
    confirmed_at TEXT,
    unsubscribed_at TEXT,
    status_at TEXT,
    consent_how TEXT,
    consent_source TEXT,
    consent_text TEXT,
    consent_ip TEXT,
    consent_user_agent TEXT,
    confirm_ip TEXT,
    confirm_user_agent TEXT
);
CREATE INDEX IF NOT EXISTS subscribers_status ON subscribers (status, key);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS events_key ON events (key, id);
CREATE TABLE IF NOT EXISTS forgotten (hash TEXT PRIMARY KEY, at TEXT NOT NULL);
"""
# Columns of a subscriber row, in the order `show` and export use.
COLUMNS = (
    "email", "name", "status", "fields", "created_at", "updated_at", "subscribed_at", "confirmed_at",
    "unsubscribed_at", "status_at", "consent_how", "consent_source", "consent_text", "consent_ip",
    "consent_user_agent", "confirm_ip", "confirm_user_agent",
)


@dataclass(frozen=True)
class StoredSubscriber:
    """One row of the store, as read (timestamps are ISO 8601 UTC strings)."""

    email: str
    name: str | None
    status: str
    fields: dict[str, str] = field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None
    subscribed_at: str | None = None
    confirmed_at: str | None = None
    unsubscribed_at: str | None = None
    status_at: str | None = None
    consent_how: str | None = None
    consent_source: str | None = None
    consent_text: str | None = None
    consent_ip: str | None = None
    consent_user_agent: str | None = None
    confirm_ip: str | None = None
    confirm_user_agent: str | None = None

    @property
    def key(self) -> str:
        """The lowercased address the store is keyed by."""
        return key_of(self.email)

    def as_subscriber(self) -> Subscriber:
        """The recipient the send machinery takes: an internationalised domain as punycode, line 0 (no file)."""
        return Subscriber(sendable(self.email), self.name, dict(self.fields), 0)


def key_of(email: str) -> str:
    """The identity of an address in the store: lowercased, an internationalised domain as punycode."""
    return address_key(email)


class SubscriberStore:
    """The subscribers of one newsletter folder; thread-safe; use ``SubscriberStore.open``."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        # Threads of one process take turns on this lock rather than in SQLite's busy handler,
        # which sleeps in growing steps (up to 100 ms) and so gives long waits under load
        # (bench/store_bench.py: 2.5-5x the commits/s of bare INSERTs left to the busy handler).
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._salt: bytes = b""

    # -- lifecycle --------------------------------------------------------------------------

    @staticmethod
    def exists(folder: Path) -> bool:
        """True when ``folder`` has a subscriber store (``open`` would create one)."""
        return (Path(folder) / STORE_FILE).is_file()

    @classmethod
    def open(cls, folder: Path, *, clock: Callable[[], float] = time.time) -> "SubscriberStore":
        """Open (creating when missing) ``subscribers.sqlite`` in ``folder``."""
        store = cls(Path(folder) / STORE_FILE, clock=clock)
        store._setup()
        return store

    def _setup(self) -> None:
        conn = self._conn()
        try:
            # Switching to WAL needs a moment alone with the file; it persists, so later opens skip it.
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            with self._write() as w:
                w.executescript_parts(_SCHEMA)
                w.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('salt', ?)", (os.urandom(32).hex(),))
                w.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', '1')")
            self._salt = bytes.fromhex(conn.execute("SELECT value FROM meta WHERE name = 'salt'").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            self.close()
            raise SubscriberError(
                f"cannot open the subscriber store: {exc}", path=str(self.path),
                hint="check that it is a file this tool made and that the folder is writable",
            ) from None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError("the subscriber store is closed")
            try:
                # isolation_level=None: we issue BEGIN IMMEDIATE ourselves (see the module docstring).
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
            except sqlite3.Error as exc:
                raise SubscriberError(
                    f"cannot open the subscriber store: {exc}", path=str(self.path),
                    hint="check that it is a file this tool made and that the folder is writable",
                ) from None
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection; the store cannot be used afterwards."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> "SubscriberStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> "_Transaction":
        return _Transaction(self._conn(), self._write_lock)

    def _now(self) -> str:
        return datetime.fromtimestamp(self._clock(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- reading ----------------------------------------------------------------------------

    def status_of(self, email: str) -> str | None:
        """The status of an address; ``"forgotten"`` when only its hash remains; None when unknown."""
        key = key_of(email)
        row = self._conn().execute("SELECT status FROM subscribers WHERE key = ?", (key,)).fetchone()
        if row:
            return row[0]
        if self._forgotten(self._conn(), key):
            return FORGOTTEN
        return None

    def is_suppressed(self, email: str) -> bool:
        """True when nothing may be sent to the address: unsubscribed, bounced, complained or forgotten."""
        status = self.status_of(email)
        return status in SUPPRESSED_STATUSES or status == FORGOTTEN

    def get(self, email: str) -> StoredSubscriber | None:
        """The stored row of an address, or None."""
        row = self._conn().execute(
            f"SELECT {', '.join(COLUMNS)} FROM subscribers WHERE key = ?", (key_of(email),)
        ).fetchone()
        return _row(row) if row else None

    def events(self, email: str) -> list[dict[str, Any]]:
        """The history of an address, oldest first: ``{"at", "event", "detail"}`` each."""
        rows = self._conn().execute(
            "SELECT at, event, detail FROM events WHERE key = ? ORDER BY id", (key_of(email),)
        ).fetchall()
        return [{"at": at, "event": event, "detail": json.loads(detail) if detail else {}} for at, event, detail in rows]

    def last_event_at(self, email: str, event: str) -> float | None:
        """When ``event`` last happened to an address (Unix time, whole seconds), or None if never."""
        row = self._conn().execute(
            "SELECT at FROM events WHERE key = ? AND event = ? ORDER BY id DESC LIMIT 1", (key_of(email), event)
        ).fetchone()
        return datetime.strptime(row[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp() if row else None

    def describe(self, email: str) -> dict[str, Any] | None:
        """Everything stored about one address (a GDPR access request), or None when nothing is."""
        sub = self.get(email)
        history = self.events(email)
        if sub is None:
            if self.status_of(email) == FORGOTTEN:
                return {"email": email.strip(), "status": FORGOTTEN,
                        "note": "erased on request; only a salted hash of the address is kept, so imports cannot re-add it"}
            if not history:
                return None
            return {"email": email.strip(), "status": None, "events": history}
        record: dict[str, Any] = {name: getattr(sub, name) for name in COLUMNS}
        record["events"] = history
        return record

    def rows(self, status: str | None = None) -> Iterator[StoredSubscriber]:
        """Every stored subscriber (or those with ``status``), ordered by address, paged."""
        if status is not None:
            _check_status(status)
        last = ""
        where = "key > ?" + (" AND status = ?" if status else "")
        while True:
            params: tuple[Any, ...] = (last, status) if status else (last,)
            page = self._conn().execute(
                f"SELECT key, {', '.join(COLUMNS)} FROM subscribers WHERE {where} ORDER BY key LIMIT {PAGE}", params
            ).fetchall()
            for row in page:
                yield _row(row[1:])
            if len(page) < PAGE:
                return
            last = page[-1][0]

    def confirmed(self) -> Iterator[Subscriber]:
        """The confirmed subscribers, as the recipients a send takes, ordered by address."""
        for sub in self.rows("confirmed"):
            yield sub.as_subscriber()

    def suppression(self) -> "Suppression":
        """A snapshot of every suppressed address, for checking a whole CSV list quickly (``key in it``)."""
        conn = self._conn()
        keys = {k for (k,) in conn.execute(
            "SELECT key FROM subscribers WHERE status IN ('unsubscribed', 'bounced', 'complained')")}
        hashes = {h for (h,) in conn.execute("SELECT hash FROM forgotten")}
        return Suppression(keys, hashes, self._hash)

    def live_suppression(self, every: float = 0.25) -> "LiveSuppression":
        """Like ``suppression``, but re-read when the file changed, at most every ``every`` seconds
        (for a running send: someone who unsubscribes mid-send is not sent to)."""
        return LiveSuppression(self, every)

    def field_names(self, status: str = "confirmed") -> list[str]:
        """The merge-field names used by subscribers with ``status``, sorted."""
        return [name for (name,) in self._conn().execute(
            "SELECT DISTINCT j.key FROM subscribers, json_each(subscribers.fields) AS j"
            " WHERE subscribers.status = ? AND subscribers.fields IS NOT NULL ORDER BY j.key", (status,))]

    def counts(self) -> dict[str, int]:
        """How many addresses have each status (every status listed, zeros included), and how many were forgotten."""
        counts = dict.fromkeys(STATUSES, 0)
        for status, n in self._conn().execute("SELECT status, count(*) FROM subscribers GROUP BY status"):
            counts[status] = n
        counts[FORGOTTEN] = self._conn().execute("SELECT count(*) FROM forgotten").fetchone()[0]
        return counts

    # -- writing ----------------------------------------------------------------------------

    def subscribe(
        self,
        email: str,
        name: str | None = None,
        *,
        how: str,
        status: str = "pending",
        consent_text: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        fields: Mapping[str, str] | None = None,
        source: str | None = None,
    ) -> str:
        """Add or renew a subscriber; return their status afterwards.

        ``how`` is ``"form"`` (always starts ``pending``), ``"import"`` (``source``: the file) or
        ``"command"``.  Import and command never bring back anyone unsubscribed, bounced,
        complained or forgotten (the status returned says so) and leave an existing
        subscriber's status and consent alone, updating name and fields.  A form sign-up
        of someone unsubscribed, bounced or forgotten makes them ``pending`` again (new
        consent, to be confirmed); a complaint stays (see the README).
        """
        with self._write() as w:
            return self._subscribe(w, self._now(), email, name, how=how, status=status, consent_text=consent_text,
                                   ip=ip, user_agent=user_agent, fields=fields, source=source)[1]

    def _subscribe(
        self, w: "_Transaction", now: str, email: str, name: str | None, *, how: str, status: str,
        consent_text: str | None = None, ip: str | None = None, user_agent: str | None = None,
        fields: Mapping[str, str] | None = None, source: str | None = None,
    ) -> tuple[str | None, str]:
        """``subscribe`` inside a transaction; returns the status before (None: unknown) and after."""
        if how not in HOWS:
            raise ValueError(f"how must be one of {HOWS}, not {how!r}")
        if status not in ("pending", "confirmed") or (how == "form" and status != "pending"):
            raise ValueError(f"a {how} sign-up cannot start as {status!r}")
        email = email.strip()
        reason = address_problem(email)
        if reason:
            raise SubscriberError(f"'{one_line(email)}' is not a valid email address: {reason}", hint="give a plain address like name@example.org")
        key = key_of(email)
        name = one_line(name).strip() or None if name else None
        fields_json = json.dumps(dict(fields), ensure_ascii=False, sort_keys=True) if fields else None
        consent = {"how": how, "source": source, "text": consent_text, "ip": ip, "user_agent": user_agent}
        detail = {k: v for k, v in consent.items() if v is not None}
        row = w.execute("SELECT status FROM subscribers WHERE key = ?", (key,)).fetchone()
        current = row[0] if row else None
        if current is None and how != "form" and self._forgotten(w.conn, key):
            return FORGOTTEN, FORGOTTEN
        if current is None:
            w.execute(
                "INSERT INTO subscribers (key, email, name, status, fields, created_at, updated_at, subscribed_at,"
                " confirmed_at, status_at, consent_how, consent_source, consent_text, consent_ip, consent_user_agent)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, email, name, status, fields_json, now, now, now, now if status == "confirmed" else None, now,
                 how, source, consent_text, ip, user_agent),
            )
            w.event(key, now, "imported" if how == "import" else "subscribed", {**detail, "status": status})
            return None, status
        if how == "form" and current in ("unsubscribed", "bounced"):
            w.execute(
                "UPDATE subscribers SET status = 'pending', updated_at = ?, subscribed_at = ?, status_at = ?,"
                " confirmed_at = NULL, consent_how = 'form', consent_source = NULL, consent_text = ?, consent_ip = ?,"
                " consent_user_agent = ?, confirm_ip = NULL, confirm_user_agent = NULL,"
                " name = coalesce(?, name), fields = coalesce(?, fields) WHERE key = ?",
                (now, now, now, consent_text, ip, user_agent, name, fields_json, key),
            )
            w.event(key, now, "subscribed", {**detail, "status": "pending", "was": current})
            return current, "pending"
        if how == "form" and current == "pending":
            # A repeated sign-up renews the consent shown and where it came from; still to be confirmed.
            w.execute(
                "UPDATE subscribers SET updated_at = ?, subscribed_at = ?, consent_how = 'form', consent_source = NULL,"
                " consent_text = ?, consent_ip = ?, consent_user_agent = ?, name = coalesce(?, name),"
                " fields = coalesce(?, fields) WHERE key = ?",
                (now, now, consent_text, ip, user_agent, name, fields_json, key),
            )
            w.event(key, now, "subscribed", {**detail, "status": "pending"})
            return current, "pending"
        if how != "form" and current in ("pending", "confirmed") and (name or fields_json):
            w.execute(
                "UPDATE subscribers SET updated_at = ?, name = coalesce(?, name), fields = coalesce(?, fields) WHERE key = ?",
                (now, name, fields_json, key),
            )
        return current, current

    def confirm(self, email: str, *, ip: str | None = None, user_agent: str | None = None) -> bool:
        """Confirm a pending sign-up (recording where from); True when the address is confirmed afterwards.

        False for an unknown or suppressed address: an old confirmation link never
        brings back someone who unsubscribed since.
        """
        key = key_of(email)
        now = self._now()
        with self._write() as w:
            row = w.execute("SELECT status FROM subscribers WHERE key = ?", (key,)).fetchone()
            if row is None or row[0] not in ("pending", "confirmed"):
                return False
            if row[0] == "pending":
                w.execute(
                    "UPDATE subscribers SET status = 'confirmed', confirmed_at = ?, status_at = ?, updated_at = ?,"
                    " confirm_ip = ?, confirm_user_agent = ? WHERE key = ?",
                    (now, now, now, ip, user_agent, key),
                )
                w.event(key, now, "confirmed", {k: v for k, v in (("ip", ip), ("user_agent", user_agent)) if v is not None})
            return True

    def unsubscribe(self, email: str, *, via: str) -> bool:
        """Unsubscribe an address (adding an unknown one, e.g. a CSV recipient, as unsubscribed).

        Idempotent; True when this call changed the status.  Bounced, complained or
        forgotten addresses stay as they are (already never sent to); the request is
        still recorded in the history of a bounced or complained one.
        """
        return self.unsubscribe_many([(email, via)])[0]

    def unsubscribe_many(self, requests: Sequence[tuple[str, str]]) -> list[bool]:
        """``unsubscribe`` for several (email, via) pairs in one transaction, so one fsync commits them all
        (the endpoint's group commit, see ``audience.groupcommit``); the results in the same order."""
        for _email, via in requests:
            if via not in UNSUBSCRIBE_VIA:
                raise ValueError(f"via must be one of {UNSUBSCRIBE_VIA}, not {via!r}")
        now = self._now()
        with self._write() as w:
            return [self._unsubscribe(w, now, email.strip(), via) for email, via in requests]

    def _unsubscribe(self, w: "_Transaction", now: str, email: str, via: str) -> bool:
        key = key_of(email)
        row = w.execute("SELECT status FROM subscribers WHERE key = ?", (key,)).fetchone()
        if row is None:
            if self._forgotten(w.conn, key):
                return False
            w.execute(
                "INSERT INTO subscribers (key, email, status, created_at, updated_at, unsubscribed_at, status_at)"
                " VALUES (?, ?, 'unsubscribed', ?, ?, ?, ?)",
                (key, email, now, now, now, now),
            )
            w.event(key, now, "unsubscribed", {"via": via})
            return True
        if row[0] == "unsubscribed":
            return False
        if row[0] in ("bounced", "complained"):
            w.event(key, now, "unsubscribed", {"via": via, "status kept": row[0]})
            return False
        w.execute(
            "UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = ?, status_at = ?, updated_at = ? WHERE key = ?",
            (now, now, now, key),
        )
        w.event(key, now, "unsubscribed", {"via": via})
        return True

    def set_status(self, email: str, status: str, *, event: str, detail: Mapping[str, object] | None = None) -> None:
        """Set an address's status with the event that caused it (e.g. ``bounced`` with the evidence).

        An unknown address (a CSV recipient) is added with that status so its
        suppression applies to later sends; a forgotten one stays forgotten.
        """
        _check_status(status)
        _check_event(event)
        email = email.strip()
        key = key_of(email)
        now = self._now()
        unsubscribed_at = now if status == "unsubscribed" else None
        confirmed_at = now if status == "confirmed" else None
        with self._write() as w:
            row = w.execute("SELECT status FROM subscribers WHERE key = ?", (key,)).fetchone()
            if row is None:
                if self._forgotten(w.conn, key):
                    return
                w.execute(
                    "INSERT INTO subscribers (key, email, status, created_at, updated_at, status_at, unsubscribed_at, confirmed_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, email, status, now, now, now, unsubscribed_at, confirmed_at),
                )
            elif row[0] != status:
                w.execute(
                    "UPDATE subscribers SET status = ?, status_at = ?, updated_at = ?,"
                    " unsubscribed_at = coalesce(?, unsubscribed_at), confirmed_at = coalesce(?, confirmed_at) WHERE key = ?",
                    (status, now, now, unsubscribed_at, confirmed_at, key),
                )
            w.event(key, now, event, dict(detail or {}))

    def record_event(self, email: str, event: str, *, detail: Mapping[str, object] | None = None) -> None:
        """Add an event to an address's history without changing its status (e.g. a soft bounce)."""
        _check_event(event)
        key = key_of(email)
        now = self._now()
        with self._write() as w:
            if not w.execute("SELECT 1 FROM subscribers WHERE key = ?", (key,)).fetchone() and self._forgotten(w.conn, key):
                return  # nothing personal is kept about a forgotten address, events included
            w.event(key, now, event, dict(detail or {}))

    def forget(self, email: str) -> bool:
        """Erase everything about an address, keeping only a salted hash so no import re-adds it.

        True when something was erased (an unknown address is still remembered as
        forgotten: an erasure request is also a request not to be mailed).
        """
        key = key_of(email)
        now = self._now()
        with self._write() as w:
            erased = w.execute("DELETE FROM subscribers WHERE key = ?", (key,)).rowcount
            erased += w.execute("DELETE FROM events WHERE key = ?", (key,)).rowcount
            w.execute("INSERT OR IGNORE INTO forgotten (hash, at) VALUES (?, ?)", (self._hash(key), now[:10]))
        # Deleted rows may linger in free pages and the WAL; checkpoint so the file itself forgets.
        self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return erased > 0

    def subscribe_many(
        self, subscribers: Iterable[Subscriber], *, how: str, status: str = "confirmed", source: str | None = None
    ) -> dict[str, int]:
        """Import many subscribers; returns counts: ``added``, ``updated`` and one per status kept out.

        The rules are those of ``subscribe``; the rows are written in batches of ``PAGE``.
        """
        counts: dict[str, int] = {"added": 0, "updated": 0}
        batch: list[Subscriber] = []

        def flush() -> None:
            # One transaction (one fsync) per batch, short enough not to keep the endpoint waiting.
            with self._write() as w:
                now = self._now()
                for sub in batch:
                    before, after = self._subscribe(w, now, sub.email, sub.name, how=how, status=status,
                                                    fields=sub.fields or None, source=source)
                    outcome = "added" if before is None else "updated" if after in ("pending", "confirmed") else after
                    counts[outcome] = counts.get(outcome, 0) + 1
            batch.clear()

        for sub in subscribers:
            batch.append(sub)
            if len(batch) >= PAGE:
                flush()
        if batch:
            flush()
        return counts

    def _forgotten(self, conn: sqlite3.Connection, key: str) -> bool:
        """True when only the salted hash of ``key`` remains."""
        return conn.execute("SELECT 1 FROM forgotten WHERE hash = ?", (self._hash(key),)).fetchone() is not None

    def _hash(self, key: str) -> str:
        return hmac.new(self._salt, key.encode("utf-8"), hashlib.sha256).hexdigest()


class Suppression:
    """Suppressed keys and forgotten hashes, read once; ``key in suppression`` for a lowercased address."""

    def __init__(self, keys: set[str], hashes: set[str], hash_of: Callable[[str], str]) -> None:
        self.keys, self.hashes, self._hash_of = keys, hashes, hash_of

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        key = key_of(key)
        return key in self.keys or (bool(self.hashes) and self._hash_of(key) in self.hashes)

    def __len__(self) -> int:
        return len(self.keys) + len(self.hashes)


class LiveSuppression:
    """The store's suppressions, kept current cheaply: a set lookup per address, and a re-read only
    when SQLite's ``data_version`` says another connection committed (checked at most every
    ``every`` seconds, so a send of thousands of messages a second pays almost nothing)."""

    def __init__(self, store: SubscriberStore, every: float) -> None:
        self.store, self.every = store, every
        self._lock = threading.Lock()
        # data_version is per connection, so this one connection (under the lock) asks it every time.
        self._watch = sqlite3.connect(store.path, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
        self._version = self._watch.execute("PRAGMA data_version").fetchone()[0]
        self._snapshot = store.suppression()
        self._checked = time.monotonic()

    def __contains__(self, key: object) -> bool:
        if time.monotonic() - self._checked >= self.every:
            self._refresh()
        return key in self._snapshot

    def _refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._checked < self.every:
                return
            version = self._watch.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                self._snapshot = self.store.suppression()
                self._version = version
            self._checked = time.monotonic()

    def close(self) -> None:
        """Close the watching connection."""
        with self._lock:
            self._watch.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on an exception) on one connection,
    holding the store's in-process write lock throughout."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock) -> None:
        self.conn = conn
        self.lock = lock

    def __enter__(self) -> "_Transaction":
        self.lock.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.lock.release()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def executescript_parts(self, script: str) -> None:
        """Run each statement of a script inside this transaction (``executescript`` would COMMIT first)."""
        for statement in script.split(";"):
            if statement.strip():
                self.conn.execute(statement)

    def event(self, key: str, at: str, event: str, detail: Mapping[str, object]) -> None:
        self.conn.execute(
            "INSERT INTO events (key, at, event, detail) VALUES (?, ?, ?, ?)",
            (key, at, event, json.dumps(dict(detail), ensure_ascii=False, sort_keys=True, default=str) if detail else None),
        )


def _row(values: tuple[Any, ...]) -> StoredSubscriber:
    data = dict(zip(COLUMNS, values))
    try:
        data["fields"] = json.loads(data["fields"]) if data["fields"] else {}
    except ValueError:  # only a hand edit of the file gets here; name the row rather than fail deep in a send
        raise SubscriberError(
            f"the merge fields stored for {one_line(str(data['email']))} are not valid JSON",
            path=STORE_FILE, hint="correct or empty that row's 'fields' column (a JSON object of merge fields)",
        ) from None
    return StoredSubscriber(**data)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise NewsletterError(f"unknown status '{one_line(status)}'", hint=f"use one of: {', '.join(STATUSES)}")


def _check_event(event: str) -> None:
    if event not in EVENTS:
        raise ValueError(f"event must be one of {EVENTS}, not {event!r}")


__all__ = [
    "STORE_FILE", "STATUSES", "FORGOTTEN", "EVENTS", "SubscriberStore", "StoredSubscriber", "Suppression", "LiveSuppression", "key_of",
]
