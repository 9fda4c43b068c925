"""``newsletter send``: deliver an issue to a subscriber list, every subscriber once, resumable.

Two steps so the CLI can ask for confirmation in between: ``prepare`` checks
the issue, loads the list into a staged send record and counts; ``execute``
installs the record and runs the workers.  The core never imports click;
progress goes through a callback.

The loop: worker threads, each holding one connection from the sender, take
recipients from the send record (``ledger.Ledger``) in list order.  For each:
wait for the shared rate limiter, personalise the pre-encoded message, commit
the row as ``sending`` (fsync), hand over, record the outcome.  Temporary
failures are retried with exponential backoff up to ``max_attempts`` and then
left ``deferred`` (a later run retries them); permanent ones are recorded with
the server's reply.  When the server itself is gone (repeated connection-level
failures) the run stops early and leaves the rest pending for the next run.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Container, Iterator, Mapping

from newsletter.content.addresses import is_valid_address
from newsletter.content.config import load_config, rate_error
from newsletter.errors import NewsletterError, SendError, ValidationError
from newsletter.delivery.ledger import Ledger, Row, RunLock, ledger_path, now, storage_error, write_new
from newsletter.content.load import display_path, load_issue, resolve_issue_path
from newsletter.mail.headers import one_line
from newsletter.content.model import MONTH_RE, Config, Issue
from newsletter.mail.personalise import Personaliser, random_secret
from newsletter.mail.render import Renderer
from newsletter.mail.tokens import SECRET_ENV
from newsletter.mail.verp import make_token, verp_address
from newsletter.senders import check_connection, load_sender, unused_smtp_note
from newsletter.senders.base import DeliveryError, Outcome, PermanentFailure, PipeliningConnection, Sender, TemporaryFailure, UncertainDelivery, pipelining
from newsletter.audience.manage import open_store
from newsletter.audience.store import STORE_FILE, LiveSuppression, SubscriberStore
from newsletter.audience.subscribers import ReadStats, Subscriber, iter_subscribers, load_suppressed, merge_columns

MAX_ATTEMPTS = 5
RETRY_DELAY = 2.0  # seconds before the first retry; doubled each time
TEST_PREFIX = "[TEST] "
UNCERTAIN_LIMIT = 3  # uncertain outcomes in a row, plus one per connection, stop the run
CLAIM_SIZE = 32  # rows marked sending per fsync; a power cut can leave up to this many per connection uncertain

Progress = Callable[["ProgressEvent"], None]


@dataclass(frozen=True)
class ProgressEvent:
    """One recipient finished (for progress bars): its state and how many are done of the total."""

    address: str
    state: str
    done: int
    total: int


@dataclass
class SendOptions:
    """What the user asked for on the command line."""

    issue: str
    to: Path | None = None
    sender: str | None = None
    dry_run: bool = False
    test: tuple[str, ...] = ()
    rate: float | None = None
    concurrency: int | None = None
    force: bool = False
    resend_uncertain: bool = False
    no_site: bool = False  # do not rebuild site/ after the send
    max_attempts: int = MAX_ATTEMPTS
    retry_delay: float = RETRY_DELAY


@dataclass
class Plan:
    """A checked, counted send waiting for confirmation."""

    folder: Path
    options: SendOptions
    config: Config
    month: str
    subject: str
    sender: Sender
    sender_name: str
    personaliser: Personaliser
    rate: float | None
    concurrency: int
    record: Path
    staged: Path | None  # a new send record, installed by execute()
    resuming: bool
    recipients: int  # after filtering and de-duplication
    to_send: int
    list_stats: ReadStats | None
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)
    counts_before: dict[str, int] = field(default_factory=dict)
    recovered: int = 0  # rows a crashed run left in flight, now uncertain
    lock: RunLock | None = None  # held from planning to the end of execute() (or discard())

    def summary(self) -> list[str]:
        """The lines shown before asking for confirmation."""
        lines = [
            f"issue:      {self.month} ({display_path(resolve_issue_path(self.folder, self.options.issue), self.folder)})",
            f"subject:    {self.subject}",
            f"sender:     {self.sender.describe()}",
        ]
        if self.options.test:
            lines.append(f"test to:    {', '.join(self.options.test)} (no send record is touched)")
        else:
            source = display_path(self.options.to, self.folder) if self.options.to else f"{STORE_FILE} (its confirmed subscribers)"
            lines.append(f"list:       {source}")
            lines.append(f"recipients: {self.recipients} after filtering{self._filter_note()}")
            if self.resuming:
                c = self.counts_before
                lines.append(f"resuming:   {c.get('sent', 0)} already sent, {self.to_send} to send now, {c.get('uncertain', 0)} uncertain")
                if self.recovered:
                    lines.append(f"            ({self.recovered} were being handed over when the last run stopped: uncertain, not resent without --resend-uncertain)")
        lines.append(f"rate:       {f'{self.rate:g} messages/second' if self.rate else 'as fast as the server takes them'}, {self.concurrency} connection(s)")
        if self.config.bounces_address:
            local, _, domain = self.config.bounces_address.rpartition("@")
            lines.append(f"bounces:    to {local}+<token>@{domain}, one signed token per reader (`newsletter inbox` reads them)")
        return lines + self.notes

    def _filter_note(self) -> str:
        s = self.list_stats
        if s is None:
            return ""
        parts = [f"{n} {what}" for n, what in (
            (s.status_skipped, "unsubscribed/bounced"), (s.suppressed, "suppressed"),
            (self.duplicates, "duplicate"), (s.invalid, "invalid"),
        ) if n]
        return f" (skipped: {', '.join(parts)})" if parts else ""

    def envelope_sender(self, address: str, row_id: int | None = None) -> str:
        """The envelope sender (Return-Path) of one message: ``bounces+<token>@domain`` (VERP) for a row
        of the send record when bounces.address is set, the plain bounces address for a test copy,
        else the From address."""
        bounces = self.config.bounces_address
        if not bounces:
            return self.config.sender_email
        if row_id is None:
            return bounces
        return verp_address(bounces, make_token(self.personaliser.secret, self.month, row_id, address))

    def discard(self) -> None:
        """The user said no: remove the staged record and let other runs go ahead."""
        self._remove_staged()
        self.release()

    def release(self) -> None:
        """Give up the run lock (execute() does this when it is done)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _remove_staged(self) -> None:
        if self.staged is not None:
            shutil.rmtree(self.staged.parent, ignore_errors=True)
            self.staged = None


