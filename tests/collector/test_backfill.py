"""Backfill into a real SQLite store: old timestamps kept, idempotent, validated, calibrated, quarantined with
the source named, and the input consumed batch by batch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from archmon.config import Config, parse_config
from archmon.domain import RawMessage
from collector.backfill import BackfillResult, HistoricalReading, backfill
from collector.pipeline import Pipeline
from collector.records import Batch, WriteResult
from collector.store import SqliteStore

NOW = 1_764_000_000_000  # 2025-11-24T16:00:00Z
DAY_MS = 86_400_000
TZ = ZoneInfo("Asia/Shanghai")


def make_config() -> Config:
    return parse_config({
        "site": {"name": "t", "timezone": "Asia/Shanghai"},
        "rooms": [{"id": "paper"}, {"id": "film", "profile": "film_master"}],
        "mqtt": [{"id": "b", "subscriptions": [{"filter": "zigbee2mqtt/#", "format": "zigbee2mqtt"}]}],
        "sensors": [
            {"id": "th1", "room": "paper", "source": "b", "topic": "zigbee2mqtt/th1", "format": "zigbee2mqtt",
             "calibration": {"temperature": {"offset": -0.5}}},
            {"id": "door1", "room": "film", "kind": "door", "source": "b", "topic": "zigbee2mqtt/door1",
             "format": "zigbee2mqtt"},
        ],
    })


def month(step_min: int = 10) -> Iterator[HistoricalReading]:
    """30 days of th1 temperature/humidity and door1 readings, ending at NOW."""
    start = NOW - 30 * DAY_MS
    for i in range(30 * 24 * 60 // step_min):
        ts = start + i * step_min * 60_000
        yield HistoricalReading("th1", "temperature", ts, 19.0 + (i % 7) / 10)
        yield HistoricalReading("th1", "humidity", ts, 52.0 + (i % 5) / 10)
        yield HistoricalReading("door1", "door", ts + 1, float(i % 50 == 0))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "archmon.db", tz=TZ)
    try:
        yield opened
    finally:
        opened.close()


def test_a_month_of_history_is_stored_with_its_own_times_and_a_second_run_adds_nothing(store: SqliteStore) -> None:
    config = make_config()
    first = backfill(config, store, month(), source="demo-history", clock=lambda: NOW)
    expected = 30 * 24 * 6 * 3
    assert (first.offered, first.stored, first.duplicates, first.rejected) == (expected, expected, 0, 0)
    assert first.first_ms == NOW - 30 * DAY_MS and first.last_ms == NOW - 10 * 60_000 + 1
    rows = store.series("th1", "temperature", 0, NOW + 1)
    assert rows[0] == (NOW - 30 * DAY_MS, pytest.approx(18.5))  # 30 days old, calibrated (offset -0.5)
    hours = store.buckets("th1", "humidity", 0, NOW + 1, "hour")
    assert len(hours) == 30 * 24 and {b.count for b in hours} == {6}

    again = backfill(config, store, month(), source="demo-history", clock=lambda: NOW)
    assert (again.offered, again.stored, again.duplicates) == (expected, 0, expected)
    assert store.count_readings() == expected
    assert {b.count for b in store.buckets("th1", "humidity", 0, NOW + 1, "hour")} == {6}  # rollups not doubled
    counters = store.counters()
    assert counters["backfilled"] == 2 * expected and counters["source.demo-history.backfilled"] == 2 * expected
    assert counters["stored"] == expected and counters["duplicates"] == expected
    assert [a.room for a in store.room_assignments("door1")] == ["film"]


def test_the_live_pipeline_would_restamp_such_a_reading_backfill_keeps_its_time(store: SqliteStore) -> None:
    config = make_config()
    old = NOW - 20 * DAY_MS
    recorded: list[Batch] = []
    pipeline = Pipeline(config, lambda batch: recorded.append(batch) or _done(), clock=lambda: NOW)
    live = pipeline.handle(RawMessage("b", "zigbee2mqtt/th1", b'{"temperature": 20, "last_seen": %d}' % old, NOW))
    assert [r.ts_ms for r in live.readings] == [NOW] and live.counters["device_time_rejected"] == 1
    result = backfill(config, store, [HistoricalReading("th1", "temperature", old, 20.0)], source="t",
                      clock=lambda: NOW)
    assert result.stored == 1 and store.series("th1", "temperature", 0, NOW + 1) == [(old, 19.5)]


def _done() -> object:
    from concurrent.futures import Future

    future: Future[WriteResult] = Future()
    future.set_result(WriteResult())
    return future


def test_bad_historical_readings_are_quarantined_with_the_source_named(store: SqliteStore) -> None:
    config = make_config()
    ts = NOW - 10 * DAY_MS
    rows = [
        HistoricalReading("th1", "humidity", ts, 150.0),  # outside the physical range
        HistoricalReading("th1", "humidity", ts + 60_000, 103.0),  # condensing: saturates at 100
        HistoricalReading("th1", "temperature", ts, float("nan")),
        HistoricalReading("door1", "door", ts, 0.5),
        HistoricalReading("ghost", "temperature", ts, 20.0),  # not configured
        HistoricalReading("th1", "tempreature", ts, 20.0),  # a typo in an import mapping
        HistoricalReading("th1", "temperature", NOW + 3_600_000, 20.0),  # in the future
        HistoricalReading("th1", "temperature", 0, 20.0),  # a logger whose clock was never set
        HistoricalReading("th1", "temperature", ts, 21.0),  # the one good reading
    ]
    result = backfill(config, store, rows, source="import:logger-2025.csv", clock=lambda: NOW)
    assert (result.offered, result.stored, result.quarantined, result.suppressed) == (9, 2, 7, 0)
    assert store.series("th1", "humidity", 0, NOW) == [(ts + 60_000, 100.0)]
    assert store.series("th1", "temperature", 0, NOW * 2) == [(ts, 20.5)]
    kept = store.quarantine(limit=20)
    assert len(kept) == 7 and {q.source for q in kept} == {"import:logger-2025.csv"}
    by_reason = {q.reason: q for q in kept}
    out_of_range = next(q for reason, q in by_reason.items() if "150" in reason)
    assert out_of_range.stage == "validate" and out_of_range.sensor == "th1"
    assert "outside the physical range" in out_of_range.reason and out_of_range.topic == "backfill/th1"
    assert out_of_range.payload == f"{ts},th1,humidity,150.0".encode()
    assert any(q.stage == "route" and "unknown sensor 'ghost'" in q.reason for q in kept)
    assert any("unknown quantity 'tempreature'" in q.reason for q in kept)
    assert any("in the future" in q.reason for q in kept) and any("before 2000-01-01" in q.reason for q in kept)
    assert any("door" in q.reason and "0 or 1" in q.reason for q in kept)
    counters = store.counters()
    assert counters["quarantined"] == 7 and counters["rejected"] == 6 and counters["clamped"] == 1


def test_a_flood_of_bad_readings_keeps_a_bounded_quarantine_and_counts_the_rest(store: SqliteStore) -> None:
    config = make_config()
    rows = (HistoricalReading("th1", "humidity", NOW - DAY_MS + i * 60_000, 150.0) for i in range(500))
    result = backfill(config, store, rows, source="import:broken.csv", clock=lambda: NOW)
    assert result.stored == 0 and result.rejected == 500
    assert result.quarantined == 10 and result.suppressed == 490  # one device's allowance per minute
    assert store.quarantine_count() == 10
    assert store.counters()["source.import:broken.csv.quarantine_suppressed"] == 490


def test_the_input_is_consumed_batch_by_batch_and_progress_follows(store: SqliteStore) -> None:
    config = make_config()
    taken = [0]

    def readings() -> Iterator[HistoricalReading]:
        for i in range(10_500):
            taken[0] += 1
            yield HistoricalReading("th1", "temperature", NOW - 20 * DAY_MS + i * 60_000, 19.0 + i % 3)

    seen: list[tuple[int, int, int]] = []

    def progress(so_far: BackfillResult) -> None:
        seen.append((so_far.offered, so_far.stored, taken[0]))

    stored_order: list[int] = []
    result = backfill(config, store, readings(), source="t", batch_size=1000, progress=progress,
                      on_stored=lambda written: stored_order.extend(r.ts_ms for r in written.stored),
                      clock=lambda: NOW)
    assert result.batches == 11 and result.stored == 10_500
    assert [offered for offered, _, _ in seen] == [*range(1000, 10_001, 1000), 10_500]
    # never more than one batch ahead of what is stored: memory is bounded by the batch size
    assert all(taken_then - stored <= 1000 for _, stored, taken_then in seen)
    assert stored_order == sorted(stored_order) and len(stored_order) == 10_500


def test_a_label_is_required(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="source must name"):
        backfill(make_config(), store, [], source=" ")
