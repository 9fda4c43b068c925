"""Group commit of unsubscribes: many threads, few transactions, every result after its commit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from newsletter.audience.groupcommit import UnsubscribeWriter
from newsletter.audience.store import SubscriberStore


def test_concurrent_unsubscribes_are_all_committed_with_their_own_results(tmp_path: Path) -> None:
    with SubscriberStore.open(tmp_path) as store:
        for i in range(100):
            store.subscribe(f"r{i}@example.org", how="command", status="confirmed")
        writer = UnsubscribeWriter(store)
        addresses = [f"r{i}@example.org" for i in range(100)] + [f"r{i}@example.org" for i in range(50)] + ["csv-only@example.org"]
        with ThreadPoolExecutor(max_workers=32) as pool:
            results = dict.fromkeys(addresses, 0)
            for address, changed in zip(addresses, pool.map(lambda a: writer.unsubscribe(a, "one-click"), addresses)):
                results[address] += changed
        writer.close()
        assert all(count == 1 for count in results.values()), "each address changed exactly once, repeats are no-ops"
    with SubscriberStore.open(tmp_path) as reopened:  # durable: a fresh connection sees every write
        assert all(reopened.status_of(a) == "unsubscribed" for a in addresses)
        assert [e["detail"] for e in reopened.events("r7@example.org") if e["event"] == "unsubscribed"] == [{"via": "one-click"}]


def test_a_failed_commit_reaches_every_waiting_request(tmp_path: Path) -> None:
    store = SubscriberStore.open(tmp_path)
    writer = UnsubscribeWriter(store)
    assert writer.unsubscribe("first@example.org", "link") is True
    store.close()  # the next transaction cannot happen
    with pytest.raises(RuntimeError, match="closed"):
        writer.unsubscribe("second@example.org", "link")
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.unsubscribe("third@example.org", "link")
