"""``newsletter inbox``: act on mail that came back (bounces, complaints, unsubscribe requests, auto-replies).

For each message of the source (``mailboxes.py``), in this order:

1. skip it if its Message-ID (or, without one, the SHA-256 of its bytes) was
   processed before (``returned-mail.sqlite``), only finishing the move a
   crash may have interrupted;
2. classify it (``returned.py``, no side effects);
3. find whose it is: the VERP token of the address it was delivered to
   (checked against the send record row it names), else the Message-ID of our
   original in the send records, else the DSN's Final-Recipient or the
   report's original To, but only when the attached original is provably our
   list's (List-Id, or our From) and the address is one we sent to.  Mail that
   is not provably about our list is left alone, even a bounce: with
   plus-addressing the box is the owner's own inbox;
4. record the effect in the subscriber store (committed before the call
   returns), then remember the Message-ID, then move the message: a crash in
   between leaves it to be done again, and doing it again is harmless;
5. leave everything else (personal mail, unmatched bounces) exactly where it
   was, counted in the summary.

Scoring follows Mailman's ``model/bounce.py``: a hard bounce scores 1 and
makes the reader ``bounced`` at once; a soft bounce scores 0.5; an address
scores at most once per UTC day; a score whose last bounce is more than
``STALE_DAYS`` old starts again from 0; at ``bounces.threshold`` (default 3)
the reader becomes ``bounced``.  Bounces for a reader already unsubscribed,
bounced or complained are stored as evidence and not scored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from newsletter.audience.mailboxes import PROCESSED, Source, open_source
from newsletter.audience.returned import AUTO_REPLY, COMPLAINT, HARD, OTHER, SOFT, UNSUBSCRIBE, Failure, Returned, classify
from newsletter.audience.sendrecords import SendRecords
from newsletter.content.config import load_config
from newsletter.content.model import Config
from newsletter.errors import NewsletterError
from newsletter.fsutil import sqlite_uri
from newsletter.mail.message import feedback_id, list_id, parse_feedback_id
from newsletter.mail.tokens import SECRET_ENV, TokenError, unseal
from newsletter.mail.verp import read_token, token_of, verify

STATE_FILE = "returned-mail.sqlite"
STALE_DAYS = 7
SCORES = {HARD: 1.0, SOFT: 0.5}
SUMMARY_ORDER = ("hard", "soft", "complaints", "unsubscribes", "auto-replies", "unmatched", "left alone")
_COUNTER = {HARD: "hard", SOFT: "soft", COMPLAINT: "complaints", UNSUBSCRIBE: "unsubscribes", AUTO_REPLY: "auto-replies"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS processed (
    message_key TEXT PRIMARY KEY,  -- the returned message's Message-ID, or sha256:<hex> of its bytes
    kind TEXT NOT NULL,
    address TEXT,
    month TEXT,                    -- the issue it was about, when known
    at TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS processed_month ON processed (month, kind);
CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, score REAL NOT NULL, last_day TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Match:
    """Whose a returned message is, found how, and about which issue."""

    address: str
    month: str | None
    matched_by: str  # "verp", "message-id", "final-recipient", "original-to", "token"


@dataclass
class InboxReport:
    """What a run did (or, with --dry-run, would do)."""

    source: str
    dry_run: bool
    counts: dict[str, int] = field(default_factory=lambda: {key: 0 for key in SUMMARY_ORDER})
    lines: list[str] = field(default_factory=list)
    already: int = 0  # processed by an earlier run (only their move finished now)

    def summary(self) -> str:
        """The one-line summary: hard, soft, complaints, unsubscribes, auto-replies, unmatched, left alone."""
        verb = "would handle" if self.dry_run else "handled"
        parts = ", ".join(f"{self.counts[key]} {key}" for key in SUMMARY_ORDER)
        extra = f"; {self.already} already processed earlier" if self.already else ""
        return f"{self.source}: {verb} {parts}{extra}"


class InboxState:
    """``returned-mail.sqlite``: the processed Message-IDs and the bounce scores."""

    def __init__(self, folder: Path, *, write: bool) -> None:
        path = folder / STATE_FILE
        self.conn: sqlite3.Connection | None = None
        if write or path.exists():
            self.conn = sqlite3.connect(sqlite_uri(path, read_only=not write), uri=True, isolation_level=None, timeout=60)
            if write:
                self.conn.execute("PRAGMA journal_mode=WAL")
                # no fsync per message: a power cut can lose the last few "processed" marks, and the
                # next run then handles those messages again, which step 4 makes harmless
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self.conn.executescript(_SCHEMA)

    def processed(self, key: str) -> bool:
        """True when a returned message with this key was handled by an earlier run."""
        return self.conn is not None and self.conn.execute("SELECT 1 FROM processed WHERE message_key = ?", (key,)).fetchone() is not None

    def remember(self, key: str, kind: str, match: Match | None, detail: dict[str, Any], at: str) -> None:
        """Mark a message handled, with whom and which issue it was about (for `status`)."""
        assert self.conn is not None
        self.conn.execute(
            "INSERT OR IGNORE INTO processed (message_key, kind, address, month, at, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (key, kind, match.address if match else None, match.month if match else None, at, json.dumps(detail, ensure_ascii=False)),
        )

    def score(self, address: str) -> tuple[float, str | None]:
        """An address's bounce score and the UTC day it last scored (0 and None when it never did)."""
        if self.conn is None:
            return 0.0, None
        row = self.conn.execute("SELECT score, last_day FROM scores WHERE key = ?", (address.lower(),)).fetchone()
        return (row[0], row[1]) if row else (0.0, None)

    def set_score(self, address: str, score: float, day: str) -> None:
        """Store an address's new score, counted on ``day``."""
        assert self.conn is not None
        self.conn.execute("INSERT OR REPLACE INTO scores (key, score, last_day) VALUES (?, ?, ?)", (address.lower(), score, day))

    def close(self) -> None:
        """Close the state file."""
        if self.conn is not None:
            self.conn.close()


