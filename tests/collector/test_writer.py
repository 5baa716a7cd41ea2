"""StoreWriter against a real SqliteStore: merging, early flush, failures held and retried, durability."""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from archmon.config import StorageConfig
from archmon.domain import Reading
from archmon.errors import RetryLater
from collector.records import Batch, WriteResult
from collector.store import SqliteStore
from collector.writer import StoreWriter, WriterClosed

TZ = ZoneInfo("Asia/Shanghai")
LONG_MS = 60_000  # an interval no test waits for: a write must be triggered by something else


def batch(*ts: int, sensor: str = "th1", value: float = 20.0) -> Batch:
    return Batch(readings=[Reading(sensor, "temperature", value, t, "r1") for t in ts])


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "w.db", tz=TZ, busy_timeout_s=0.02)
    yield s
    s.close()


@pytest.fixture
def lock(store: SqliteStore) -> Iterator[sqlite3.Connection]:
    """A competing connection holding the write lock: every commit fails with 'database is locked'."""
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


def make_writer(store: SqliteStore, **kwargs: object) -> StoreWriter:
    options: dict[str, object] = {"batch_size": 1000, "flush_interval_ms": LONG_MS, "retry_min_s": 0.005}
    options.update(kwargs)
    writer = StoreWriter(store, **options)  # type: ignore[arg-type]
    writer.start()
    return writer


def test_batches_are_merged_into_one_transaction(store: SqliteStore) -> None:
    writer = make_writer(store)
    try:
        futures = [writer.submit(batch(i * 10, i * 10 + 1)) for i in range(5)]
        futures.append(writer.submit(batch(0)))  # duplicate of the first reading
        assert not any(f.done() for f in futures)
        assert writer.flush(timeout=10)
        results = [f.result(timeout=0) for f in futures]
        assert [[r.ts_ms for r in res.stored] for res in results[:5]] == [[i * 10, i * 10 + 1] for i in range(5)]
        assert results[5] == WriteResult(stored=(), duplicates=1)
        stats = writer.stats()
        assert stats.committed_batches == 1 and stats.committed_readings == 10 and stats.duplicates == 1
        assert stats.queued_records == 0
    finally:
        writer.close()
    assert store.count_readings() == 10


def test_full_batch_is_written_without_waiting_for_the_interval(store: SqliteStore) -> None:
    writer = make_writer(store, batch_size=10)
    try:
        futures = [writer.submit(batch(i)) for i in range(25)]
        for f in futures[:20]:
            f.result(timeout=10)  # two full transactions of 10 go out on their own
        assert writer.stats().committed_batches == 2
        assert store.count_readings() == 20
    finally:
        assert writer.close(timeout=10)
    assert store.count_readings() == 25


def test_a_smoke_reading_is_committed_without_waiting_for_the_interval(store: SqliteStore) -> None:
    writer = make_writer(store)  # a one-minute interval: only the smoke reading can start this transaction
    try:
        quiet = writer.submit(batch(1))
        smoke = writer.submit(Batch(readings=[Reading("sm1", "smoke", 1.0, 2, "r1")]))
        smoke.result(timeout=10)
        assert quiet.done(), "the readings queued before it share its transaction"
        assert writer.stats().committed_batches == 1
        later = writer.submit(batch(3))
        assert not later.done() and writer.flush(timeout=10)
    finally:
        writer.close()


def test_interval_flushes_a_small_batch(store: SqliteStore) -> None:
    writer = make_writer(store, flush_interval_ms=20)
    try:
        assert writer.submit(batch(1)).result(timeout=10).stored[0].ts_ms == 1
    finally:
        writer.close()