@dataclass
class SendReport:
    """The outcome of a run, for the final report and report.json."""

    month: str
    subject: str
    sender: str
    started: str
    finished: str = ""
    recipients: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    this_run: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (address, reply), the first few
    uncertain: list[str] = field(default_factory=list)
    dry_run: bool = False
    test: bool = False
    interrupted: bool = False
    stopped: str | None = None  # why the run stopped early
    archive: str | None = None
    site: str | None = None  # what happened to the web archive after the send
    notes: list[str] = field(default_factory=list)
    per_message_us: float | None = None

    @property
    def ok(self) -> bool:
        """Nothing failed, nothing left uncertain, not stopped: exit 0 (and archived)."""
        return not self.counts.get("failed") and not self.this_run.get("failed") and not self.counts.get("uncertain") \
            and not self.interrupted and not self.stopped

    def as_json(self) -> dict[str, Any]:
        """The report.json format agreed in INTERFACES.md."""
        keys = ("sent", "failed", "deferred", "uncertain", "pending")
        counts = {k: self.counts.get(k, 0) for k in keys}
        counts["pending"] += self.counts.get("sending", 0)
        return {
            "month": self.month, "subject": self.subject, "sender": self.sender,
            "started": self.started, "finished": self.finished, "recipients": self.recipients, "counts": counts,
        }

    def lines(self) -> list[str]:
        """The human report."""
        out: list[str] = list(self.notes)
        if self.test:
            out.append(f"test: sent {self.this_run.get('sent', 0)} of {sum(self.this_run.values())} test message(s)")
            out += [f"  failed: {a}: {r}" for a, r in self.failures]
            return out
        if self.dry_run:
            out.append(f"dry run: would send {self.this_run.get('would send', 0)} message(s) of {self.subject!r}; nothing was handed over")
            return out
        c = self.counts
        run = ", ".join(f"{n} {s}" for s, n in self.this_run.items() if n) or "nothing to do"
        out.append(f"this run: {run}")
        out.append(
            f"send record: {c.get('sent', 0)} sent, {c.get('failed', 0)} failed, {c.get('deferred', 0)} deferred, "
            f"{c.get('pending', 0) + c.get('sending', 0)} not yet tried, {c.get('uncertain', 0)} uncertain (of {self.recipients})"
        )
        for address, reply in self.failures:
            out.append(f"  failed: {address}: {reply}")
        if c.get("uncertain"):
            out.append(
                f"{c['uncertain']} uncertain: the connection broke after the message was handed over (or the run was killed "
                "mid-hand-over), so they may have received it. They are not sent again; `newsletter status "
                f"{self.month}` lists them, and --resend-uncertain sends to them again."
            )
        if c.get("deferred"):
            out.append(f"{c['deferred']} deferred after repeated temporary failures: run the same command again later to retry them.")
        if self.stopped:
            out.append(f"stopped early: {self.stopped}. Run the same command again to continue.")
        if self.interrupted:
            out.append("interrupted: run the same command again to continue where it stopped; nobody is sent twice.")
        if self.archive:
            out.append(self.archive)
        if self.site:
            out.append(self.site)
        return out


# -- preparing -------------------------------------------------------------------------------------


def resolve_secret(env: Mapping[str, str], *, sender_name: str, relaxed: bool, prompt: Callable[[], str] | None) -> tuple[bytes, str | None]:
    """The HMAC key for unsubscribe tokens, and a note when a random one is used."""
    value = env.get(SECRET_ENV)
    if value:
        return value.encode("utf-8"), None
    if relaxed or sender_name == "maildir":
        return random_secret(), f"note: {SECRET_ENV} is not set; unsubscribe links in this run use a random key (fine for tests and a local outbox)"
    if prompt is not None:
        answer = prompt()
        if answer:
            return answer.encode("utf-8"), None
    raise SendError(
        f"{SECRET_ENV} is not set: it signs each subscriber's unsubscribe link, and the same key must verify it later",
        hint=f"export {SECRET_ENV}=<a long random string you keep> (or run on a terminal to be asked for it)",
    )


