"""The audit log's writer: entries queued off the request path, and a reader never misses them."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from store.audit import AuditLog, count_entries
from store.models import utcnow


def _record(log: AuditLog, path: str) -> None:
    log.record(at=utcnow(), user_name="cw_a", role="caseworker", address="127.0.0.1", method="GET", path=path,
               action="read", status_code=200)


def test_flush_writes_what_was_queued_in_order(store):
    log = AuditLog(store)
    for index in range(3):
        _record(log, f"/flags/{index}")
    assert log.flush() == 3 and log.flush() == 0
    assert count_entries(store) == 3


def test_a_readers_flush_waits_for_entries_the_writer_is_still_writing(store, monkeypatch):
    log = AuditLog(store)
    _record(log, "/households/H1")
    writing, release = threading.Event(), threading.Event()
    plain_write = store.write

    @contextmanager
    def slow_write():
        with plain_write() as session:
            writing.set()
            release.wait(10)
            yield session

    monkeypatch.setattr(store, "write", slow_write)
    background = threading.Thread(target=log.flush)  # the writer thread, mid-transaction
    background.start()
    assert writing.wait(10)
    monkeypatch.setattr(store, "write", plain_write)
    seen: list[int] = []
    reader = threading.Thread(target=lambda: (log.flush(), seen.append(count_entries(store))))  # GET /audit
    reader.start()
    time.sleep(0.2)  # the reader is waiting, or (before the fix) had already read the log without the entry
    release.set()
    background.join(10)
    reader.join(10)
    assert seen == [1]
