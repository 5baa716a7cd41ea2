"""Building the summaries (``collector.store._summary``) of a file from its raw readings: the migration that
adds them to a file written before they existed.

Only the raw readings still stored can be summarised: hours whose raw readings retention had deleted before
the migration keep their ``rollup_hour``/``rollup_day`` aggregates but get no summary (no coverage, no
histogram), and a report counts them as without data. The migration logs how many readings it summarised.
"""

from __future__ import annotations

import bisect
import logging
import sqlite3
from zoneinfo import ZoneInfo

from collector.store._rooms import assignments
from collector.store._schema import seed_assignments
from collector.store._summary import BINNED_QUANTITIES, MINUTE_MS, SummaryAggregate, value_bin
from collector.store._values import value_sql
from collector.store._write import DayCalendar, _insert_rows

__all__ = ["build_summaries", "fill_summary_edges"]

log = logging.getLogger(__name__)

_CHUNK = 50_000
# Steps 5 and 6 read a file's readings before step 7 re-encodes them: the decoding reads both layouts.
_SERIES_VALUES = f"SELECT ts, {value_sql()} FROM readings WHERE series_id = ? ORDER BY ts"


def build_summaries(conn: sqlite3.Connection, tz_name: str, where: str = "") -> int:
    """Summarise every stored raw reading into the (empty) summary tables; returns readings summarised.

    Runs inside the caller's transaction. Sensors with readings but no room assignment are given their
    first one first (as on every open, ``seed_assignments``), so each reading lands in its room.
    """
    seeds = seed_assignments(conn)
    if seeds:
        conn.executemany("INSERT INTO sensor_rooms (sensor, room, from_ms) VALUES (?, ?, ?)", seeds)
    spans = assignments(conn)
    calendar = DayCalendar(ZoneInfo(tz_name))
    summary = SummaryAggregate(calendar.hour_start)
    total = 0
    for sid, sensor, quantity, series_room in conn.execute("SELECT id, sensor, quantity, room FROM series").fetchall():
        periods = spans.get(str(sensor)) or []
        starts = [span.from_ms for span in periods]
        rooms = [span.room for span in periods]
        cursor = conn.execute(_SERIES_VALUES, (sid,))
        while True:
            rows = cursor.fetchmany(_CHUNK)
            if not rows:
                break
            part: list[tuple[int, float]] = []
            room = None
            for ts, value in rows:
                at = rooms[max(0, bisect.bisect_right(starts, ts) - 1)] if rooms else str(series_room)
                if at != room and part:
                    summary.add(int(sid), str(room), str(quantity), part)
                    part = []
                room = at
                part.append((int(ts), float(value)))
            if part:
                summary.add(int(sid), str(room), str(quantity), part)
            summary.write(conn, _insert_rows)
            total += len(rows)
    if total:
        log.info("%s: summaries built from %d stored raw readings (raw readings deleted earlier are not in them)",
                 where or "store", total)
    return total


_EDGE_UPDATE = ("UPDATE summary_hour SET first_ms = ?, first_value = ?, last_ms = ?, last_value = ?"
                " WHERE series_id = ? AND room = ? AND start_ms = ?")
_BITS_UPDATE = "UPDATE summary_hour_bins SET minutes = ? WHERE series_id = ? AND room = ? AND start_ms = ? AND bin = ?"


def fill_summary_edges(conn: sqlite3.Connection, tz_name: str, where: str = "") -> int:
    """Fill what schema step 6 added to summaries built before it (each hour's first and last reading, each
    bin's minutes) from the raw readings still stored; returns the readings read.

    Runs inside the caller's transaction; the summaries' counts are left as they are. An hour whose raw
    readings retention had deleted keeps NULL / 0 (:mod:`collector.store._summary`); an hour retention had
    cut into gets the edges and slots of what is left.
    """
    spans = assignments(conn)
    calendar = DayCalendar(ZoneInfo(tz_name))
    total = 0
    for sid, sensor, quantity, series_room in conn.execute("SELECT id, sensor, quantity, room FROM series").fetchall():
        periods = spans.get(str(sensor)) or []
        starts = [span.from_ms for span in periods]
        rooms = [span.room for span in periods]
        binned = quantity in BINNED_QUANTITIES
        edges: dict[tuple[str, int], list[float]] = {}  # (room, hour) -> first off, value, last off, value
        bits: dict[tuple[str, int, int], int] = {}
        for ts, value in conn.execute(_SERIES_VALUES, (sid,)):
            room = rooms[max(0, bisect.bisect_right(starts, ts) - 1)] if rooms else str(series_room)
            start = calendar.hour_start(int(ts))
            offset = int(ts) - start
            cell = edges.get((room, start))
            if cell is None:
                edges[(room, start)] = [offset, value, offset, value]
            else:
                cell[2], cell[3] = offset, value
            if binned:
                key = (room, start, value_bin(float(value)))
                bits[key] = bits.get(key, 0) | 1 << (offset // MINUTE_MS)
            total += 1
        conn.executemany(_EDGE_UPDATE, [(int(c[0]), c[1], int(c[2]), c[3], sid, room, start)
                                        for (room, start), c in edges.items()])
        conn.executemany(_BITS_UPDATE, [(b, sid, room, start, k) for (room, start, k), b in bits.items()])
    if total:
        log.info("%s: summaries given their hours' first and last readings and bins' slots from %d stored raw "
                 "readings (hours deleted earlier by retention have none)", where or "store", total)
    return total
