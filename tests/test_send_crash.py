"""Kill -9 a real `newsletter send` process mid-send, rerun, and check nobody is skipped or sent twice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from process_support import restore_ctrl_c
from send_support import Server, people, write_list

MONTH = "2026-11"


def start_send(folder: Path, csv: Path, server: Server, *extra: str) -> subprocess.Popen:
    env = {**os.environ, **server.env()}
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", MONTH, "--to", str(csv), "--sender", "smtp", "--yes",
         "--rate", "25", "--concurrency", "3", "--folder", str(folder), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=restore_ctrl_c,
    )


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.005)


def uncertain_addresses(folder: Path) -> set[str]:
    out = subprocess.run([sys.executable, "-m", "newsletter", "status", MONTH, "--folder", str(folder)], capture_output=True, text=True, check=True).stdout
    # rows a killed run left "sending" are shown as such; the next run reports them as uncertain
    return set(re.findall(r"^(?:uncertain|sending)\s+(\S+)", out, re.M))


def test_kill_9_at_several_points_then_resume(folder: Path) -> None:
    subscribers = people(80)
    csv = write_list(folder / "list.csv", subscribers + [("broken", "x"), ("READER0005@example.org", "dup")])
    with Server() as server:
        received = server.receiver.received
        reported_uncertain: set[str] = set()
        for threshold in (0, 15, 40, 60):
            proc = start_send(folder, csv, server)
            if threshold == 0:
                time.sleep(0.4)  # while it is still starting up or loading the list
            else:
                wait_for(lambda: len(received()) >= threshold or proc.poll() is not None)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if (folder / "sends" / f"{MONTH}.sqlite").exists():
                reported_uncertain |= uncertain_addresses(folder)
        assert len(received()) >= 60
        final = start_send(folder, csv, server, "--resend-uncertain")
        output, _ = final.communicate(timeout=60)
        assert final.returncode == 0, output
        counts = Counter(g.rcpt for g in received())
    expected = {address for address, _ in subscribers}
    assert set(counts) == expected  # nobody skipped, nobody extra
    duplicated = {address for address, n in counts.items() if n > 1}
    assert duplicated <= reported_uncertain  # sent twice only if reported uncertain
    assert max(counts.values()) <= 2
    assert "80 sent" in output


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_or_kill_stops_cleanly_and_the_rerun_sends_the_rest_once(folder: Path, stop: signal.Signals) -> None:
    subscribers = people(60)
    csv = write_list(folder / "list.csv", subscribers)
    with Server() as server:
        received = server.receiver.received
        proc = start_send(folder, csv, server)
        wait_for(lambda: len(received()) >= 10 or proc.poll() is not None)
        proc.send_signal(stop)
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 130, output
        assert "interrupted: run the same command again" in output
        # The workers finish the message they are on, so normally nothing is in flight. Under heavy
        # load a row can still be left uncertain (seen once in CI-like runs; see the closing note of
        # the send issue): the guarantee we hold to is the issue's, never twice unless uncertain.
        uncertain = uncertain_addresses(folder)
        assert len(uncertain) <= 3
        first = len(received())
        assert first < 60
        rerun = start_send(folder, csv, server, *(["--resend-uncertain"] if uncertain else []))
        output, _ = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, output
        counts = Counter(g.rcpt for g in received())
    assert set(counts) == {address for address, _ in subscribers}
    assert {a for a, n in counts.items() if n > 1} <= uncertain
    if not uncertain:
        assert f"this run: {60 - first} sent" in output


def test_a_staged_list_left_by_a_killed_run_is_swept_by_the_next(folder: Path) -> None:
    """A run killed at the prompt (or while staging) leaves sends/.staging-*/<month>.sqlite, a copy
    of the whole list; the next run of that issue, holding its lock, removes it.  Another month's
    staging is not this run's to touch."""
    from newsletter.delivery.send import SendOptions, prepare

    sends = folder / "sends"
    for name, month in (("killed", MONTH), ("other", "2026-12")):
        (sends / f".staging-{name}").mkdir(parents=True)
        (sends / f".staging-{name}" / f"{month}.sqlite").write_bytes(b"a copy of the list")
    csv = write_list(folder / "list.csv", people(2))
    plan = prepare(folder, SendOptions(issue=MONTH, to=csv, sender="maildir"), env={"NEWSLETTER_SECRET": "x"})
    plan.discard()
    assert sorted(p.name for p in sends.iterdir() if p.name.startswith(".staging-")) == [".staging-other"]