class RecordingStore:
    """The real store, recording how many readings each transaction held."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.transactions: list[int] = []

    def write_many(self, batches: list[Batch]) -> list[WriteResult]:
        results = self.store.write_many(batches)
        self.transactions.append(sum(len(b.readings) for b in batches))
        return results


def test_from_config_uses_storage_settings(store: SqliteStore) -> None:
    recording = RecordingStore(store)
    writer = StoreWriter.from_config(recording, StorageConfig(batch_size=3, flush_interval_ms=LONG_MS))
    writer.start()
    try:
        futures = [writer.submit(batch(i)) for i in range(7)]
        futures[5].result(timeout=10)  # two full transactions of batch_size go out without the interval
        assert recording.transactions == [3, 3]
        assert not futures[6].done()  # the seventh waits for the (long) flush interval
        assert writer.flush(timeout=10)
        assert recording.transactions == [3, 3, 1]
    finally:
        writer.close()


def test_locked_database_keeps_futures_pending_then_lands_exactly_once(
    store: SqliteStore, lock: sqlite3.Connection
) -> None:
    writer = make_writer(store)
    try:
        futures = [writer.submit(batch(i, i + 1000)) for i in range(20)]
        assert not writer.flush(timeout=0.3)
        wait_until(lambda: writer.stats().failures >= 3)
        stats = writer.stats()
        assert stats.retrying and "locked" in stats.last_error
        assert not any(f.done() for f in futures)
        lock.execute("ROLLBACK")
        assert writer.flush(timeout=10)
        assert sum(len(f.result(timeout=0).stored) for f in futures) == 40
        assert not writer.stats().retrying
    finally:
        writer.close()
    assert store.count_readings() == 40
    assert store.counters() == {"stored": 40}


def test_queue_full_applies_backpressure(store: SqliteStore, lock: sqlite3.Connection) -> None:
    writer = make_writer(store, max_queued_records=5)
    try:
        first = writer.submit(batch(1, 2, 3, 4, 5))
        with pytest.raises(RetryLater, match="queue full"):
            writer.submit(batch(6), timeout=0.05)
        returned = threading.Event()
        late: list[object] = []

        def blocked_submit() -> None:
            late.append(writer.submit(batch(7)))
            returned.set()

        thread = threading.Thread(target=blocked_submit)
        thread.start()
        assert not returned.wait(0.2)  # blocked while the store is locked and the queue full
        lock.execute("ROLLBACK")
        assert returned.wait(10)
        thread.join()
        assert writer.flush(timeout=10)
        assert first.done() and late[0].done()  # type: ignore[attr-defined]
    finally:
        writer.close()
    assert [ts for ts, _ in store.series("th1", "temperature", 0, 100)] == [1, 2, 3, 4, 5, 7]


def test_listeners_see_new_readings_and_a_failing_one_is_contained(store: SqliteStore) -> None:
    writer = make_writer(store)
    seen: list[WriteResult] = []

    def broken(result: WriteResult) -> None:
        raise RuntimeError("listener bug")

    writer.add_listener(broken)
    writer.add_listener(seen.append)
    try:
        writer.submit(batch(1, 2))
        writer.submit(batch(2, 3))
        assert writer.flush(timeout=10)
        assert [r.ts_ms for r in seen[0].stored] == [1, 2, 3] and seen[0].duplicates == 1
        third = writer.submit(batch(4))
        assert writer.flush(timeout=10)
        assert third.result(timeout=0).stored[0].ts_ms == 4
        assert writer.stats().listener_errors == 2
    finally:
        writer.close()


def test_a_refused_batch_fails_alone(store: SqliteStore) -> None:
    writer = make_writer(store)
    try:
        good1 = writer.submit(batch(1))
        bad = writer.submit(batch(2, value=math.inf))
        good2 = writer.submit(batch(3))
        assert writer.flush(timeout=10)
        assert good1.result(timeout=0).stored and good2.result(timeout=0).stored
        with pytest.raises(ValueError, match="not a finite number"):
            bad.result(timeout=0)
        assert writer.stats().rejected == 1
    finally:
        writer.close()
    assert [ts for ts, _ in store.series("th1", "temperature", 0, 10)] == [1, 3]


def test_close_writes_everything_queued(store: SqliteStore) -> None:
    writer = make_writer(store)
    future = writer.submit(batch(1, 2, 3))
    assert writer.close(timeout=10)
    assert len(future.result(timeout=0).stored) == 3
    with pytest.raises(WriterClosed, match="closed"):  # retry-later-like: never a refusal of the batch
        writer.submit(batch(4))


def test_close_on_a_dead_store_fails_futures_instead_of_resolving_them(
    store: SqliteStore, lock: sqlite3.Connection
) -> None:
    writer = make_writer(store)
    futures = [writer.submit(batch(1)), writer.submit(batch(2))]
    assert not writer.flush(timeout=0)  # asks for an immediate write, which fails
    wait_until(lambda: writer.stats().failures >= 1)
    assert not writer.close(timeout=0.2)
    for future in futures:
        with pytest.raises(WriterClosed, match="closed before"):
            future.result(timeout=0)
    assert writer.stats().abandoned_records == 2
    lock.execute("ROLLBACK")
    assert store.count_readings() == 0


CHILD = """
import sys
from pathlib import Path
from zoneinfo import ZoneInfo
from archmon.domain import Reading
from collector.records import Batch
from collector.store import SqliteStore
from collector.writer import StoreWriter

store = SqliteStore(Path(sys.argv[1]), tz=ZoneInfo("UTC"))
writer = StoreWriter(store, batch_size=50, flush_interval_ms=5)
writer.start()
n = 0
while True:
    future = writer.submit(Batch(readings=[Reading("th1", "temperature", 20.5, n * 10 + i, "r") for i in range(10)]))
    future.result()
    n += 1
    print("committed", n * 10, flush=True)
"""


def test_acknowledged_readings_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "kill.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        acknowledged = 0
        for line in child.stdout:
            acknowledged = int(line.split()[1])
            if acknowledged >= 200:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
    assert acknowledged >= 200
    store = SqliteStore(path, tz=ZoneInfo("UTC"))
    try:
        stored = [ts for ts, _ in store.series("th1", "temperature", 0, 10**9)]
        assert stored[:acknowledged] == list(range(acknowledged))
        assert store.counters()["stored"] == len(stored)
    finally:
        store.close()
