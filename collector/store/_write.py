"""The store's write path: one transaction for a list of batches, rollups for new rows only."""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from archmon.domain import Reading
from collector.records import Batch, WriteResult

__all__ = ["HOUR_MS", "DayCalendar", "SeriesCache", "write_batches"]

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000

# (series_id, bucket start) -> [min, max, sum, count]
_Agg = dict[tuple[int, int], list[float]]


class DayCalendar:
    """Maps a UTC instant to the start of its calendar day in a zone (DST and half-hour offsets included)."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._lo = 0
        self._hi = 0

    def _midnight(self, year: int, month: int, day: int) -> int:
        # fold=0 on a non-existent midnight (DST starting at 00:00) gives the pre-transition offset,
        # which is exactly the instant the day begins.
        return round(datetime(year, month, day, tzinfo=self.tz).timestamp() * 1000)

    def day_start(self, ts_ms: int) -> int:
        """UTC epoch ms of the local midnight that starts the day containing ``ts_ms``."""
        if self._lo <= ts_ms < self._hi:
            return self._lo
        local = datetime.fromtimestamp(ts_ms / 1000, tz=self.tz).date()
        lo = self._midnight(local.year, local.month, local.day)
        following = local + timedelta(days=1)
        hi = self._midnight(following.year, following.month, following.day)
        self._lo, self._hi = lo, hi
        return lo


class SeriesCache:
    """``(sensor, quantity) -> (series id, room)`` for the write connection; cleared on rollback."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], tuple[int, str]] = {}

    def clear(self) -> None:
        """Forget everything (a rolled-back transaction may have created series rows)."""
        self._ids.clear()

    def series_id(self, cur: sqlite3.Cursor, reading: Reading) -> int:
        """The series id of ``reading``, creating the series (or updating its room) as needed."""
        key = (reading.sensor, reading.quantity)
        known = self._ids.get(key)
        if known is None:
            row = cur.execute("SELECT id, room FROM series WHERE sensor = ? AND quantity = ?", key).fetchone()
            if row is None:
                cur.execute(
                    "INSERT INTO series (sensor, quantity, room) VALUES (?, ?, ?)",
                    (reading.sensor, reading.quantity, reading.room),
                )
                assert cur.lastrowid is not None
                known = (cur.lastrowid, reading.room)
            else:
                known = (int(row[0]), str(row[1]))
            self._ids[key] = known
        if reading.room and reading.room != known[1]:
            cur.execute("UPDATE series SET room = ? WHERE id = ?", (reading.room, known[0]))
            known = (known[0], reading.room)
            self._ids[key] = known
        return known[0]


def _add(agg: _Agg, key: tuple[int, int], value: float) -> None:
    cell = agg.get(key)
    if cell is None:
        agg[key] = [value, value, value, 1]
    else:
        cell[0] = min(cell[0], value)
        cell[1] = max(cell[1], value)
        cell[2] += value
        cell[3] += 1


_ROLLUP_UPSERT = """
INSERT INTO {table} (series_id, start_ms, min, max, sum, count) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (series_id, start_ms) DO UPDATE SET
    min = min(min, excluded.min), max = max(max, excluded.max),
    sum = sum + excluded.sum, count = count + excluded.count
"""

_UNASSIGNED_UPSERT = """
INSERT INTO unassigned (source, device_topic, format, first_seen_ms, last_seen_ms, count,
                        last_payload, last_readings_json)
VALUES (?, ?, ?, ?, ?, 1, ?, ?)
ON CONFLICT (source, device_topic) DO UPDATE SET
    first_seen_ms = min(first_seen_ms, excluded.first_seen_ms),
    count = count + 1,
    format = CASE WHEN excluded.last_seen_ms >= last_seen_ms THEN excluded.format ELSE format END,
    last_payload = CASE WHEN excluded.last_seen_ms >= last_seen_ms THEN excluded.last_payload
                        ELSE last_payload END,
    last_readings_json = CASE WHEN excluded.last_seen_ms >= last_seen_ms THEN excluded.last_readings_json
                              ELSE last_readings_json END,
    last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)
"""

