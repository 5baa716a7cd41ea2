"""Summaries kept forever (collector.store._summary): the same whatever the arrival order, duplicates adding
nothing, split at room moves, rebuilt by the migration, untouched by raw retention."""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Iterable
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archmon.domain import Reading
from collector.records import Batch
from collector.store import SqliteStore

KOLKATA = ZoneInfo("Asia/Kolkata")  # half-hour offset: local hours are not UTC hours
T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
MINUTE = 60_000

Summary = dict[str, dict[tuple[object, ...], tuple[object, ...]]]


def dump(path: Path) -> Summary:
    """Every summary row keyed by sensor, quantity, room and time (series ids differ between files)."""
    conn = sqlite3.connect(path)
    try:
        names = dict(((i,), (s, q)) for i, s, q in conn.execute("SELECT id, sensor, quantity FROM series"))
        out: Summary = {"hour": {}, "hour_bins": {}}
        for sid, room, start, lo, hi, total, count, *rest in conn.execute("SELECT * FROM summary_hour"):
            bits, edges = rest[:12], tuple(rest[12:])
            present = sum((b & (2**64 - 1)) << (64 * i) for i, b in enumerate(bits[:6]))
            high = sum((b & (2**64 - 1)) << (64 * i) for i, b in enumerate(bits[6:]))
            out["hour"][(*names[(sid,)], room, start)] = (lo, hi, round(total, 6), count, present, high, *edges)
        for sid, room, start, b, count, first, last, minutes in conn.execute("SELECT * FROM summary_hour_bins"):
            out["hour_bins"][(*names[(sid,)], room, start, b)] = (count, first, last, minutes)
        return out
    finally:
        conn.close()


def _local_hour(ts: int, tz: ZoneInfo) -> int:
    day = datetime.fromtimestamp(ts / 1000, tz).date()
    midnight = round(datetime.combine(day, time(0), tzinfo=tz).timestamp() * 1000)
    return midnight + (ts - midnight) // 3_600_000 * 3_600_000


