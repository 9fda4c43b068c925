"""How often a running send reports progress, and the progress line a log gets.

The send loop calls back once per recipient (thousands a second); printing each
would flood a terminal (a redraw per message was 2.6 MB for 30,000 messages) or
a cron log.  ``ProgressThrottle`` passes on at most ``TERMINAL_INTERVAL``
redraws a second on a terminal, and off a terminal a line only when both
``LOG_INTERVAL`` seconds and ``LOG_STEP`` of the list have gone by since the
last one (every 10 s or every 5 %, whichever is rarer).  It knows nothing of
how the output looks on a terminal; the CLI draws.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

TERMINAL_INTERVAL = 0.1  # at most 10 redraws a second
LOG_INTERVAL = 10.0  # seconds between progress lines off a terminal, at least
LOG_STEP = 0.05  # share of the list between progress lines off a terminal, at least


@dataclass(frozen=True)
class ProgressSnapshot:
    """Where a send stands: how many are done of the total, by outcome, after how long."""

    done: int
    total: int
    elapsed: float
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Messages finished per second so far."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far; None before anything is done."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    def line(self) -> str:
        """The progress line for logs: counts, rate and ETA."""
        share = f" ({self.done * 100 // self.total}%)" if self.total else ""
        outcomes = ", ".join(f"{self.counts.get(state, 0):,} {state}" for state in ("sent", "failed", "deferred"))
        if self.counts.get("uncertain"):
            outcomes += f", {self.counts['uncertain']:,} uncertain"
        return f"progress: {self.done:,} of {self.total:,}{share}: {outcomes}; {self.rate:,.0f} msg/s, ETA {format_duration(self.eta)}"


def format_duration(seconds: float | None) -> str:
    """'1:02:03', '2:03' or '--:--' when unknown."""
    if seconds is None:
        return "--:--"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressThrottle:
    """Called once per finished recipient (from any worker thread); calls ``emit`` only now and then.

    ``terminal``: at most one call per ``interval`` (default 0.1 s) plus the last one, for a
    redrawn bar.  Otherwise: a call once both ``interval`` (default 10 s) and ``step`` of the
    total have passed since the previous one, for a log line.
    """

    def __init__(self, total: int, emit: Callable[[ProgressSnapshot], None], *, terminal: bool,
                 interval: float | None = None, step: float = LOG_STEP, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.emit = emit
        self.terminal = terminal
        self.interval = interval if interval is not None else (TERMINAL_INTERVAL if terminal else LOG_INTERVAL)
        self.step = 0 if terminal else max(1, int(total * step + 0.999999))  # messages between log lines, rounded up
        self.clock = clock
        self.started = clock()
        self.counts: dict[str, int] = {}
        self.done = 0
        self._last_time = self.started
        self._last_done = 0
        self._lock = threading.Lock()

    def __call__(self, event: object) -> None:
        """One recipient finished; ``event.state`` is its outcome (sent, failed, deferred, uncertain)."""
        state = str(getattr(event, "state", "sent"))
        with self._lock:
            self.done += 1
            self.counts[state] = self.counts.get(state, 0) + 1
            now = self.clock()
            last = self.terminal and self.done >= self.total  # the bar ends at 100 %
            if not last and (now - self._last_time < self.interval or self.done - self._last_done < self.step):
                return
            self._last_time, self._last_done = now, self.done
            snapshot = ProgressSnapshot(self.done, self.total, now - self.started, dict(self.counts))
            self.emit(snapshot)  # under the lock, so lines never interleave or go backwards