def prepare(
    folder: Path,
    options: SendOptions,
    *,
    env: Mapping[str, str] | None = None,
    secret_prompt: Callable[[], str] | None = None,
) -> Plan:
    """Check everything that can be checked before sending, and count the recipients."""
    env = os.environ if env is None else env
    from newsletter.mail.check import check

    report = check(folder, [options.issue])
    if not report.ok:
        raise ValidationError(report.problems)
    config = load_config(folder, env)
    loaded = load_issue(resolve_issue_path(folder, options.issue), config, folder)
    assert loaded.issue is not None
    month = loaded.issue.month
    # Taken before anything reads the send record or the list, and held to the end of execute():
    # a run waiting at the prompt must not find its decisions (resume or --force) made stale
    # by another run that finished meanwhile.  Test copies touch no record and need no lock.
    lock = None if options.test else RunLock(ledger_path(folder, month))
    try:
        plan = _plan(folder, options, env, secret_prompt, config, loaded.issue, month)
        plan.lock = lock
        if not options.test:
            _plan_list(plan)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return plan


def _plan(
    folder: Path, options: SendOptions, env: Mapping[str, str], secret_prompt: Callable[[], str] | None,
    config: Config, issue: Issue, month: str,
) -> Plan:
    sender_name = options.sender or config.sender or "maildir"
    sender = load_sender(sender_name, config, folder, env)
    if options.test:
        bad = [a for a in options.test if not is_valid_address(a)]
        if bad:
            raise SendError(f"--test: not a valid email address: {', '.join(repr(one_line(b)) for b in bad)}", hint="give plain addresses like you@example.org")
    elif options.to is None and not SubscriberStore.exists(folder):
        raise SendError(
            f"no subscriber list given, and no subscriber store ({STORE_FILE}) in this folder",
            hint="add --to subscribers.csv, or import your list once with `newsletter subscribers import subscribers.csv` "
                 "and send to its confirmed subscribers (or --test you@example.org for a test copy)",
        )
    rate = options.rate if options.rate is not None else config.rate
    rate_problem = rate_error(rate, "--rate") if rate is not None else None
    if rate_problem:
        raise SendError(rate_problem, hint="e.g. --rate 10; leave it out to send as fast as the server takes them")
    concurrency = options.concurrency if options.concurrency is not None else (config.concurrency or 1)
    if concurrency < 1:
        raise SendError("--concurrency must be 1 or more")
    secret, note = resolve_secret(env, sender_name=sender_name, relaxed=options.dry_run or bool(options.test), prompt=secret_prompt)
    # the list's columns are the templates' merge fields; test copies (no list) show [column] placeholders
    columns = None if options.test else _columns(folder, options.to)
    personaliser = Personaliser(
        Renderer(folder, config), issue, config, secret, subject_prefix=TEST_PREFIX if options.test else "", columns=columns,
    )
    signer = None
    if config.dkim is not None:  # dkimpy and dnspython (45 ms of imports) only for a send that signs
        from newsletter.mail.dkim import signer_for

        signer = signer_for(config, folder, env)  # a bad key stops here, before anything leaves
    personaliser.signer = None if options.dry_run else signer  # a dry run hands nothing over: nothing to sign
    plan = Plan(
        folder=folder, options=options, config=config, month=month, subject=personaliser.subject,
        sender=sender, sender_name=sender_name, personaliser=personaliser, rate=rate,
        concurrency=min(concurrency, len(options.test)) if options.test else concurrency,
        record=ledger_path(folder, month), staged=None, resuming=False, recipients=0, to_send=0, list_stats=None,
    )
    if note:
        plan.notes.append(note)
    if config.dkim:
        plan.notes.append(f"DKIM: every copy signed as d={config.dkim.domain}, s={config.dkim.selector}")
    smtp_note = unused_smtp_note(config, sender_name, env)
    if smtp_note:
        plan.notes.append(smtp_note)
    if options.test:
        plan.recipients = plan.to_send = len(options.test)
    return plan