def expected(rows: Iterable[tuple[int, str, str, str, float]], tz: ZoneInfo) -> Summary:
    """The summaries computed here from ``(ts, room, sensor, quantity, value)`` (what ``store.readings`` gives)."""
    out: Summary = {"hour": {}, "hour_bins": {}}
    cells: dict[tuple[object, ...], list[float]] = {}
    for ts, room, sensor, quantity, value in rows:
        hour = _local_hour(ts, tz)
        off = ts - hour
        cell = cells.setdefault((sensor, quantity, room, hour), [math.inf, -math.inf, 0.0, 0, 0, 0,
                                                                 math.inf, None, -math.inf, None])
        cell[0], cell[1] = min(cell[0], value), max(cell[1], value)
        if off < cell[6]:  # each hour's first and last reading, whatever order they came in
            cell[6], cell[7] = off, value
        if off > cell[8]:
            cell[8], cell[9] = off, value
        cell[2] += value
        cell[3] += 1
        cell[4] = int(cell[4]) | 1 << ((ts - hour) // 10_000)
        if quantity == "door" and value >= 1:
            cell[5] = int(cell[5]) | 1 << ((ts - hour) // 10_000)
        if quantity in ("temperature", "humidity"):
            b = math.floor(value * 10 + 0.5)
            old = out["hour_bins"].get((sensor, quantity, room, hour, b))
            minute = 1 << (off // 60_000)
            out["hour_bins"][(sensor, quantity, room, hour, b)] = (
                (1, off, off, minute) if old is None else (int(old[0]) + 1, min(int(old[1]), off),
                                                            max(int(old[2]), off), int(old[3]) | minute))
    out["hour"] = {k: (v[0], v[1], round(v[2], 6), v[3], v[4], v[5], v[6], v[7], v[8], v[9])
                   for k, v in cells.items()}
    return out


def _history(seed: int) -> list[Reading]:
    rng = random.Random(seed)
    readings = []
    for i in range(400):  # ~6.7 h at one a minute, jittered, with a gap, a door and a room move at 4 h
        if 150 <= i < 170:
            continue
        ts = T0 + i * MINUTE + rng.randint(-900, 900)
        room = "A" if i < 240 else "B"
        readings.append(Reading("th1", "temperature", round(20 + 3 * math.sin(i / 40) + rng.random(), 2), ts, room))
        readings.append(Reading("th1", "humidity", round(50 + 10 * math.cos(i / 50), 1), ts, room))
        if i % 7 == 0:
            readings.append(Reading("d1", "door", float(i % 3 == 0), ts + 5, "A"))
    return readings


def _write(path: Path, batches: Iterable[list[Reading]]) -> SqliteStore:
    store = SqliteStore(path, tz=KOLKATA)
    for batch in batches:
        store.write(Batch(readings=batch))
    return store


def test_in_order_summaries_equal_the_readings_aggregated_by_their_room_and_local_hour(tmp_path: Path) -> None:
    history = _history(1)
    store = _write(tmp_path / "a.db", [history[i:i + 50] for i in range(0, len(history), 50)])
    try:
        rows = list(store.readings(-(2**62), 2**62))
    finally:
        store.close()
    got = dump(tmp_path / "a.db")
    assert {room for _, room, *_ in rows} == {"A", "B"}
    assert {k[2] for k in got["hour"] if k[0] == "th1"} == {"A", "B"}  # the move splits the hour it falls in
    assert got == expected(rows, KOLKATA)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 97), replays=st.integers(0, 3))
def test_late_out_of_order_and_replayed_readings_give_the_in_order_summaries(
        tmp_path: Path, seed: int, batch: int, replays: int) -> None:
    """Same readings, any arrival order, duplicates replayed: identical summaries (one room, so the room history
    does not depend on the order either)."""
    history = [Reading(r.sensor, r.quantity, r.value, r.ts_ms, "A") for r in _history(seed)]
    in_order = tmp_path / f"in-{seed}-{batch}-{replays}.db"
    _write(in_order, [history]).close()
    shuffled = history[:]
    random.Random(seed).shuffle(shuffled)
    for _ in range(replays):  # an idempotent replay of some readings, in a different order
        shuffled += random.Random(seed + 1).sample(history, len(history) // 3)
    other = tmp_path / f"out-{seed}-{batch}-{replays}.db"
    store = _write(other, [shuffled[i:i + batch] for i in range(0, len(shuffled), batch)])
    try:
        assert store.count_readings() == len(history)
    finally:
        store.close()
    assert dump(other) == dump(in_order)


def test_a_late_reading_from_before_a_move_is_summarised_in_the_room_of_its_time(tmp_path: Path) -> None:
    store = _write(tmp_path / "late.db", [[Reading("th1", "temperature", 20.0, T0, "A")],
                                          [Reading("th1", "temperature", 21.0, T0 + 60 * MINUTE, "B")],
                                          [Reading("th1", "temperature", 19.0, T0 + 30 * MINUTE, "B")]])
    try:
        rows = list(store.readings(-(2**62), 2**62))
    finally:
        store.close()
    assert [room for _, room, *_ in rows] == ["A", "A", "B"]
    got = dump(tmp_path / "late.db")
    assert got == expected(rows, KOLKATA)
    assert sum(int(v[3]) for k, v in got["hour"].items() if k[2] == "A") == 2


def test_the_migration_builds_the_summaries_live_writes_keep_and_retention_leaves_them(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    history = _history(2)
    _write(path, [history[i:i + 64] for i in range(0, len(history), 64)]).close()
    live = dump(path)
    with sqlite3.connect(path) as conn:  # back to a file of the previous version, without summaries
        conn.executescript("DROP TABLE summary_hour; DROP TABLE summary_hour_bins;"
                           "UPDATE schema_migrations SET version = 4 WHERE component = 'store';")
    store = SqliteStore(path, tz=KOLKATA)
    try:
        assert dump(path) == live
        deleted = store.apply_retention(T0 + 400 * 86_400_000, raw_retention_days=30, quarantine_retention_days=0)
        assert deleted["readings"] == len(history) and store.count_readings() == 0
    finally:
        store.close()
    assert dump(path) == live


def test_step_6_fills_edges_and_bin_slots_from_the_raw_readings_a_summarised_file_still_holds(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    history = _history(3)
    _write(path, [history[i:i + 64] for i in range(0, len(history), 64)]).close()
    live = dump(path)
    cut = T0 + 2 * 3_600_000  # retention had deleted the raw readings of the first local hours
    with sqlite3.connect(path) as conn:  # back to a file summarised by step 5, before step 6's columns
        for table, columns in (("summary_hour", ("first_ms", "first_value", "last_ms", "last_value")),
                               ("summary_hour_bins", ("minutes",))):
            for column in columns:
                conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute("UPDATE schema_migrations SET version = 5 WHERE component = 'store'")
        conn.execute("DELETE FROM readings WHERE ts < ?", (cut,))
    SqliteStore(path, tz=KOLKATA).close()
    migrated = dump(path)
    assert migrated.keys() == live.keys() and migrated["hour"].keys() == live["hour"].keys()
    gone = [k for k in live["hour"] if int(k[3]) + 3_600_000 <= cut]
    assert gone  # hours wholly before the cut: counts kept, no edges (NULL), no bin slots (0)
    for key, row in live["hour"].items():
        if key in gone:
            assert migrated["hour"][key] == (*row[:6], None, None, None, None)
        elif int(key[3]) >= cut:
            assert migrated["hour"][key] == row
    for key, row in live["hour_bins"].items():
        if int(key[3]) + 3_600_000 <= cut:
            assert migrated["hour_bins"][key] == (*row[:3], 0)
        elif int(key[3]) >= cut:
            assert migrated["hour_bins"][key] == row
