"""Which correction a reading gets (configured or recorded calibration) and how its raw value comes back:
the pure rules, then the pipeline taking records from a real SQLite history as they are added."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.calibration import RecordedCorrections, record_calibration
from alerts.store import AlertStore
from archmon.config import Config, parse_config
from archmon.domain import RawMessage
from collector.calibration import (
    APPLY_GRACE_MS,
    EMPTY_BOOK,
    Correction,
    OffsetBook,
    RecordedOffset,
    applies_from_ms,
    correction_for,
)
from collector.pipeline import Pipeline
from tests.collector.test_pipeline import Recorder

TZ = ZoneInfo("Asia/Shanghai")
MIN = 60_000
DAY = 86_400_000
MARCH_1 = 1_740_758_400_000  # 2025-03-01T00:00+08:00


def _config(tmp_path: Path) -> Config:
    return parse_config({
        "site": {"name": "t", "timezone": "Asia/Shanghai"},
        "storage": {"sqlite_path": str(tmp_path / "archmon.db")},
        "rooms": [{"id": "paper"}],
        "mqtt": [{"id": "b"}],
        "sensors": [
            {"id": "th1", "room": "paper", "source": "b", "topic": "zigbee2mqtt/th1", "format": "zigbee2mqtt",
             "calibration": {"temperature": {"offset": -0.5, "scale": 1.01}, "humidity": {"offset": 2.0},
                             "battery": {"offset": 1.0}}},
            {"id": "t2", "room": "paper", "kind": "temperature", "source": "b", "topic": "zigbee2mqtt/t2",
             "format": "zigbee2mqtt"},
        ],
    })


def _offset(rid: int, day: str, applies: int, t: float = 0.0, h: float = 0.0, sensor: str = "th1") -> RecordedOffset:
    return RecordedOffset(rid, sensor, day, applies, t, h, f"C-{rid}")


def test_a_record_applies_from_its_date_or_the_grace_after_recording_whichever_is_later() -> None:
    day = dt.date(2025, 3, 1)
    assert applies_from_ms(day, TZ, MARCH_1 - 3 * DAY) == MARCH_1  # recorded ahead: from 00:00 of its date
    assert applies_from_ms(day, TZ, MARCH_1 + 5 * DAY) == MARCH_1 + 5 * DAY + APPLY_GRACE_MS  # dated in the past
    assert APPLY_GRACE_MS == 10 * MIN


def test_the_record_in_force_is_the_latest_dated_among_those_applying() -> None:
    book = OffsetBook([
        _offset(1, "2025-03-01", MARCH_1, t=0.3),
        _offset(2, "2024-03-01", MARCH_1 + 10 * DAY, t=-9.0),  # an older certificate entered later: history only
        _offset(3, "2025-03-01", MARCH_1 + 20 * DAY, t=0.4),  # the same date again: corrects record 1 from then
        _offset(4, "2026-03-01", MARCH_1 + 365 * DAY, t=0.1),
    ])
    assert book.at("th1", MARCH_1 - 1) is None
    assert [book.at("th1", ts).record_id for ts in (MARCH_1, MARCH_1 + 10 * DAY, MARCH_1 + 19 * DAY)] == [1, 1, 1]
    assert book.at("th1", MARCH_1 + 20 * DAY).record_id == 3
    assert book.at("th1", MARCH_1 + 400 * DAY).record_id == 4
    assert book.at("other", MARCH_1) is None


def test_recorded_offsets_replace_the_configured_correction_of_temperature_and_humidity_only(tmp_path: Path) -> None:
    sensor = _config(tmp_path).sensors[0]
    book = OffsetBook([_offset(7, "2025-03-01", MARCH_1, t=0.3)])  # no humidity offset: the certificate found none
    before = {q: correction_for(sensor, q, MARCH_1 - 1, book) for q in ("temperature", "humidity", "battery")}
    after = {q: correction_for(sensor, q, MARCH_1, book) for q in ("temperature", "humidity", "battery")}
    assert before["temperature"] == Correction("config", 1.01, -0.5)
    assert before["temperature"].apply("temperature", 20.0) == pytest.approx(19.7)
    assert after["temperature"] == Correction("record", 1.0, 0.3, 7, "C-7")
    assert after["temperature"].apply("temperature", 20.0) == pytest.approx(20.3)  # not 20.0*1.01-0.5+0.3
    assert after["humidity"].apply("humidity", 50.0) == 50.0  # the config's +2 no longer applies
    assert after["battery"] == before["battery"] == Correction("config", 1.0, 1.0)


@given(raw=st.floats(-40, 80), offset=st.floats(-5, 5), scale=st.floats(0.9, 1.1))
def test_the_raw_value_comes_back_from_the_correction_applied(raw: float, offset: float, scale: float) -> None:
    for correction in (Correction("record", 1.0, offset, 1), Correction("config", scale, offset)):
        stored = correction.apply("temperature", raw) if -40 <= raw * correction.scale + offset <= 85 else None
        if stored is not None:
            back, exact = correction.invert("temperature", stored)
            assert exact and back == pytest.approx(raw, abs=1e-9)


def test_a_saturated_humidity_is_not_claimed_exact() -> None:
    correction = Correction("record", 1.0, 3.0, 1)
    assert correction.apply("humidity", 99.0) == 100.0
    assert correction.invert("humidity", 100.0) == (97.0, False)
    assert correction.invert("humidity", 80.0) == (77.0, True)


def _message(ts: int, *, received: int | None = None) -> RawMessage:
    """A zigbee2mqtt message taken at ``ts`` (its ``last_seen``), received then or at ``received``."""
    return RawMessage("b", "zigbee2mqtt/th1", f'{{"temperature": 20.0, "humidity": 50, "last_seen": {ts}}}'.encode(),
                      ts if received is None else received)


class _Clock:
    def __init__(self) -> None:
        self.s = 0.0

    def __call__(self) -> float:
        return self.s


def test_the_pipeline_takes_a_record_added_while_it_runs_and_corrects_by_reading_time(tmp_path: Path) -> None:
    """Another process adds a record (dated in the past) while the pipeline runs: it is taken within the
    look interval, readings stamped from its start on get its offset, a late reading of the gap and a copy
    sent again keep the correction in force before it, and raw values come back from the history."""
    config = _config(tmp_path)
    db = config.storage.sqlite_path
    clock = _Clock()
    corrections = RecordedCorrections(db, clock=clock)
    recorder = Recorder()
    recorded = MARCH_1 + 3 * DAY
    pipeline = Pipeline(config, recorder, clock=lambda: recorded + APPLY_GRACE_MS, corrections=corrections)
    try:
        before = pipeline.handle(_message(recorded - MIN)).readings
        store = AlertStore(db)  # "archmon calibration add" in another process
        try:
            record = record_calibration(store, config, "th1", dt.date(2025, 3, 1), "JL-0312", offset_temperature=0.3,
                                        offset_humidity=-1.5, by="王工", now_ms=recorded)
        finally:
            store.close()
        assert record.applies_from_ms == recorded + APPLY_GRACE_MS
        stale = pipeline.handle(_message(record.applies_from_ms)).readings  # inside the look interval: not seen
        clock.s += 1.0
        taken = pipeline.handle(_message(record.applies_from_ms)).readings
        late = record.applies_from_ms + 2 * MIN
        gap = pipeline.handle(_message(record.applies_from_ms - 1, received=late)).readings  # taken before it applies
        again = pipeline.handle(_message(recorded - MIN)).readings  # the first message sent again
        for _ in range(5):
            pipeline.handle(_message(record.applies_from_ms + MIN))
        assert corrections.reads == 1  # the history is read once, when it changed, not per batch
    finally:
        corrections.close()
    values = lambda readings: {r.quantity: round(r.value, 6) for r in readings}  # noqa: E731
    configured = {"temperature": round(20.0 * 1.01 - 0.5, 6), "humidity": 52.0}
    assert values(before) == values(gap) == values(again) == configured
    assert values(stale) == configured  # (a reading stamped this late cannot arrive within the second)
    assert values(taken) == {"temperature": 20.3, "humidity": 48.5}
    book = OffsetBook([record.as_offset()])
    for reading in [*before, *taken, *gap]:
        correction = correction_for(config.sensors[0], reading.quantity, reading.ts_ms, book)
        raw, exact = correction.invert(reading.quantity, reading.value)
        assert exact and raw == pytest.approx(20.0 if reading.quantity == "temperature" else 50.0)


def test_without_records_or_a_source_the_configured_correction_applies(tmp_path: Path) -> None:
    config = _config(tmp_path)
    corrections = RecordedCorrections(config.storage.sqlite_path)
    try:
        assert corrections.book() is EMPTY_BOOK and corrections.reads == 0
        with_source = Pipeline(config, Recorder(), clock=lambda: MARCH_1, corrections=corrections)
        without = Pipeline(config, Recorder(), clock=lambda: MARCH_1)
        got = [{r.quantity: r.value for r in p.handle(_message(MARCH_1)).readings} for p in (with_source, without)]
    finally:
        corrections.close()
    assert got[0] == got[1] == {"temperature": pytest.approx(19.7), "humidity": 52.0}


def test_a_correction_past_the_range_is_quarantined_with_the_sensor_named(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = AlertStore(config.storage.sqlite_path)
    try:
        record_calibration(store, config, "t2", dt.date(2025, 3, 1), "C1", offset_temperature=5.0, by="x",
                           now_ms=MARCH_1)
    finally:
        store.close()
    corrections = RecordedCorrections(config.storage.sqlite_path)
    later = MARCH_1 + 60 * MIN
    try:
        pipeline = Pipeline(config, Recorder(), clock=lambda: later, corrections=corrections)
        batch = pipeline.handle(RawMessage("b", "zigbee2mqtt/t2", b'{"temperature": 84.0}', later))
    finally:
        corrections.close()
    assert not batch.readings and batch.counters["rejected"] == 1
    (rec,) = batch.quarantine
    assert rec.stage == "validate" and rec.sensor == "t2" and "89" in rec.reason


@given(st.lists(st.tuples(st.sampled_from(["th1", "t2", "t3"]), st.integers(0, 40), st.integers(0, 60)),
                min_size=1, max_size=25), st.integers(1, 24), st.lists(st.integers(-5, 70), min_size=1, max_size=20))
def test_a_book_extended_with_new_records_answers_as_one_built_from_the_whole_history(
    items: list[tuple[str, int, int]], split: int, probes: list[int]
) -> None:
    """What a running pipeline builds as records come (``extended``) is what a restart reads at once."""
    records = [RecordedOffset(i + 1, sensor, (dt.date(2025, 1, 1) + dt.timedelta(days=day)).isoformat(),
                              MARCH_1 + applies * DAY, float(i), -float(i), f"C{i}")
               for i, (sensor, day, applies) in enumerate(items)]
    whole = OffsetBook(records, version=len(records))
    first = OffsetBook(records[:split], version=min(split, len(records)))
    grown = first.extended(records[split:], version=len(records))
    assert len(grown) == len(whole) == len(records) and grown.version == whole.version
    for sensor in ("th1", "t2", "t3"):
        for day in probes:
            assert grown.at(sensor, MARCH_1 + day * DAY) == whole.at(sensor, MARCH_1 + day * DAY)
    untouched = OffsetBook(records[:split])  # the book other threads still use is not changed by extending it
    assert len(first) == len(untouched)
    for sensor in ("th1", "t2", "t3"):
        assert [first.at(sensor, MARCH_1 + d * DAY) for d in probes] == [untouched.at(sensor, MARCH_1 + d * DAY)
                                                                         for d in probes]
