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
from collector.store._summary import SummaryAggregate
from collector.store._write import DayCalendar, _insert_rows

__all__ = ["build_summaries"]

log = logging.getLogger(__name__)

_CHUNK = 50_000


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
        cursor = conn.execute("SELECT ts, value FROM readings WHERE series_id = ? ORDER BY ts", (sid,))
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