def _plan_list(plan: Plan) -> None:
    options, folder = plan.options, plan.folder
    if plan.record.exists():
        with Ledger(plan.record) as ledger:  # under the run lock, taken by prepare()
            plan.recovered = ledger.recovered
            counts = ledger.counts()
            finished = ledger.is_finished()
        if finished and not (options.resend_uncertain and counts["uncertain"]) and not options.force:
            raise SendError(
                f"{plan.month} was already sent: {counts['sent']} sent, {counts['failed']} failed, {counts['uncertain']} uncertain",
                path=display_path(plan.record, folder),
                hint="`newsletter status` shows who got it; --resend-uncertain retries the uncertain ones; --force sends the whole issue again",
            )
        plan.resuming = not (finished and options.force)
        plan.counts_before = counts  # under the run lock: still true when the summary shows them
    elif (folder / "archive" / plan.month).is_dir() and not options.force:
        raise SendError(f"{plan.month} is archived as sent already", path=f"archive/{plan.month}", hint="--force sends it again")
    stats = ReadStats()
    _sweep_staging(folder / "sends", plan.month)
    shown_sends = Path(display_path(folder / "sends", folder))
    try:
        staging_dir = Path(tempfile.mkdtemp(prefix=".staging-", dir=_ensure_dir(folder / "sends")))
    except OSError as exc:  # read-only or full: say where, not a traceback
        raise storage_error("cannot stage the send record", exc, shown_sends) from None
    staged = staging_dir / f"{plan.month}.sqlite"
    try:
        with _Recipients(folder, options.to, stats) as subscribers:
            plan.notes += subscribers.notes
            recipients, duplicates = write_new(staged, subscribers, {"month": plan.month, "issue": options.issue, "subject": plan.subject}, shown=shown_sends)
    except BaseException:
        shutil.rmtree(staging_dir, ignore_errors=True)
        raise
    plan.list_stats, plan.duplicates, plan.recipients = stats, duplicates, recipients
    if not recipients and not plan.resuming:
        # never record (and archive) an issue as "sent" to nobody because of a wrong or broken file
        shutil.rmtree(staging_dir, ignore_errors=True)
        if options.to is None:
            raise SendError(
                "nobody to send to: the subscriber store has no confirmed subscribers", path=STORE_FILE,
                hint="`newsletter subscribers list` shows who is in it; import a list with `newsletter subscribers import FILE`, "
                     "or send to a CSV with --to; nothing was sent or recorded",
            )
        shown = display_path(options.to, folder)
        skipped = "".join(f"\n  skipped {p}" for p in stats.problems[:5])
        raise SendError(
            f"nobody to send to: {shown} has {stats.rows} row(s) and none is sendable{plan._filter_note()}{skipped}",
            path=shown, hint="check that this is the right file, with an email column of valid addresses; nothing was sent or recorded",
        )
    plan.notes += [f"skipped {p}" for p in stats.problems]
    if stats.invalid > len(stats.problems):
        plan.notes.append(f"... and {stats.invalid - len(stats.problems)} more invalid rows")
    plan.staged = staged
    if plan.resuming:
        c = plan.counts_before
        plan.to_send = c["pending"] + c["deferred"] + (c["uncertain"] if options.resend_uncertain else 0)
        plan.notes.append("(new subscribers in the list are added; ones no longer in it are not sent to)")
    else:
        plan.to_send = recipients


def _sweep_staging(sends: Path, month: str) -> None:
    """Remove what a killed run of ``month`` left staged: a whole copy of the list, kept forever
    otherwise.  Called under that issue's run lock, so no live run of it is staging; another
    month's staging folder never holds this month's file and is left alone."""
    for leftover in sends.glob(f".staging-*/*{month}.sqlite*"):
        shutil.rmtree(leftover.parent, ignore_errors=True)


def _ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- executing -------------------------------------------------------------------------------------


