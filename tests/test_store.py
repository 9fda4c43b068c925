"""The subscriber store on real SQLite files: statuses, consent, history, erasure, concurrency."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from newsletter.audience.store import STORE_FILE, SubscriberStore
from newsletter.audience.subscribers import Subscriber
from newsletter.errors import NewsletterError

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    """A settable clock (seconds since the epoch), so timestamps are exact without sleeping."""

    def __init__(self, t: float = 1_780_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(tmp_path: Path):
    with SubscriberStore.open(tmp_path, clock=Clock()) as opened:
        yield opened


def test_open_creates_a_wal_file_and_reopens_it(tmp_path: Path) -> None:
    with SubscriberStore.open(tmp_path) as store:
        store.subscribe("ada@example.org", "Ada", how="command", status="confirmed")
    assert (tmp_path / STORE_FILE).is_file()
    conn = sqlite3.connect(tmp_path / STORE_FILE)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with SubscriberStore.open(tmp_path) as store:
        assert store.status_of("ADA@EXAMPLE.ORG") == "confirmed"


def test_form_sign_up_is_pending_until_confirmed_with_consent_recorded(tmp_path: Path) -> None:
    clock = Clock()
    with SubscriberStore.open(tmp_path, clock=clock) as store:
        assert store.subscribe("Ada@Example.org", "Ada", how="form", consent_text="Monthly news, unsubscribe any time",
                               ip="192.0.2.7", user_agent="Firefox/140") == "pending"
        assert list(store.confirmed()) == []
        clock.t += 3600
        assert store.confirm("ada@example.org", ip="192.0.2.8", user_agent="Safari/18") is True
        assert store.confirm("ada@example.org") is True  # a second click still says confirmed
        row = store.get("ADA@example.org")
    assert row is not None
    assert (row.email, row.name, row.status) == ("Ada@Example.org", "Ada", "confirmed")
    assert (row.subscribed_at, row.confirmed_at) == ("2026-05-28T20:26:40Z", "2026-05-28T21:26:40Z")
    assert (row.consent_how, row.consent_text, row.consent_ip, row.consent_user_agent) == (
        "form", "Monthly news, unsubscribe any time", "192.0.2.7", "Firefox/140")
    assert (row.confirm_ip, row.confirm_user_agent) == ("192.0.2.8", "Safari/18")


def test_confirmed_yields_recipients_for_a_send_with_fields_and_punycode(store: SubscriberStore) -> None:
    store.subscribe("bo@bücher.de", "Bo", how="command", status="confirmed", fields={"city": "Köln"})
    store.subscribe("ada@example.org", how="import", status="confirmed", source="old.csv")
    store.subscribe("pending@example.org", how="form")
    assert list(store.confirmed()) == [
        Subscriber("ada@example.org", None, {}, 0),
        Subscriber("bo@xn--bcher-kva.de", "Bo", {"city": "Köln"}, 0),
    ]
    # The Unicode and the punycode spelling are one mailbox.
    assert store.status_of("BO@xn--bcher-kva.de") == "confirmed"


def test_confirmed_pages_through_more_rows_than_one_read(store: SubscriberStore) -> None:
    counts = store.subscribe_many(
        (Subscriber(f"reader{i:05d}@example.org", None, {}, i) for i in range(1234)), how="import", source="big.csv"
    )
    assert counts == {"added": 1234, "updated": 0}
    emails = [s.email for s in store.confirmed()]
    assert len(emails) == 1234 and emails == sorted(emails) and len(set(emails)) == 1234


def test_import_and_command_never_bring_anyone_back(store: SubscriberStore) -> None:
    for address in ("u@example.org", "b@example.org", "c@example.org", "f@example.org", "ok@example.org"):
        store.subscribe(address, how="command", status="confirmed")
    store.unsubscribe("u@example.org", via="link")
    store.set_status("b@example.org", "bounced", event="bounced", detail={"dsn": "5.1.1 user unknown"})
    store.set_status("c@example.org", "complained", event="complained", detail={"feedback": "abuse"})
    store.forget("f@example.org")
    rows = [Subscriber(a, "New Name", {}, 1) for a in ("U@example.org", "b@example.org", "c@example.org", "f@example.org", "ok@example.org", "new@example.org")]
    counts = store.subscribe_many(rows, how="import", status="confirmed", source="again.csv")
    assert counts == {"added": 1, "updated": 1, "unsubscribed": 1, "bounced": 1, "complained": 1, "forgotten": 1}
    assert store.subscribe("u@example.org", how="command", status="confirmed") == "unsubscribed"
    assert [s.email for s in store.confirmed()] == ["new@example.org", "ok@example.org"]
    assert store.get("ok@example.org").name == "New Name"  # an import refreshes what it knows
    assert store.get("f@example.org") is None


def test_a_new_form_sign_up_brings_back_an_unsubscribed_reader_as_pending(store: SubscriberStore) -> None:
    store.subscribe("ada@example.org", how="command", status="confirmed")
    assert store.unsubscribe("ada@example.org", via="one-click") is True
    assert store.confirm("ada@example.org") is False  # an old confirmation link does not bring them back
    assert store.subscribe("ada@example.org", how="form", consent_text="yes please", ip="192.0.2.1") == "pending"
    row = store.get("ada@example.org")
    assert (row.status, row.consent_how, row.consent_text, row.confirmed_at) == ("pending", "form", "yes please", None)
    store.set_status("ada@example.org", "complained", event="complained")
    assert store.subscribe("ada@example.org", how="form") == "complained"


def test_forgotten_address_can_sign_up_again_by_form_only(store: SubscriberStore) -> None:
    store.forget("gone@example.org")
    assert store.status_of("gone@example.org") == "forgotten" and store.is_suppressed("gone@example.org")
    assert store.subscribe("gone@example.org", how="command", status="confirmed") == "forgotten"
    assert store.subscribe("gone@example.org", how="form") == "pending"
    assert store.status_of("gone@example.org") == "pending"


def test_unsubscribe_adds_an_unknown_csv_recipient_and_is_idempotent(store: SubscriberStore) -> None:
    assert store.status_of("csv@example.org") is None
    assert store.unsubscribe("csv@example.org", via="one-click") is True
    assert store.unsubscribe("CSV@example.org", via="one-click") is False
    assert store.status_of("csv@example.org") == "unsubscribed" and store.is_suppressed("csv@example.org")
    assert [e["event"] for e in store.events("csv@example.org")] == ["unsubscribed"]
    store.set_status("b@example.org", "bounced", event="bounced")
    assert store.unsubscribe("b@example.org", via="mailto") is False
    assert store.status_of("b@example.org") == "bounced"
    assert [e["event"] for e in store.events("b@example.org")] == ["bounced", "unsubscribed"]


def test_events_keep_history_with_details(store: SubscriberStore) -> None:
    store.subscribe("ada@example.org", how="form", ip="192.0.2.1")
    store.confirm("ada@example.org")
    store.record_event("ada@example.org", "soft-bounce", detail={"status": "4.2.2", "text": "mailbox full"})
    store.set_status("ada@example.org", "bounced", event="bounced", detail={"status": "5.1.1"})
    events = store.events("ada@example.org")
    assert [(e["event"], e["detail"].get("status")) for e in events] == [
        ("subscribed", "pending"), ("confirmed", None), ("soft-bounce", "4.2.2"), ("bounced", "5.1.1")]
    assert store.status_of("ada@example.org") == "bounced"
    with pytest.raises(ValueError):
        store.record_event("ada@example.org", "clicked")
    with pytest.raises(NewsletterError, match="unknown status 'gone'"):
        store.set_status("ada@example.org", "gone", event="bounced")


def test_forget_leaves_only_a_salted_hash(tmp_path: Path) -> None:
    with SubscriberStore.open(tmp_path) as store:
        store.subscribe("Secret.Person@example.org", "Secret Person", how="form", ip="198.51.100.23",
                        user_agent="UniqueAgent/1.0", fields={"city": "Hiddenville"})
        store.confirm("secret.person@example.org")
        store.record_event("secret.person@example.org", "soft-bounce", detail={"text": "mailbox full"})
        assert store.forget("SECRET.PERSON@example.org") is True
        assert store.describe("secret.person@example.org")["status"] == "forgotten"
        assert store.events("secret.person@example.org") == []
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(STORE_FILE))
    for needle in (b"secret.person", b"Secret", b"198.51.100.23", b"UniqueAgent", b"Hiddenville", b"mailbox full"):
        assert needle not in data
    conn = sqlite3.connect(tmp_path / STORE_FILE)
    assert conn.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0
    (digest,) = conn.execute("SELECT hash FROM forgotten").fetchone()
    conn.close()
    import hashlib
    assert digest != hashlib.sha256(b"secret.person@example.org").hexdigest()  # salted, not a bare hash
    with SubscriberStore.open(tmp_path) as store:
        assert store.subscribe_many([Subscriber("secret.person@example.org", None, {}, 2)], how="import") == {
            "added": 0, "updated": 0, "forgotten": 1}


def test_describe_has_every_column_and_the_history(store: SubscriberStore) -> None:
    store.subscribe("ada@example.org", "Ada", how="import", status="confirmed", source="imported from old.csv", fields={"city": "Oslo"})
    record = store.describe("ada@example.org")
    assert record["consent_source"] == "imported from old.csv" and record["fields"] == {"city": "Oslo"}
    assert record["events"][0]["event"] == "imported"
    assert store.describe("nobody@example.org") is None


def test_invalid_address_is_refused_with_the_reason(store: SubscriberStore) -> None:
    with pytest.raises(NewsletterError) as info:
        store.subscribe("ada@@example.org", how="command")
    assert "'ada@@example.org' is not a valid email address" in str(info.value)
    with pytest.raises(NewsletterError, match="period"):
        store.subscribe("ada@example", how="command")


def test_counts(store: SubscriberStore) -> None:
    store.subscribe("a@example.org", how="form")
    store.subscribe("b@example.org", how="command", status="confirmed")
    store.unsubscribe("c@example.org", via="command")
    store.forget("d@example.org")
    assert store.counts() == {"pending": 1, "confirmed": 1, "unsubscribed": 1, "bounced": 0, "complained": 0, "forgotten": 1}


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / STORE_FILE).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(NewsletterError, match=r"subscribers.sqlite: cannot open the subscriber store"):
        SubscriberStore.open(tmp_path)


_WRITER = """
import sys
from pathlib import Path
from newsletter.audience.store import SubscriberStore
folder, tag, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
with SubscriberStore.open(folder) as store:
    for i in range(n):
        store.subscribe(f"{tag}-{i}@example.org", how="form")
        store.confirm(f"{tag}-{i}@example.org")
        store.unsubscribe(f"shared-{i}@example.org", via="one-click")
        store.record_event(f"shared-{i}@example.org", "soft-bounce", detail={"by": tag})
