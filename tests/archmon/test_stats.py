"""Counters and states for ``archmon status`` (``archmon.app.stats``): a delta counts once its batch is
committed; one the writer gave up goes with the next report; states replace, never add up."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from zoneinfo import ZoneInfo

from archmon.app.stats import Counters, is_gauge
from collector.records import Batch, WriteResult
from collector.store import SqliteStore
from collector.writer import StoreWriter, WriterClosed


def test_a_delta_whose_batch_was_not_committed_goes_with_the_next_report(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "a.db", tz=ZoneInfo("UTC"))
    counters = Counters()
    try:
        first = Batch()
        counters.add(first, "source.b", {"received": 10, "connected": 1}, 1000, frozenset({"connected"}))
        given_up: Future[WriteResult] = Future()
        counters.track(first, given_up)
        given_up.set_exception(WriterClosed("store writer closed before the batch was committed"))

        second = Batch()
        counters.add(second, "source.b", {"received": 25, "connected": 0}, 2000, frozenset({"connected"}))
        writer = StoreWriter(store)
        writer.start()
        counters.track(second, writer.submit(second))
        assert writer.close(10)

        third = Batch()  # nothing new: nothing to count again
        counters.add(third, "source.b", {"received": 25, "connected": 0}, 3000, frozenset({"connected"}))
        assert third.counters == {}
        assert store.counters()["source.b.received"] == 25  # 10 of the lost batch included, counted once
        assert store.gauges()["source.b.connected"] == (0, 2000)
    finally:
        store.close()


def test_names_are_counters_states_or_times_of_day() -> None:
    gauges = frozenset({"connected", "rebuild_ms"})
    assert is_gauge("connected", gauges) is True
    assert is_gauge("rebuild_ms", gauges) is True  # a declared duration is a state
    assert is_gauge("received", gauges) is False
    assert is_gauge("device.3.last_ok_ms", gauges) is None  # an undeclared _ms name: a time of day, not kept
