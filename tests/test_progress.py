"""Progress of a send: at most 10 redraws a second on a terminal; off a terminal a line every
10 s or 5 %, whichever is rarer, with counts and an ETA.  Checked on the policy with a fake clock,
and on the real command through a pseudo-terminal and through a pipe, counting what it printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from hypothesis import given, strategies as st

from newsletter.delivery.progress import ProgressSnapshot, ProgressThrottle, format_duration
from terminal_support import run_on_terminal

LINE_RE = re.compile(r"^progress: ([\d,]+) of ([\d,]+) \((\d+)%\): ([\d,]+) sent, ([\d,]+) failed, ([\d,]+) deferred; [\d,]+ msg/s, ETA (\d+:)?\d+:\d\d$")


def feed(throttle: ProgressThrottle, clock: list[float], times: list[float], states: list[str] | None = None) -> None:
    for i, moment in enumerate(times):
        clock[0] = moment
        throttle(SimpleNamespace(state=(states or ["sent"] * len(times))[i]))


@given(st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=400))
def test_terminal_redraws_at_most_ten_times_a_second_and_ends_at_the_total(gaps: list[float]) -> None:
    clock = [0.0]
    shown: list[ProgressSnapshot] = []
    throttle = ProgressThrottle(len(gaps), shown.append, terminal=True, clock=lambda: clock[0])
    times = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    feed(throttle, clock, times)
    moments = [s.elapsed for s in shown[:-1]]
    assert all(b - a >= 0.1 - 1e-9 for a, b in zip([0.0] + moments, moments))
    assert len(shown) <= times[-1] * 10 + 2
    assert shown[-1].done == len(gaps)


@given(st.integers(min_value=1, max_value=3000), st.floats(min_value=0.001, max_value=2.0))
def test_log_lines_need_both_ten_seconds_and_five_percent(total: int, gap: float) -> None:
    clock = [0.0]
    shown: list[ProgressSnapshot] = []
    throttle = ProgressThrottle(total, shown.append, terminal=False, clock=lambda: clock[0])
    feed(throttle, clock, [gap * (i + 1) for i in range(total)])
    previous = ProgressSnapshot(0, total, 0.0)
    for snap in shown:
        assert snap.elapsed - previous.elapsed >= 10 - 1e-6
        assert snap.done - previous.done >= total * 0.05
        previous = snap
    assert len(shown) <= min(20, gap * total / 10)


def test_the_log_line_has_counts_and_eta() -> None:
    clock = [0.0]
    shown: list[ProgressSnapshot] = []
    throttle = ProgressThrottle(1000, shown.append, terminal=False, clock=lambda: clock[0])
    feed(throttle, clock, [0.1 * (i + 1) for i in range(100)], ["sent"] * 97 + ["failed", "deferred", "sent"])
    assert [s.line() for s in shown] == ["progress: 100 of 1,000 (10%): 98 sent, 1 failed, 1 deferred; 10 msg/s, ETA 1:30"]
    assert format_duration(3725) == "1:02:05" and format_duration(None) == "--:--"


def write_list(path: Path, n: int) -> Path:
    path.write_text("email,name\n" + "".join(f"reader{i:05d}@example.org,Reader {i}\n" for i in range(n)), encoding="utf-8")
    return path


def send_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_") or k == "NEWSLETTER_CACHE_DIR"}  # the cache: the session's (conftest)
    env["NEWSLETTER_SECRET"] = "a test secret that is long enough"
    return env


def test_on_a_terminal_the_bar_is_redrawn_at_most_ten_times_a_second(folder: Path) -> None:
    n = 600
    write_list(folder / "list.csv", n)
    started = time.monotonic()
    code, shown = run_on_terminal(["send", "2026-11", "--to", "list.csv", "--yes"], folder, env=send_env(), timeout=300)
    elapsed = time.monotonic() - started  # longer than the send itself, so the bound is generous
    assert code == 0, shown
    redraws = shown.count(b"sending  [")
    assert 1 <= redraws <= 10 * elapsed + 3, (redraws, elapsed)
    assert redraws < n / 4  # a redraw per message would be 600
    assert f"{n}/{n}".encode() in shown  # the last redraw shows every message done
    assert f"this run: {n} sent".encode() in shown
    assert len(shown) < 200 * redraws + 4000  # each redraw one short line, not a flood


def test_off_a_terminal_a_line_every_interval_or_five_percent(folder: Path) -> None:
    n = 300
    write_list(folder / "list.csv", n)
    started = time.monotonic()
    # --rate 100 makes the send last at least 3 s; the hidden --progress-every shortens the 10 s for the test
    proc = subprocess.run([sys.executable, "-m", "newsletter", "send", "2026-11", "--to", "list.csv", "--yes", "--rate", "100", "--progress-every", "0.5"],
                          cwd=folder, env=send_env(), input="", capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("progress:")]
    assert 1 <= len(lines) <= min(20, elapsed / 0.5 + 1), (lines, elapsed)
    done = [int(LINE_RE.match(line).group(1).replace(",", "")) for line in lines]  # every line has counts and ETA
    assert done == sorted(done) and all(b - a >= n * 0.05 for a, b in zip([0] + done, done))
    assert "\r" not in proc.stdout and "sending  [" not in proc.stdout  # no bar in a log