"""


def test_threads_and_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    """Four processes and eight threads write concurrently: no 'database is locked', no lost write."""
    n = 40
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), f"proc{p}", str(n)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for p in range(4)
    ]
    errors: list[BaseException] = []
    with SubscriberStore.open(tmp_path) as store:
        def work(tag: str) -> None:
            try:
                for i in range(n):
                    store.subscribe(f"{tag}-{i}@example.org", how="form")
                    store.confirm(f"{tag}-{i}@example.org")
                    store.unsubscribe(f"shared-{i}@example.org", via="one-click")
                    store.record_event(f"shared-{i}@example.org", "soft-bounce", detail={"by": tag})
                    list(store.confirmed())
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(f"thread{t}",)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        outputs = [proc.communicate(timeout=600) for proc in procs]
        assert errors == []
        for proc, (out, err) in zip(procs, outputs):
            assert proc.returncode == 0, err
        confirmed = {s.email for s in store.confirmed()}
        assert confirmed == {f"{tag}-{i}@example.org" for tag in [*(f"proc{p}" for p in range(4)), *(f"thread{t}" for t in range(8))] for i in range(n)}
        counts = store.counts()
        assert (counts["confirmed"], counts["unsubscribed"]) == (12 * n, n)
        for i in range(n):
            events = store.events(f"shared-{i}@example.org")
            assert [e["event"] for e in events].count("unsubscribed") == 1
            assert sorted(e["detail"]["by"] for e in events if e["event"] == "soft-bounce") == sorted(
                [*(f"proc{p}" for p in range(4)), *(f"thread{t}" for t in range(8))])


def test_unsubscribe_many_is_one_transaction_with_a_result_each(store: SubscriberStore) -> None:
    store.subscribe("a@example.org", how="command", status="confirmed")
    store.subscribe("b@example.org", how="command", status="confirmed")
    store.unsubscribe("b@example.org", via="command")
    results = store.unsubscribe_many([("a@example.org", "one-click"), ("b@example.org", "one-click"),
                                      ("csv@example.org", "link"), ("A@example.org", "one-click")])
    assert results == [True, False, True, False]
    assert [store.status_of(a) for a in ("a@example.org", "b@example.org", "csv@example.org")] == ["unsubscribed"] * 3
    with pytest.raises(ValueError):
        store.unsubscribe_many([("c@example.org", "one-click"), ("d@example.org", "carrier pigeon")])
    assert store.status_of("c@example.org") is None, "a bad request in a batch writes none of it"


def test_last_event_at_reads_back_the_latest_of_a_kind(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    with SubscriberStore.open(tmp_path, clock=lambda: now[0]) as store:
        store.subscribe("a@example.org", how="form")
        assert store.last_event_at("a@example.org", "confirmation-sent") is None
        store.record_event("a@example.org", "confirmation-sent")
        now[0] += 600
        store.record_event("a@example.org", "confirmation-sent")
        assert store.last_event_at("A@example.org", "confirmation-sent") == 1_800_000_600.0
        assert store.last_event_at("a@example.org", "subscribed") == 1_800_000_000.0


def test_a_hand_edited_row_with_broken_merge_fields_is_a_subscriber_error(tmp_path: Path) -> None:
    """Not a bare JSONDecodeError from deep inside a send: the address and what to do are named."""
    from newsletter.errors import SubscriberError

    with SubscriberStore.open(tmp_path) as store:
        store.subscribe("a@example.org", how="command", status="confirmed")
    conn = sqlite3.connect(tmp_path / STORE_FILE)
    conn.execute("UPDATE subscribers SET fields = '{bad'")
    conn.commit()
    conn.close()
    with SubscriberStore.open(tmp_path) as store:
        with pytest.raises(SubscriberError, match="a@example.org"):
            list(store.confirmed())