class RateLimiter:
    """At most ``rate`` hand-overs in any window of max(1 s, 1/rate), across all threads.

    With k = max(1, floor(rate)) it remembers the last k start times and lets
    the next start only once the oldest is a full window old; so no one-second
    window ever holds more than ``rate`` messages.
    """

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.clock, self.sleep = clock, sleep
        self.slots = max(1, math.floor(rate)) if rate else 0
        self.window = max(1.0, 1.0 / rate) if rate else 0.0
        self.starts: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a hand-over may start; return its start time."""
        if not self.rate:
            return self.clock()
        with self._lock:  # holding the lock while sleeping queues the threads fairly
            while True:
                t = self.clock()
                if len(self.starts) < self.slots:
                    break
                wait = self.starts[0] + self.window - t
                if wait <= 0:
                    self.starts.popleft()
                    break
                self.sleep(wait)
            self.starts.append(t)
            return t


@dataclass(order=True)
class _Retry:
    due: float
    seq: int
    row: Row = field(compare=False)
    tries: int = field(compare=False)


class _Queue:
    """Recipients to work on: retries that are due first, then fresh rows from the record in list order."""

    def __init__(self, rows: Iterator[Row]) -> None:
        self.rows = rows
        self.cond = threading.Condition()
        self.retries: list[_Retry] = []
        self.seq = itertools.count()
        self.in_flight = 0
        self.exhausted = False
        self.stopped = False

    def take(self, block: bool = True) -> tuple[Row, int] | None:
        with self.cond:
            while True:
                if self.stopped:
                    return None
                t = time.monotonic()
                if self.retries and self.retries[0].due <= t:
                    item = heapq.heappop(self.retries)
                    self.in_flight += 1
                    return item.row, item.tries
                if not self.exhausted:
                    row = next(self.rows, None)
                    if row is not None:
                        self.in_flight += 1
                        return row, 0
                    self.exhausted = True
                    continue
                if not block:
                    return None
                if not self.retries and self.in_flight == 0:
                    self.cond.notify_all()
                    return None
                self.cond.wait(self.retries[0].due - t if self.retries else None)

    def done(self) -> None:
        with self.cond:
            self.in_flight -= 1
            if not self.in_flight:  # the only change a waiting take() acts on (the last one out ends the run)
                self.cond.notify_all()

    def retry(self, row: Row, tries: int, delay: float) -> None:
        with self.cond:
            heapq.heappush(self.retries, _Retry(time.monotonic() + delay, next(self.seq), row, tries))
            self.in_flight -= 1
            self.cond.notify_all()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()


class _Run:
    """The state shared by the workers of one run."""

    def __init__(self, plan: Plan, ledger: Ledger, report: SendReport, progress: Progress | None, total: int,
                 suppressed: Container[str] | None = None) -> None:
        self.plan, self.ledger, self.report, self.progress = plan, ledger, report, progress
        self.limiter = RateLimiter(plan.rate)
        self.lock = threading.Lock()
        self.done = 0
        self.total = total
        self.claimed = 0  # rows taken by claims so far (a retried row counts again)
        self.consecutive_unreachable = 0
        self.consecutive_uncertain = 0
        self.fatal: BaseException | None = None
        states = ("pending", "deferred", "uncertain") if plan.options.resend_uncertain else ("pending", "deferred")
        self.withdrawn = 0
        self.queue = _Queue(self._feed(ledger.rows(states), suppressed))
        # Rows claimed per fsync.  A power cut can leave a whole claim uncertain, so claim one
        # at a time when a rate limit makes the fsync cost irrelevant anyway.
        # Small lists get small claims so that the work spreads over all connections.
        self.claim_size = max(1, min(CLAIM_SIZE, total // (8 * plan.concurrency))) if not plan.rate or plan.rate >= 50 * plan.concurrency else 1

    def _feed(self, rows: Iterator[Row], suppressed: Container[str] | None) -> Iterator[Row]:
        """The rows to send, less anyone the subscriber store suppressed since the list was loaded
        (unsubscribed mid-send): dropped from the record and counted, never sent.  Runs under the
        queue's lock, so the counters need no other."""
        for row in rows:
            if suppressed is not None and row.address in suppressed:
                self.ledger.drop(row.id)
                self.withdrawn += 1
                self.total -= 1
                continue
            yield row

    def finished_one(self, row: Row, state: str, reply: str | None) -> None:
        with self.lock:
            self.done += 1
            self.report.this_run[state] = self.report.this_run.get(state, 0) + 1
            if state == "failed" and len(self.report.failures) < 20:
                self.report.failures.append((row.address, reply or ""))
            if state == "sent" or state == "failed":
                self.consecutive_unreachable = self.consecutive_uncertain = 0
            done = self.done
        if self.progress:
            self.progress(ProgressEvent(row.address, state, done, self.total))

    def unreachable(self, reply: str) -> None:
        """A connection-level temporary failure; many in a row mean the server is gone: stop."""
        with self.lock:
            self.consecutive_unreachable += 1
            if self.consecutive_unreachable >= 5 + 3 * self.plan.concurrency and not self.report.stopped:
                self.report.stopped = f"the server is not accepting connections ({reply})"
                self.queue.stop()

    def uncertain(self, reply: str) -> None:
        """The data went out and no answer came back.  A server that takes messages and never
        answers (or closes, or trickles) would turn the whole list uncertain, a timeout each:
        a few in a row with no success between stop the run, leaving the rest pending."""
        with self.lock:
            self.consecutive_uncertain += 1
            if self.consecutive_uncertain >= UNCERTAIN_LIMIT + self.plan.concurrency and not self.report.stopped:
                self.report.stopped = f"{self.consecutive_uncertain} messages in a row got no answer after their data was sent ({reply})"
                self.queue.stop()

    def work(self) -> None:
        try:
            connection = pipelining(self.plan.sender.connect())
        except BaseException as exc:  # noqa: BLE001 - reported by execute()
            self.fail(exc)
            return
        claimed: list[tuple[Row, int, str]] = []
        waiting: dict[int, Row] = {}  # submitted, outcome not known yet (a pipelining connection)
        try:
            while True:
                if not claimed:
                    claimed = self.claim(block=False)
                    if not claimed:
                        connection.flush()  # nothing to overlap with: finish before waiting for more
                        claimed = self.claim()
                        if not claimed:
                            break
                row, tries, message_id = claimed.pop(0)
                if self.queue.stopped:
                    claimed.insert(0, (row, tries, message_id))
                    break
                self.submit_one(connection, row, tries, message_id, waiting)
            connection.flush()  # stopping or done: the message on its way is finished, not dropped
        except BaseException as exc:  # noqa: BLE001 - reported by execute()
            self.abandon(waiting, exc)
            self.fail(exc)
        finally:
            if claimed:  # stopping: the claimed rows that never left go back to pending
                try:
                    self.ledger.release([row.id for row, _, _ in claimed])
                except NewsletterError as exc:  # a full disk: never handed over, so the next run takes them as pending
                    self.fail(exc)
                finally:
                    for _ in claimed:
                        self.queue.done()
            connection.close()

    def claim(self, block: bool = True) -> list[tuple[Row, int, str]]:
        """Take up to ``claim_size`` recipients and mark them sending with one (shared) fsync;
        without ``block``, only those ready now."""
        first = self.queue.take(block)
        if first is None:
            return []
        taken = [first]
        limit = self.claim_limit()
        while len(taken) < limit:
            more = self.queue.take(block=False)
            if more is None:
                break
            taken.append(more)
        with self.lock:
            self.claimed += len(taken)
        message_ids = self.plan.personaliser.make_message_ids(len(taken))
        claimed = [(row, tries, message_id) for (row, tries), message_id in zip(taken, message_ids)]
        try:
            self.ledger.claim([(row.id, message_id) for row, _, message_id in claimed])
        except BaseException:
            for _ in claimed:
                self.queue.done()
            raise
        return claimed

    def claim_limit(self) -> int:
        """Rows for the next claim: ``claim_size``, but near the end of the list only a fair share of
        what is left, so that the connections finish together.  A whole claim taken late keeps one
        connection busy while the others wait: 18 messages on a 20 ms round trip is a third of a
        second, a tenth of a 600-message send."""
        with self.lock:
            left = self.total - self.claimed
        return max(1, min(self.claim_size, left // self.plan.concurrency))

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.fatal is None:
                self.fatal = exc
        self.queue.stop()

    def submit_one(self, connection: PipeliningConnection, row: Row, tries: int, message_id: str, waiting: dict[int, Row]) -> None:
        """Personalise and hand over one message; its outcome is recorded when the connection
        reports it (at once, or during the next hand-over on a pipelining connection)."""
        plan, ledger = self.plan, self.ledger
        self.limiter.acquire()
        message = plan.personaliser.personalise(row.address, row.name, fields=row.fields, message_id=message_id)
        # claimed durably (fsync) earlier; marked handed just before its content leaves
        waiting[row.id] = row

        def done(outcome: Outcome) -> None:
            del waiting[row.id]
            self.record(row, tries, outcome)

        content = message.pieces if getattr(connection, "takes_pieces", False) else message.data
        connection.submit(plan.envelope_sender(row.address, row.id), row.address, content,
                          handing_over=lambda: ledger.mark_handed(row.id), done=done)

    def record(self, row: Row, tries: int, outcome: Outcome) -> None:
        """Record one hand-over's outcome: sent, failed, uncertain, or retried later."""
        plan, ledger = self.plan, self.ledger
        if isinstance(outcome, TemporaryFailure):
            tries += 1
            if outcome.code is None or outcome.code == 421:
                self.unreachable(outcome.reply)
            if tries >= plan.options.max_attempts:
                ledger.mark_result(row.id, "deferred", outcome.reply)
                self.finished_one(row, "deferred", outcome.reply)
                self.queue.done()
            else:
                ledger.mark_result(row.id, "pending", outcome.reply)
                self.queue.retry(row, tries, plan.options.retry_delay * 2 ** (tries - 1))
            return
        state = "failed" if isinstance(outcome, PermanentFailure) else "uncertain" if isinstance(outcome, DeliveryError) else "sent"
        reply = outcome.reply if isinstance(outcome, DeliveryError) else outcome
        ledger.mark_result(row.id, state, reply)
        self.finished_one(row, state, reply)
        if state == "uncertain":
            self.uncertain(reply)
        self.queue.done()

    def abandon(self, waiting: dict[int, Row], exc: BaseException) -> None:
        """The rows whose hand-over an exception interrupted.  A NewsletterError is the sender
        saying no retry can help (login refused, sender address refused) and that nothing was
        handed over: back to pending for the next run.  Anything else, an unexpected error inside
        a sender plug-in: we cannot know what left, so uncertain."""
        for row_id in list(waiting):
            try:
                if isinstance(exc, NewsletterError):
                    self.ledger.mark_result(row_id, "pending", exc.message)
                else:
                    self.ledger.mark_result(row_id, "uncertain", "the sender failed unexpectedly during the hand-over")
            except NewsletterError:
                pass  # the record cannot be written (a full disk): the hand-over log has the outcome
            del waiting[row_id]
            self.queue.done()


def execute(plan: Plan, progress: Progress | None = None) -> SendReport:
    """Send as planned and return the report; on Ctrl-C the workers finish their message and stop."""
    report = SendReport(plan.month, plan.subject, plan.sender.describe(), now())
    report.notes = [n for n in plan.notes if n.startswith("note:")]
    if plan.options.test:
        return _send_tests(plan, report)
    try:
        if plan.lock is None:  # what it planned (resume, or a new record) may be stale by now
            raise SendError(f"this plan for {plan.month} was discarded or already run", hint="prepare the send again")
        if plan.options.dry_run:
            return _dry_run(plan, report)
        return _execute_locked(plan, report, progress)
    finally:
        plan.release()


def _execute_locked(plan: Plan, report: SendReport, progress: Progress | None) -> SendReport:
    assert plan.staged is not None
    if plan.resuming:
        with Ledger(plan.record) as ledger:
            subscribers = _reread(plan)
            added, removed = ledger.merge(subscribers)
        if added or removed:
            report.notes.append(f"the list changed since the last run: {added} added, {removed} no longer in it (not sent to)")
        plan._remove_staged()
    else:
        if plan.record.exists():  # --force on a finished issue: keep the old record beside
            if not plan.options.force:  # cannot happen under the lock; never replace a record silently
                raise SendError(f"{plan.month} has a send record that this run did not plan for", path=display_path(plan.record, plan.folder), hint="run the same command again")
            stamp = now().replace(":", "")
            os.replace(plan.record, plan.record.with_name(f"{plan.month}.{stamp}.sqlite"))
        os.replace(plan.staged, plan.record)
        plan._remove_staged()
    ledger = Ledger(plan.record)
    store: SubscriberStore | None = None
    live: LiveSuppression | None = None
    try:
        recovered = plan.recovered + ledger.recovered
        if recovered:
            report.notes.append(
                f"{recovered} recipient(s) were being handed over when the last run stopped: now uncertain"
                + (" (sent again now, as asked)" if plan.options.resend_uncertain else "")
            )
        if plan.options.resend_uncertain:
            ledger.resend_uncertain()
        ledger.start_run()
        meta = ledger.meta()
        report.started = meta.get("started") or report.started
        if "started" not in meta:
            ledger.set_meta(started=report.started, sender=report.sender)
        counts = ledger.counts()
        if SubscriberStore.exists(plan.folder):
            store = SubscriberStore.open(plan.folder)
            live = store.live_suppression()
        run = _Run(plan, ledger, report, progress, counts["pending"] + counts["deferred"], live)
        threads = [threading.Thread(target=run.work, name=f"send-{i}", daemon=True) for i in range(plan.concurrency)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        except KeyboardInterrupt:
            report.interrupted = True
            run.queue.stop()
            for thread in threads:
                thread.join()
        if run.withdrawn:
            report.notes.append(f"{run.withdrawn} reader(s) unsubscribed (or bounced, complained) after the list was loaded: not sent to")
        report.counts = ledger.counts()
        report.recipients = sum(report.counts.values())
        report.uncertain = [r.address for r in itertools.islice(ledger.rows(("uncertain",)), 20)]
        if not report.failures:
            report.failures = [(r.address, r.last_reply or "") for r in itertools.islice(ledger.rows(("failed",)), 20)]
        finished = ledger.is_finished() and not report.interrupted
        report.finished = now()
        if finished:
            ledger.set_meta(finished=report.finished)
    finally:
        ledger.close()
        if live is not None:
            live.close()
        if store is not None:
            store.close()
    if run.fatal is not None:
        if isinstance(run.fatal, NewsletterError):
            raise run.fatal
        raise run.fatal
    if finished and report.counts.get("uncertain"):
        # Archiving says "sent"; some of these may not have arrived.  The author decides.
        report.archive = (
            f"not archived: {report.counts['uncertain']} uncertain. Once you have decided about them "
            f"(--resend-uncertain, or leave them), `newsletter archive {plan.month}` archives the issue."
        )
    elif finished:
        report.archive = _archive(plan, report)
        report.site = _refresh_site(plan)
    return report


class _Recipients:
    """Who a send goes to, as a context manager yielding ``Subscriber``s: the rows of ``--to CSV``, or the
    store's confirmed subscribers.  Either way the store's suppressions (unsubscribed, bounced,
    complained, forgotten) and suppressed.txt apply."""

    def __init__(self, folder: Path, to: Path | None, stats: ReadStats | None = None) -> None:
        self.folder, self.to, self.stats = folder, to, stats if stats is not None else ReadStats()
        self.store: SubscriberStore | None = None
        self.notes: list[str] = []

    def __enter__(self) -> "_Recipients":
        if self.to is None or SubscriberStore.exists(self.folder):
            self.store, self.notes = open_store(self.folder)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.store is not None:
            self.store.close()

    def __iter__(self) -> Iterator[Subscriber]:
        if self.to is not None:
            suppressed: Container[str] = load_suppressed(self.folder)
            if self.store is not None:
                suppressed = _Either(suppressed, self.store.suppression())
            yield from iter_subscribers(self.to, suppressed=suppressed, stats=self.stats, display=display_path(self.to, self.folder))
            return
        assert self.store is not None
        for subscriber in self.store.confirmed():
            self.stats.rows += 1
            self.stats.yielded += 1
            yield subscriber


class _Either:
    """Suppressed when either list says so."""

    def __init__(self, *lists: Container[str]) -> None:
        self.lists = lists

    def __contains__(self, key: object) -> bool:
        return any(key in lst for lst in self.lists)


def _columns(folder: Path, to: Path | None) -> tuple[str, ...]:
    """The merge fields the templates may use: the CSV's columns, or the fields the store's subscribers have."""
    if to is not None:
        return merge_columns(to, display_path(to, folder))
    with SubscriberStore.open(folder) as store:
        return ("email", "name", *store.field_names("confirmed"))


def _reread(plan: Plan) -> Iterator[Any]:
    with _Recipients(plan.folder, plan.options.to) as recipients:
        yield from recipients


def _archive(plan: Plan, report: SendReport) -> str:
    """Freeze the sent issue (archive.py); a missing or failing archive never undoes the send."""
    try:
        from newsletter.publish import archive
    except ImportError:
        archive = None  # type: ignore[assignment]
    archive_issue = getattr(archive, "archive_issue", None)
    if archive_issue is None:
        return f"not archived: this version has no archive step; run `newsletter archive {plan.month}` when it does"
    try:
        result = archive_issue(plan.folder, plan.options.issue, report=report.as_json(), force=False)
    except NewsletterError as exc:
        return f"sent, but not archived: {exc}"
    return getattr(result, "message", None) or f"archived {plan.month}"


def _refresh_site(plan: Plan) -> str | None:
    """Rebuild site/ once the issue is archived, so the web archive is not left stale; say where it is."""
    from newsletter.publish import DEFAULT_SITE_DIR

    target = plan.folder / DEFAULT_SITE_DIR
    if not target.exists():
        return None if plan.options.no_site else f"no web archive yet: `newsletter site` writes one into {DEFAULT_SITE_DIR}/"
    if plan.options.no_site:
        return f"{DEFAULT_SITE_DIR}/ not rebuilt (--no-site); `newsletter site` rebuilds it"
    from newsletter.publish.site import build_site  # only now: the site builder is a tenth of a send's imports

    try:
        result = build_site(plan.folder)
    except NewsletterError as exc:
        return f"sent, but {DEFAULT_SITE_DIR}/ not rebuilt: {exc}"
    return (f"web archive rebuilt: {display_path(result.directory / 'index.html', plan.folder)} ({result.issues} issue(s)); "
            f"publish the {DEFAULT_SITE_DIR}/ folder at {plan.config.archive_url}")


def _send_tests(plan: Plan, report: SendReport) -> SendReport:
    report.test = True
    report.recipients = len(plan.options.test)
    if plan.options.dry_run:
        report.dry_run = True
        report.notes.append(f"sender checked: {check_connection(plan.sender)}")
        report.this_run = {"would send": len(plan.options.test)}
        return report
    connection = plan.sender.connect()
    try:
        for address in plan.options.test:
            message = plan.personaliser.personalise(address, None)
            try:
                connection.deliver(plan.envelope_sender(address), address, message.data)
            except (TemporaryFailure, PermanentFailure, UncertainDelivery) as exc:
                report.this_run["failed"] = report.this_run.get("failed", 0) + 1
                report.failures.append((address, exc.reply))
            else:
                report.this_run["sent"] = report.this_run.get("sent", 0) + 1
    finally:
        connection.close()
    report.counts = dict(report.this_run)
    report.finished = now()
    return report


def _dry_run(plan: Plan, report: SendReport) -> SendReport:
    """Everything but the hand-over: personalise every message that would go, and count."""
    report.dry_run = True
    report.notes = []  # already shown in the summary
    try:  # connect and log in as the real send will, so a wrong password shows up now
        report.notes.append(f"sender checked: {check_connection(plan.sender)}")
    except BaseException:
        plan.discard()
        raise
    source = plan.record if plan.resuming else plan.staged
    assert source is not None
    states = ("pending", "deferred", "uncertain") if plan.options.resend_uncertain else ("pending", "deferred")
    count = 0
    started = time.perf_counter()
    try:
        with Ledger(source, recover=False) as ledger:
            for row in ledger.rows(states):
                plan.personaliser.personalise(row.address, row.name, fields=row.fields)
                count += 1
    finally:
        plan._remove_staged()
    if count:
        report.per_message_us = (time.perf_counter() - started) / count * 1e6
    report.this_run = {"would send": count}
    report.recipients = plan.recipients
    report.finished = now()
    return report


class NotSentYet(NewsletterError):
    """``status`` of an issue with no send record: not a mistake, an answer (the CLI exits 0)."""

    def __init__(self, month: str, hint: str) -> None:
        super().__init__(f"{month}: not sent yet", hint=hint)
        self.month = month


def example_list(folder: Path) -> str:
    """A subscriber list to name in hints: one that exists in the folder if there is one."""
    for name in ("subscribers.csv", "subscribers.example.csv"):
        if (folder / name).is_file():
            return name
    found = sorted(p.name for p in folder.glob("*.csv"))
    return found[0] if found else "subscribers.csv"


def status(folder: Path, issue: str) -> tuple[dict[str, int], list[Row], dict[str, str]]:
    """The send record of an issue: counts by state, the failed/deferred/uncertain rows, its metadata."""
    config = load_config(folder)
    path = resolve_issue_path(folder, issue)  # refuses 2026-13 as not a month
    month = issue if MONTH_RE.match(issue) else load_issue(path, config, folder, placeholders="warning").issue.month  # type: ignore[union-attr]
    path = ledger_path(folder, month)
    if not path.exists():
        raise NotSentYet(month, f"send it with `newsletter send {month} --to {example_list(folder)}`")
    with Ledger(path, recover=False) as ledger:  # read-only: a running send's rows stay "sending"
        counts = ledger.counts()
        rows = list(ledger.rows(("failed", "deferred", "uncertain", "sending")))
        meta = ledger.meta()
    return counts, rows, meta
