"""The store's write path: one transaction for a list of batches, rollups for new rows only."""

from __future__ import annotations

import dataclasses
import logging
import math
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import chain
from zoneinfo import ZoneInfo

from archmon.domain import Reading
from collector.records import Batch, MqttReceipt, WriteResult, mqtt_messages_counter
from collector.store._quarantine import QuarantineWriter
from collector.store._series import SeriesCache
from collector.store._summary import SummaryAggregate
from collector.store._values import encode_value, value_sql

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

    def hour_start(self, ts_ms: int) -> int:
        """UTC epoch ms of the start of the local hour bucket holding ``ts_ms``: local midnight plus whole hours
        (``collector.store._summary``; on a DST day the repeated or shortened hour is one more bucket)."""
        day = self.day_start(ts_ms)
        return day + (ts_ms - day) // HOUR_MS * HOUR_MS


_AVAILABILITY_UPSERT = """
INSERT INTO availability (sensor, state, ts_ms) VALUES (?, ?, ?)
ON CONFLICT (sensor) DO UPDATE SET state = excluded.state, ts_ms = excluded.ts_ms
WHERE excluded.ts_ms >= availability.ts_ms
"""


class _ConflictLog:
    warned = False


def _duplicate(cur: sqlite3.Cursor, series_id: int, reading: Reading, counters: dict[str, int]) -> None:
    row = cur.execute(
        f"SELECT {value_sql()} FROM readings WHERE series_id = ? AND ts = ?", (series_id, reading.ts_ms)
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


_READINGS_HEAD = "INSERT INTO readings (series_id, ts, value)"
_INSERT_ONE = f"{_READINGS_HEAD} VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
_ROLLUP_COLUMNS = "(series_id, start_ms, min, max, sum, count)"
_ROLLUP_CONFLICT = """ON CONFLICT (series_id, start_ms) DO UPDATE SET
    min = min(min, excluded.min), max = max(max, excluded.max),
    sum = sum + excluded.sum, count = count + excluded.count"""
_MAX_ROWS_PER_STATEMENT = 128  # 128 rows x 6 columns stays under SQLite's oldest limit of 999 parameters
_GAUGE_SET = (
    "INSERT INTO gauges (name, value, ts_ms) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value, ts_ms = excluded.ts_ms"
)
_COUNTER_ADD = (
    "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
)

_RECEIPTS_HEAD = "INSERT INTO mqtt_packet_receipts (source, mid, digest, received_ms, seq)"
# One receipt per packet id: the newest message sent under it (the broker has no other in flight with it).
_RECEIPTS_CONFLICT = (
    "ON CONFLICT (source, mid) DO UPDATE SET digest = excluded.digest, received_ms = excluded.received_ms,"
    " seq = excluded.seq"
)

_Row = tuple[int, int, float]  # (series id, ts, value)
_Stored = tuple[int, int, int | float]  # (series id, ts, value as readings.value holds it: collector.store._values)


def _rows(cur: sqlite3.Cursor, readings: Sequence[Reading], series: SeriesCache) -> tuple[list[_Row], list[_Stored]]:
    """``(series id, ts, value)`` of each reading, and the same rows as stored (value encoded); raises
    ValueError for a value that is not finite."""
    series.prefetch(cur, readings)
    ids = series.ids
    rows: list[_Row] = []
    stored: list[_Stored] = []
    append = rows.append
    append_stored = stored.append
    for reading in readings:
        known = ids.get((reading.sensor, reading.quantity))
        if known is not None and (reading.room == known[1] or not reading.room) and reading.ts_ms >= known[2]:
            sid = known[0]
        else:
            sid = series.series_id(cur, reading)
        value = float(reading.value)
        if not math.isfinite(value):
            raise ValueError(
                f"{reading.sensor}/{reading.quantity} at {reading.ts_ms}: value {value!r} is not a finite number"
            )
        append((sid, reading.ts_ms, value))
        append_stored((sid, reading.ts_ms, encode_value(value)))
    return rows, stored


def _insert_rows(conn: sqlite3.Connection, head: str, tail: str, rows: Sequence[tuple[object, ...]],
                 max_rows: int = _MAX_ROWS_PER_STATEMENT) -> int:
    """Run ``{head} VALUES (...), (...) {tail}`` for ``rows`` in few statements; returns rows changed.

    The sqlite3 module releases the GIL around every statement step, and each release lets the MQTT thread
    in, so a transaction is written in a handful of multi-row statements (128, 64, ... rows, so at most
    eight different statements are ever cached) instead of one step per row. ``max_rows`` × the columns
    of a row must stay under 999 parameters.
    """
    if not rows:
        return 0
    placeholder = "(" + ", ".join("?" * len(rows[0])) + ")"
    changed = 0
    start = 0
    size = max_rows
    while start < len(rows):
        while size > len(rows) - start:
            size //= 2
        sql = f"{head} VALUES {', '.join([placeholder] * size)} {tail}"
        changed += conn.execute(sql, list(chain.from_iterable(rows[start : start + size]))).rowcount
        start += size
    return changed


def _insert_all_new(conn: sqlite3.Connection, rows: list[_Stored]) -> bool:
    """Insert ``rows`` if none of them is a duplicate (the usual case) and return True; else insert nothing."""
    conn.execute("SAVEPOINT readings_fast")
    try:
        all_new = _insert_rows(conn, _READINGS_HEAD, "ON CONFLICT DO NOTHING", rows) == len(rows)
        if not all_new:
            conn.execute("ROLLBACK TO readings_fast")
    finally:
        conn.execute("RELEASE readings_fast")
    return all_new


def _aggregate(rows: list[_Row], calendar: DayCalendar, hours: _Agg, days: _Agg) -> None:
    """Add newly stored rows to the hour and day aggregates (min, max, sum, count per bucket)."""
    groups: dict[tuple[int, int], list[float]] = {}
    for sid, ts, value in rows:
        key = (sid, ts - ts % HOUR_MS)
        values = groups.get(key)
        if values is None:
            groups[key] = [value]
        else:
            values.append(value)
    straddling: set[tuple[int, int]] = set()
    for (sid, hour), values in groups.items():
        cell = (min(values), max(values), sum(values), len(values))
        _merge(hours, (sid, hour), cell)
        day = calendar.day_start(hour)
        if calendar.day_start(hour + HOUR_MS - 1) == day:
            _merge(days, (sid, day), cell)
        else:  # a UTC hour cut by local midnight (zones with a half-hour offset): per reading
            straddling.add((sid, hour))
    if straddling:
        for sid, ts, value in rows:
            if (sid, ts - ts % HOUR_MS) in straddling:
                _merge(days, (sid, calendar.day_start(ts)), (value, value, value, 1))


def _merge(agg: _Agg, key: tuple[int, int], cell: tuple[float, float, float, int]) -> None:
    old = agg.get(key)
    if old is None:
        agg[key] = list(cell)
    else:
        old[0] = min(old[0], cell[0])
        old[1] = max(old[1], cell[1])
        old[2] += cell[2]
        old[3] += cell[3]


def write_batches(
    conn: sqlite3.Connection,
    batches: Sequence[Batch],
    series: SeriesCache,
    calendar: DayCalendar,
    bad_input: QuarantineWriter,
) -> list[WriteResult]:
    """Write ``batches`` inside the caller's open transaction; one result per batch.

    Duplicate readings (same sensor, quantity, ts) are ignored and counted; rollups are updated only for
    newly inserted rows. Counter deltas are added, plus ``stored`` and ``duplicates``. MQTT receipts are
    upserted (the newest receipt of a source and packet id replaces the one before). Quarantine records and
    unassigned devices go through ``bad_input``, within their limits.

    Readings of all batches are first inserted together; only if that finds a duplicate is it undone and
    redone reading by reading to tell which ones were new.
    """
    cur = conn.cursor()
    counters: dict[str, int] = {}
    per_batch = [_rows(cur, batch.readings, series) for batch in batches]
    series.write_assignments(cur)
    everything = [row for rows, _ in per_batch for row in rows]
    results: list[WriteResult] = []
    new_rows: list[_Row]
    rooms = _RoomsAt(cur, series)
    if not everything or _insert_all_new(conn, [row for _, stored in per_batch for row in stored]):
        new_rows = everything
        results = [WriteResult(stored=rooms.as_stored(batch.readings)) for batch in batches]
    else:
        new_rows = []
        for batch, (rows, encoded) in zip(batches, per_batch, strict=True):
            stored: list[Reading] = []
            duplicates = 0
            for reading, row, as_stored in zip(batch.readings, rows, encoded, strict=True):
                if cur.execute(_INSERT_ONE, as_stored).rowcount == 1:
                    stored.append(reading)
                    new_rows.append(row)
                else:
                    duplicates += 1
                    _duplicate(cur, row[0], reading, counters)
            results.append(WriteResult(stored=rooms.as_stored(stored), duplicates=duplicates))
    hours: _Agg = {}
    days: _Agg = {}
    _aggregate(new_rows, calendar, hours, days)
    _summarise(cur, new_rows, series, calendar)
    bad_input.write_quarantine(cur, [q for batch in batches for q in batch.quarantine], counters)
    bad_input.write_unassigned(cur, [u for batch in batches for u in batch.unassigned], counters)
    availability = [(a.sensor, a.state, a.ts_ms) for batch in batches for a in batch.availability]
    if availability:
        cur.executemany(_AVAILABILITY_UPSERT, availability)
    for batch, result in zip(batches, results, strict=True):
        for name, delta in batch.counters.items():
            counters[name] = counters.get(name, 0) + delta
        counters["stored"] = counters.get("stored", 0) + len(result.stored)
        counters["duplicates"] = counters.get("duplicates", 0) + result.duplicates
    for table, agg in (("rollup_hour", hours), ("rollup_day", days)):
        rollups = [(k[0], k[1], v[0], v[1], v[2], int(v[3])) for k, v in agg.items()]
        _insert_rows(conn, f"INSERT INTO {table} {_ROLLUP_COLUMNS}", _ROLLUP_CONFLICT, rollups)
    deltas = [(name, delta) for name, delta in counters.items() if delta]
    if deltas:
        cur.executemany(_COUNTER_ADD, deltas)
    receipts = [receipt for batch in batches for receipt in batch.receipts]
    if receipts:
        _write_receipts(conn, receipts)
    gauges = {name: state for batch in batches for name, state in batch.gauges.items()}
    if gauges:
        cur.executemany(_GAUGE_SET, [(name, value, ts) for name, (value, ts) in gauges.items()])
    return results


class _RoomsAt:
    """The room each reading is filed under: its sensor's assignment at the reading's time (assignments of this
    transaction already written). What the results of :func:`write_batches` carry, so whoever takes the stored
    readings (the forward outbox, the alert feed) sees them in the room ``SqliteStore.readings`` gives them."""

    def __init__(self, cur: sqlite3.Cursor, series: SeriesCache) -> None:
        self._cur = cur
        self._series = series
        self._newest: dict[str, tuple[str, int | None]] = {}

    def room(self, sensor: str, ts_ms: int) -> str:
        """The room ``sensor`` was assigned to at ``ts_ms`` ('' for a sensor without any assignment)."""
        newest = self._newest.get(sensor)
        if newest is None:
            newest = self._newest[sensor] = self._series.newest_assignment(self._cur, sensor)
        room, since = newest
        if since is None or ts_ms >= since:
            return room
        return self._series.room_at(self._cur, sensor, ts_ms)

    def as_stored(self, readings: Sequence[Reading]) -> tuple[Reading, ...]:
        """``readings`` with the room they are stored under (the same objects where it is theirs already)."""
        out = []
        for reading in readings:
            room = self.room(reading.sensor, reading.ts_ms)
            out.append(reading if room == reading.room else dataclasses.replace(reading, room=room))
        return tuple(out)


def _summarise(cur: sqlite3.Cursor, rows: list[_Row], series: SeriesCache, calendar: DayCalendar) -> None:
    """Add newly stored rows to the summaries kept forever (``collector.store._summary``), each in the room its
    sensor was assigned to at the reading's time (assignments are written before this is called)."""
    if not rows:
        return
    per_series: dict[int, list[tuple[int, float]]] = {}
    for sid, ts, value in rows:
        found = per_series.get(sid)
        if found is None:
            per_series[sid] = [(ts, value)]
        else:
            found.append((ts, value))
    summary = SummaryAggregate(calendar.hour_start)
    for sid, points in per_series.items():
        sensor, quantity = series.key_of(cur, sid)
        room, since = series.newest_assignment(cur, sensor)
        if since is None or min(points)[0] >= since:
            summary.add(sid, room, quantity, sorted(points))
            continue
        by_room: dict[str, list[tuple[int, float]]] = {}
        for point in points:  # late readings from before the sensor's newest move: look each one up
            at = room if point[0] >= since else series.room_at(cur, sensor, point[0])
            by_room.setdefault(at, []).append(point)
        for at, part in by_room.items():
            summary.add(sid, at, quantity, sorted(part))
    summary.write(cur.connection, _insert_rows)


def _write_receipts(conn: sqlite3.Connection, receipts: Sequence[MqttReceipt]) -> None:
    """Upsert receipts, each numbered with its source's message counter as of this transaction."""
    seqs: dict[str, int] = {}
    for source in {receipt.source for receipt in receipts}:
        row = conn.execute("SELECT value FROM counters WHERE name = ?", (mqtt_messages_counter(source),)).fetchone()
        seqs[source] = 0 if row is None else int(row[0])
    rows = [(r.source, r.mid, bytes(r.digest), r.received_ms, seqs[r.source]) for r in receipts]
    _insert_rows(conn, _RECEIPTS_HEAD, _RECEIPTS_CONFLICT, rows)