def message_key(returned: Returned, data: bytes) -> str:
    """What identifies a returned message across runs."""
    return returned.message_id or "sha256:" + hashlib.sha256(data).hexdigest()


class _Context:
    """What identifying a message needs: the config, the secret, the send records, the store."""

    def __init__(self, folder: Path, config: Config, secret: bytes | None, store: Any) -> None:
        self.config, self.secret, self.store = config, secret, store
        self.records = SendRecords(folder)
        self.list_id = list_id(config).rpartition("<")[2].rstrip(">").lower()

    def by_verp(self, returned: Returned) -> Match | None:
        """The reader whose VERP token (checked against the send record row it names) the message carries."""
        if not self.config.bounces_address or self.secret is None:
            return None
        # where the message came to, then our own envelope sender quoted back: the attached original's
        # Return-Path and an ARF report's Original-Mail-From (complaints go to the feedback address, not the VERP one)
        quoted = [returned.original_headers.get("Return-Path", "")] + [f.evidence.get("original_mail_from", "") for f in returned.failures]
        for recipient in [*returned.recipients_to, *(q.strip().strip("<>") for q in quoted if q)]:
            token = token_of(self.config.bounces_address, recipient)
            reference = read_token(token) if token else None
            if reference is None:
                continue
            for address in self.records.addresses_of_row(reference.month, reference.row_id):
                if verify(self.secret, reference, address):
                    return Match(address, reference.month, "verp")
        return None

    def by_message_id(self, message_ids: tuple[str, ...]) -> Match | None:
        """The reader we sent one of these Message-IDs to."""
        for message_id in message_ids:
            found = self.records.by_message_id(message_id)
            if found:
                return Match(found[1], found[0], "message-id")
        return None

    def ours(self, original: dict[str, str]) -> bool:
        """True when the attached original provably is our list's message (its List-Id or Feedback-ID)."""
        list_header = original.get("List-Id", "").lower()
        if self.list_id and f"<{self.list_id}>" in list_header:
            return True
        feedback = parse_feedback_id(original.get("Feedback-ID", ""))
        if feedback and feedback[1:] == tuple(parse_feedback_id(feedback_id(self.config, feedback[0])) or ())[1:]:
            return True
        return self.config.sender_email.lower() in original.get("From", "").lower() and bool(list_header)

    def known(self, address: str) -> bool:
        """True for an address we sent to or have in the store."""
        return self.records.was_sent_to(address) or (self.store is not None and self.store.status_of(address) is not None)

    def identify(self, returned: Returned) -> Match | None:
        """Whose the message is, in the order of the module docstring; None when not provably a reader's."""
        if returned.kind == UNSUBSCRIBE:
            return self.by_token(returned.unsubscribe_tokens)
        match = self.by_verp(returned) or self.by_message_id(tuple(x for x in (returned.original_message_id,) if x))
        if match or returned.kind == AUTO_REPLY:
            return match or self.by_message_id(returned.references)
        if not self.ours(returned.original_headers):
            return None
        feedback = parse_feedback_id(returned.original_headers.get("Feedback-ID", ""))
        for failure in returned.failures:
            if failure.address and self.known(failure.address):
                how = "final-recipient" if returned.kind != COMPLAINT else "original-to"
                return Match(failure.address, feedback[0] if feedback else None, how)
        return None

    def by_token(self, tokens: tuple[str, ...]) -> Match | None:
        """The reader a sealed unsubscribe token (from the mailto subject) was made for."""
        if self.secret is None:
            return None
        for token in tokens:
            try:
                return Match(unseal(self.secret, "unsubscribe", token), None, "token")
            except TokenError:
                continue
        return None