_AVAILABILITY_UPSERT = """
INSERT INTO availability (sensor, state, ts_ms) VALUES (?, ?, ?)
ON CONFLICT (sensor) DO UPDATE SET state = excluded.state, ts_ms = excluded.ts_ms
WHERE excluded.ts_ms >= availability.ts_ms
"""


class _ConflictLog:
    warned = False


def _duplicate(cur: sqlite3.Cursor, series_id: int, reading: Reading, counters: dict[str, int]) -> None:
    row = cur.execute(
        "SELECT value FROM readings WHERE series_id = ? AND ts = ?", (series_id, reading.ts_ms)
    ).fetchone()
    if row is not None and float(row[0]) != reading.value:
        counters["duplicates_conflicting"] = counters.get("duplicates_conflicting", 0) + 1
        level = logging.DEBUG if _ConflictLog.warned else logging.WARNING
        _ConflictLog.warned = True
        log.log(
            level,
            "store: %s/%s at %d already stored as %r; new value %r ignored (counted in duplicates_conflicting)",
            reading.sensor,
            reading.quantity,
            reading.ts_ms,
            row[0],
            reading.value,
        )


def write_batches(
    conn: sqlite3.Connection, batches: Sequence[Batch], series: SeriesCache, calendar: DayCalendar
) -> list[WriteResult]:
    """Write ``batches`` inside the caller's open transaction; one result per batch.

    Duplicate readings (same sensor, quantity, ts) are ignored and counted; rollups are updated only for
    newly inserted rows. Counter deltas are added, plus ``stored`` and ``duplicates``.
    """
    cur = conn.cursor()
    hours: _Agg = {}
    days: _Agg = {}
    counters: dict[str, int] = {}
    results: list[WriteResult] = []
    for batch in batches:
        stored: list[Reading] = []
        duplicates = 0
        for reading in batch.readings:
            sid = series.series_id(cur, reading)
            value = float(reading.value)
            if not math.isfinite(value):
                raise ValueError(
                    f"{reading.sensor}/{reading.quantity} at {reading.ts_ms}: value {value!r} is not a finite number"
                )
            cur.execute(
                "INSERT INTO readings (series_id, ts, value) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (sid, reading.ts_ms, value),
            )
            if cur.rowcount == 1:
                stored.append(reading)
                _add(hours, (sid, reading.ts_ms - reading.ts_ms % HOUR_MS), value)
                _add(days, (sid, calendar.day_start(reading.ts_ms)), value)
            else:
                duplicates += 1
                _duplicate(cur, sid, reading, counters)
        if batch.quarantine:
            cur.executemany(
                "INSERT INTO quarantine (received_ms, source, topic, sensor, stage, reason, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (q.received_ms, q.source, q.topic, q.sensor, q.stage, q.reason, bytes(q.payload))
                    for q in batch.quarantine
                ],
            )
        if batch.unassigned:
            cur.executemany(
                _UNASSIGNED_UPSERT,
                [
                    (
                        u.source,
                        u.device_topic,
                        u.format,
                        u.received_ms,
                        u.received_ms,
                        bytes(u.payload),
                        u.readings_json,
                    )
                    for u in batch.unassigned
                ],
            )
        if batch.availability:
            cur.executemany(_AVAILABILITY_UPSERT, [(a.sensor, a.state, a.ts_ms) for a in batch.availability])
        for name, delta in batch.counters.items():
            counters[name] = counters.get(name, 0) + delta
        counters["stored"] = counters.get("stored", 0) + len(stored)
        counters["duplicates"] = counters.get("duplicates", 0) + duplicates
        results.append(WriteResult(stored=tuple(stored), duplicates=duplicates))
    for table, agg in (("rollup_hour", hours), ("rollup_day", days)):
        if agg:
            cur.executemany(
                _ROLLUP_UPSERT.format(table=table),
                [(k[0], k[1], v[0], v[1], v[2], int(v[3])) for k, v in agg.items()],
            )
    deltas = [(name, delta) for name, delta in counters.items() if delta]
    if deltas:
        cur.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            deltas,
        )
    return results
