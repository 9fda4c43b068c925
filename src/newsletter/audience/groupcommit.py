"""Group commit for unsubscribes: many requests, one transaction, one fsync, every answer after it.

An unsubscribe must be durable before the endpoint answers 200 (the law counts
from the request), so each one costs a commit with ``synchronous=FULL``: an
fsync of the WAL. Done one request at a time, the fsyncs are the limit, and
the web threads also queue on SQLite's write lock, whose busy handler sleeps
(1, 2, 5, 10... ms) rather than waking the next writer: under a burst of
one-click POSTs that sleeping made the slowest answers take most of a second.

Here request threads hand their address to one writer thread and wait; the
writer takes everything waiting (up to ``MAX_BATCH``), writes it in one
transaction (``SubscriberStore.unsubscribe_many``), and only then wakes each
request with its own result. While it commits, new requests gather for the
next batch, so the batch grows with the load and a lone request is written at
once. If the commit fails, every request of that batch gets the error, and
none was answered as done.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol, Sequence

MAX_BATCH = 256


class _Store(Protocol):
    def unsubscribe_many(self, requests: Sequence[tuple[str, str]]) -> list[bool]: ...


@dataclass
class _Request:
    email: str
    via: str
    done: threading.Event = field(default_factory=threading.Event)
    result: bool = False
    error: BaseException | None = None


class UnsubscribeWriter:
    """Serialises and batches ``unsubscribe`` calls from many threads into few transactions."""

    def __init__(self, store: _Store) -> None:
        self.store = store
        self._waiting: list[_Request] = []
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="unsubscribe-writer", daemon=True)
        self._thread.start()

    def unsubscribe(self, email: str, via: str) -> bool:
        """Unsubscribe ``email``; returns once it is committed (the store's result), or raises its error."""
        request = _Request(email, via)
        with self._ready:
            if self._closed:
                raise RuntimeError("the unsubscribe writer is closed")
            self._waiting.append(request)
            self._ready.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result

    def close(self) -> None:
        """Write what is waiting, then stop."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._waiting and not self._closed:
                    self._ready.wait()
                if not self._waiting:
                    return
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                # The store serialises its own writes (SubscriberStore._write_lock), so no lock here.
                results = self.store.unsubscribe_many([(r.email, r.via) for r in batch])
                for request, result in zip(batch, results):
                    request.result = result
            except BaseException as exc:  # noqa: BLE001  (handed to each waiting request, which raises it)
                for request in batch:
                    request.error = exc
            for request in batch:
                request.done.set()