def _failure_for(returned: Returned, address: str) -> Failure | None:
    for failure in returned.failures:
        if failure.address and failure.address.lower() == address.lower():
            return failure
    return returned.failures[0] if returned.failures else None


def process(
    folder: Path, config: Config, source: Source, *, secret: bytes | None, dry_run: bool = False,
    clock: Callable[[], float] = time.time,
) -> InboxReport:
    """Read every message of ``source`` and act on the ones about our list (see the module docstring)."""
    report = InboxReport(source.description, dry_run)
    store = _open_store(folder, write=not dry_run)
    state = InboxState(folder, write=not dry_run)
    try:
        context = _Context(folder, config, secret, store)
        for key, data in source.messages():
            _one(key, data, source, context, state, report, dry_run=dry_run, clock=clock)
    finally:
        state.close()
        if store is not None:
            store.close()
    return report


def read_inbox(
    folder: Path, *, imap: str | None = None, maildir: Path | None = None, mbox: Path | None = None, dry_run: bool = False,
    env: Mapping[str, str] | None = None, password_prompt: Callable[[str], str] | None = None,
    clock: Callable[[], float] = time.time,
) -> InboxReport:
    """``newsletter inbox``: load the config and NEWSLETTER_SECRET, open the named mailbox, process it."""
    env = os.environ if env is None else env
    config = load_config(folder, env)
    secret = env.get(SECRET_ENV)
    source = open_source(imap=imap, maildir=maildir, mbox=mbox, read_only=dry_run, env=env, password_prompt=password_prompt)
    try:
        report = process(folder, config, source, secret=secret.encode("utf-8") if secret else None, dry_run=dry_run, clock=clock)
    finally:
        source.close()
    if not secret:
        report.lines.insert(0, f"note: {SECRET_ENV} is not set, so VERP addresses and mailto unsubscribe tokens cannot be checked; "
                               "bounces are matched by Message-ID only and unsubscribe requests are left alone")
    return report


def _open_store(folder: Path, *, write: bool) -> Any:
    from newsletter.audience.store import STORE_FILE, SubscriberStore

    if not write and not (folder / STORE_FILE).exists():
        return None
    return SubscriberStore.open(folder)


def _one(key: str, data: bytes, source: Source, context: _Context, state: InboxState, report: InboxReport, *, dry_run: bool, clock: Callable[[], float]) -> None:
    returned = classify(data, unsubscribe_address=context.config.unsubscribe_email)
    mkey = message_key(returned, data)
    shown = _shown(returned)
    if returned.kind != OTHER and state.processed(mkey):
        report.already += 1
        if source.can_move and not dry_run:
            source.move_to_processed(key)  # a crash came between remembering it and moving it
        return
    if returned.kind == OTHER:
        report.counts["left alone"] += 1
        return
    match = context.identify(returned)
    if match is None:
        if returned.kind == AUTO_REPLY:
            report.counts["left alone"] += 1  # an auto-reply to something else: not ours to move
            return
        report.counts["unmatched"] += 1
        report.lines.append(f"unmatched  {shown}: {returned.why}, but not tied to a reader of this list; left where it is")
        return
    at = datetime.fromtimestamp(clock(), tz=timezone.utc)
    detail = _detail(returned, match, source)
    line = _act(returned, match, detail, context, state, at, dry_run=dry_run)
    report.counts[_COUNTER[returned.kind]] += 1
    report.lines.append(("would: " if dry_run else "") + line)
    if dry_run:
        return
    state.remember(mkey, returned.kind, match, detail, at.isoformat(timespec="seconds"))
    if source.can_move:
        source.move_to_processed(key)


