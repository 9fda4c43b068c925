"""The send record: complete or absent, durable marks, crash leftovers become uncertain."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.errors import NewsletterError
from newsletter.delivery.ledger import Ledger, RunLock, write_new
from newsletter.audience.subscribers import Subscriber


def subs(*addresses: str) -> list[Subscriber]:
    return [Subscriber(a, a.split("@")[0].title(), {}, i + 2) for i, a in enumerate(addresses)]


def test_new_record_drops_duplicates_and_is_installed_whole(tmp_path: Path) -> None:
    path = tmp_path / "sends" / "2026-11.sqlite"
    added, duplicates = write_new(path, subs("a@x.org", "b@x.org", "A@X.org"), {"month": "2026-11"})
    assert (added, duplicates) == (2, 1)
    with Ledger(path) as ledger:
        assert ledger.counts()["pending"] == 2 and ledger.meta()["month"] == "2026-11"
        assert [r.address for r in ledger.rows()] == ["a@x.org", "b@x.org"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["2026-11.sqlite"]  # no temp files left


def test_a_failing_list_leaves_no_record(tmp_path: Path) -> None:
    path = tmp_path / "sends" / "2026-11.sqlite"

    def broken():
        yield from subs("a@x.org")
        raise NewsletterError("bad line", path="list.csv", line=3)

    with pytest.raises(NewsletterError):
        write_new(path, broken(), {})
    assert not path.exists() and list(path.parent.iterdir()) == []


def test_rows_left_sending_become_uncertain_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "2026-11.sqlite"
    write_new(path, subs("a@x.org", "b@x.org", "c@x.org"), {})
    # a process that marks a row sending and dies without closing anything
    code = (
        "import os, sys; from pathlib import Path; from newsletter.delivery.ledger import Ledger\n"
        f"l = Ledger(Path({str(path)!r}))\n"
        "rows = list(l.rows())\n"
        "l.mark_sending(rows[0].id, '<m1@x>'); l.mark_result(rows[0].id, 'sent', '250 ok')\n"
        "l.mark_sending(rows[1].id, '<m2@x>')\n"
        "os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    with Ledger(path, recover=False) as peek:
        assert peek.counts()["sending"] == 1
    with Ledger(path) as ledger:
        assert ledger.recovered == 1
        states = {r.address: (r.state, r.attempts, r.message_id) for r in ledger.rows()}
        assert states == {"a@x.org": ("sent", 1, "<m1@x>"), "b@x.org": ("uncertain", 1, "<m2@x>"), "c@x.org": ("pending", 0, None)}
        assert ledger.is_finished() is False
        assert ledger.resend_uncertain() == 1
        assert ledger.counts()["pending"] == 2


def test_settings_that_make_marks_durable(tmp_path: Path) -> None:
    path = tmp_path / "2026-11.sqlite"
    write_new(path, subs("a@x.org"), {})
    with Ledger(path) as ledger:
        assert ledger._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        row = next(ledger.rows())
        ledger.mark_sending(row.id, "<m@x>")
        assert ledger._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL for the mark before a hand-over
        ledger.mark_result(row.id, "sent", "250 ok")
    with pytest.raises(sqlite3.IntegrityError):
        conn = sqlite3.connect(path)
        conn.execute("UPDATE recipients SET state = 'bogus'")


def test_merge_adds_new_and_drops_untried_leavers(tmp_path: Path) -> None:
    path = tmp_path / "2026-11.sqlite"
    write_new(path, subs("a@x.org", "b@x.org", "c@x.org"), {})
    with Ledger(path) as ledger:
        a = next(ledger.rows())
        ledger.mark_sending(a.id, "<m@x>")
        ledger.mark_result(a.id, "sent", "250")
        added, removed = ledger.merge(subs("b@x.org", "d@x.org"))
        assert (added, removed) == (1, 1)  # d added; c (never tried) left the list; a stays sent
        assert {r.address: r.state for r in ledger.rows()} == {"a@x.org": "sent", "b@x.org": "pending", "d@x.org": "pending"}


def test_run_lock_excludes_a_second_run(tmp_path: Path) -> None:
    record = tmp_path / "sends" / "2026-11.sqlite"
    with RunLock(record):
        with pytest.raises(NewsletterError, match=rf"another send of 2026-11 is running \(pid {os.getpid()}\)"):
            RunLock(record)
    RunLock(record).release()


def crashed_run(path: Path, *, handed: int) -> None:
    """A process that claims three rows, hands over ``handed`` of them and is killed."""
    code = (
        "import os; from pathlib import Path; from newsletter.delivery.ledger import Ledger\n"
        f"l = Ledger(Path({str(path)!r})); l.start_run()\n"
        "rows = list(l.rows())\n"
        "l.claim([(r.id, f'<{r.id}@x>') for r in rows])\n"
        f"[l.mark_handed(r.id) for r in rows[:{handed}]]\n"
        "os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False)


def test_claimed_rows_never_handed_over_go_back_to_pending(tmp_path: Path) -> None:
    path = tmp_path / "2026-11.sqlite"
    write_new(path, subs("a@x.org", "b@x.org", "c@x.org"), {})
    crashed_run(path, handed=1)
    with Ledger(path) as ledger:
        assert ledger.recovered == 1
        assert {r.address: r.state for r in ledger.rows()} == {"a@x.org": "uncertain", "b@x.org": "pending", "c@x.org": "pending"}


def test_an_edited_hand_over_log_cannot_leave_a_row_sending(tmp_path: Path) -> None:
    """"sending" is never an outcome: a log line claiming it (edited by hand, forged) is ignored
    like a torn one, so recovery still settles every row."""
    path = tmp_path / "2026-11.sqlite"
    write_new(path, subs("a@x.org", "b@x.org", "c@x.org"), {})
    crashed_run(path, handed=1)
    with open(path.with_suffix(".handed"), "ab") as log:
        log.write(b'1 sending null\n2 sending "x"\n')
    with Ledger(path) as ledger:
        assert ledger.recovered == 1
        assert {r.address: r.state for r in ledger.rows()} == {"a@x.org": "uncertain", "b@x.org": "pending", "c@x.org": "pending"}


def test_after_a_reboot_every_claimed_row_is_uncertain(tmp_path: Path) -> None:
    path = tmp_path / "2026-11.sqlite"
    write_new(path, subs("a@x.org", "b@x.org", "c@x.org"), {})
    crashed_run(path, handed=1)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = 'another-boot' WHERE key = 'boot_id'")  # as after a power cut
    conn.commit()
    conn.close()
    with Ledger(path) as ledger:
        assert ledger.recovered == 3
        assert {r.state for r in ledger.rows()} == {"uncertain"}


def test_outcomes_in_the_hand_over_log_survive_a_kill_before_the_flush(tmp_path: Path) -> None:
    """Issue 10 item 5: a killed process loses results not yet written to the database; the
    hand-over log has them, so only the row whose reply had not arrived becomes uncertain."""
    path = tmp_path / "2026-11.sqlite"
    write_new(path, subs("a@x.org", "b@x.org", "c@x.org", "d@x.org"), {})
    code = (
        "import os; from pathlib import Path; from newsletter.delivery.ledger import Ledger\n"
        f"l = Ledger(Path({str(path)!r})); l.start_run()\n"
        "a, b, c, d = list(l.rows())\n"
        "l.claim([(r.id, f'<{r.id}@x>') for r in (a, b, c, d)])\n"
        "l._flusher_stop.set(); l._flusher.join()  # as if killed before the next flush\n"
        "l.mark_handed(a.id); l.mark_result(a.id, 'sent', '250 ok\\nqueued')\n"
        "l.mark_handed(b.id); l.mark_result(b.id, 'failed', '550 no such user')\n"
        "l.mark_handed(c.id)\n"
        "os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    with Ledger(path) as ledger:
        assert ledger.recovered == 1
        rows = {r.address: (r.state, r.last_reply) for r in ledger.rows()}
    assert rows["a@x.org"] == ("sent", "250 ok\nqueued") and rows["b@x.org"] == ("failed", "550 no such user")
    assert rows["c@x.org"][0] == "uncertain" and rows["d@x.org"][0] == "pending"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.text()))
def test_hand_over_log_writes_replies_as_json_dumps_does(reply) -> None:
    # the log line's reply comes from the json module's C encoder; the recovery reads it with json.loads
    import json

    from newsletter.delivery.ledger import _json_text

    assert _json_text(reply) == json.dumps(reply).encode("ascii")


def test_now_is_utc_iso_seconds_and_current() -> None:
    from datetime import datetime, timezone

    from newsletter.delivery.ledger import now

    before = datetime.now(timezone.utc).replace(microsecond=0)
    stamp = now()
    after = datetime.now(timezone.utc)
    assert stamp.endswith("+00:00") and len(stamp) == len("2026-12-02T08:00:00+00:00")
    assert before <= datetime.fromisoformat(stamp) <= after