def _detail(returned: Returned, match: Match, source: Source) -> dict[str, Any]:
    """The evidence stored with the event: DSN Status, Diagnostic-Code, reporting MTA, date, and where it came from."""
    failure = _failure_for(returned, match.address)
    detail: dict[str, Any] = dict(failure.evidence) if failure else {}
    detail.setdefault("date", returned.date or "")
    detail.update({"returned_message_id": returned.message_id, "subject": returned.subject[:200], "matched_by": match.matched_by,
                   "source": source.description})
    if match.month:
        detail["issue"] = match.month
    return {k: v for k, v in detail.items() if v not in (None, "")}


def _act(returned: Returned, match: Match, detail: dict[str, Any], context: _Context, state: InboxState, at: datetime, *, dry_run: bool) -> str:
    """Apply one message's effect to the store; the report line."""
    store, address = context.store, match.address
    issue = f" ({match.month})" if match.month else ""
    if returned.kind == AUTO_REPLY:
        return f"auto-reply {address}{issue}: ignored"
    if returned.kind == UNSUBSCRIBE:
        if not dry_run:
            store.unsubscribe(address, via="mailto")
        return f"unsubscribe {address}: by mail (signed token in the subject)"
    status = store.status_of(address) if store is not None else None
    if returned.kind == COMPLAINT:
        if not dry_run:
            store.set_status(address, "complained", event="complained", detail=detail)
        return f"complaint  {address}{issue}: marked complained, never sent to again"
    evidence = " ".join(str(detail[k]) for k in ("status", "diagnostic_code") if k in detail) or returned.why
    kind = _failure_for(returned, address).kind if returned.failures else returned.kind  # type: ignore[union-attr]
    label = "hard" if kind == HARD else "soft"
    if status in ("unsubscribed", "bounced", "complained", "forgotten"):
        if not dry_run:
            store.record_event(address, "bounced" if kind == HARD else "soft-bounce", detail=dict(detail, note=f"already {status}; not scored"))
        return f"{label} bounce {address}{issue}: {evidence}; already {status}"
    day = at.date().isoformat()
    score, last_day = state.score(address)
    if last_day and (at.date() - datetime.fromisoformat(last_day).date()).days > STALE_DAYS:
        score = 0.0  # the last bounce is old: start again, as Mailman does
    counted = last_day != day
    if counted:
        score += SCORES[kind]
    detail.update(score=score, counted=counted, threshold=context.config.bounce_threshold)
    bounced = kind == HARD or score >= context.config.bounce_threshold
    if not dry_run:
        if counted:
            state.set_score(address, score, day)
        if bounced:
            store.set_status(address, "bounced", event="bounced", detail=detail)
        else:
            store.record_event(address, "soft-bounce", detail=detail)
    outcome = "marked bounced" if bounced else f"score {score:g} of {context.config.bounce_threshold:g}" + ("" if counted else " (already counted today)")
    return f"{label} bounce {address}{issue}: {evidence}; {outcome}"


def _shown(returned: Returned) -> str:
    return f"{returned.message_id or '(no Message-ID)'} {returned.subject[:60]!r}"


def bounces_by_issue(folder: Path, month: str) -> dict[str, int]:
    """How many hard and soft bounces, complaints and auto-replies came back about one issue."""
    path = folder / STATE_FILE
    if not path.exists():
        return {}
    try:
        with closing(sqlite3.connect(sqlite_uri(path, read_only=True), uri=True, timeout=10)) as conn:
            rows = conn.execute("SELECT kind, COUNT(*) FROM processed WHERE month = ? GROUP BY kind", (month,)).fetchall()
    except sqlite3.DatabaseError as exc:
        raise NewsletterError(f"cannot read {STATE_FILE}: {exc}", path=str(path), hint="move the damaged file aside; `newsletter inbox` starts a new one") from None
    return dict(rows)


__all__ = ["InboxReport", "PROCESSED", "STATE_FILE", "bounces_by_issue", "process", "read_inbox"]
