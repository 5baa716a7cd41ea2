"""Reading the summaries kept forever (``collector.store._summary``) without touching raw readings.

:class:`SummaryReader` answers on one read connection, so everything a report reads comes from one
consistent snapshot (``SqliteStore.summaries()``). Files written before the summaries existed and opened
read-only (not migrated yet) read as having no summaries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import NamedTuple

from collector.store._schema import has_table
from collector.store._summary import columns_sql, slot_bytes
from collector.store._types import RoomAssignment

__all__ = ["HourBin", "HourCount", "SeriesRef", "SummaryHour", "SummaryReader"]


class SeriesRef(NamedTuple):
    """One stored series: its id in this file, sensor and quantity."""

    id: int
    sensor: str
    quantity: str


class SummaryHour(NamedTuple):
    """One local hour of one series in one room.

    Attributes:
        start_ms: UTC epoch ms of the local hour's start.
        room: the room the sensor was assigned to during these readings.
        min, max, sum, count: of the readings' values.
        present: the hour's 10-second slots holding a reading, little-endian bytes (slot i = bit i; 48 bytes,
            the first 45 used).
        high: slots holding a reading with value ≥ 1 (binary quantities; all zero otherwise).
    """

    start_ms: int
    room: str
    min: float
    max: float
    sum: float
    count: int
    present: bytes
    high: bytes


class HourBin(NamedTuple):
    """Readings of one local hour whose value rounds to ``bin`` tenths: how many, first and last time (UTC ms)."""

    start_ms: int
    room: str
    bin: int
    count: int
    first_ms: int
    last_ms: int


class HourCount(NamedTuple):
    """How many readings of one local hour in ``room`` had a value whose bin lies in a range."""

    start_ms: int
    room: str
    count: int


_HOURS = f"SELECT start_ms, room, min, max, sum, count, {columns_sql()} FROM summary_hour"


class SummaryReader:
    """Queries of the summary tables on one read connection (one snapshot).

    Args:
        conn: a read connection inside a read transaction (``ReaderPool.read()``).
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.available = has_table(conn, "summary_hour")

    def series(self, sensors: Collection[str] | None = None,
               quantities: Collection[str] | None = None) -> list[SeriesRef]:
        """Stored series, by sensor and quantity; only these sensors / quantities when given."""
        rows = self._conn.execute("SELECT id, sensor, quantity FROM series ORDER BY sensor, quantity").fetchall()
        return [SeriesRef(int(i), str(s), str(q)) for i, s, q in rows
                if (sensors is None or s in sensors) and (quantities is None or q in quantities)]

    def assignments(self) -> dict[str, list[RoomAssignment]]:
        """Every sensor's room assignments, oldest first (as ``SqliteStore.room_assignments``).

        Read from ``sensor_rooms`` alone: a file with summaries was migrated, and the migration gave every
        sensor with data its first assignment, so nothing needs deriving from raw readings here.
        """
        spans: dict[str, list[tuple[str, int]]] = {}
        for sensor, room, from_ms in self._conn.execute(
                "SELECT sensor, room, from_ms FROM sensor_rooms ORDER BY sensor, from_ms"):
            spans.setdefault(str(sensor), []).append((str(room), int(from_ms)))
        return {sensor: [RoomAssignment(room, start, rows[i + 1][1] if i + 1 < len(rows) else None)
                         for i, (room, start) in enumerate(rows)] for sensor, rows in spans.items()}

    def hours(self, series: SeriesRef, start_ms: int, end_ms: int, *, room: str | None = None) -> list[SummaryHour]:
        """Hour summaries of ``series`` starting in ``[start_ms, end_ms)``, oldest first (one room, or all)."""
        if not self.available:
            return []
        sql = _HOURS + " WHERE series_id = ? AND start_ms >= ? AND start_ms < ?"
        params: list[object] = [series.id, start_ms, end_ms]
        if room is not None:
            sql += " AND room = ?"
            params.append(room)
        out = []
        for row in self._conn.execute(sql + " ORDER BY start_ms, room", params):
            out.append(SummaryHour(int(row[0]), str(row[1]), float(row[2]), float(row[3]), float(row[4]), int(row[5]),
                                   slot_bytes(row[6:12]), slot_bytes(row[12:18])))
        return out

    def hour_bins(self, series: SeriesRef, start_ms: int, end_ms: int, *, room: str,
                  below: int | None = None, above: int | None = None) -> list[HourBin]:
        """Histogram bins of hours starting in ``[start_ms, end_ms)`` in ``room``, by hour and bin.

        Args:
            below: only bins under this one (with ``above``: bins under ``below`` or over ``above``).
            above: only bins over this one.
        """
        if not self.available:
            return []
        sql = ("SELECT start_ms, room, bin, count, first_ms, last_ms FROM summary_hour_bins"
               " WHERE series_id = ? AND start_ms >= ? AND start_ms < ? AND room = ?")
        params: list[object] = [series.id, start_ms, end_ms, room]
        outside = []
        if below is not None:
            outside.append("bin < ?")
            params.append(below)
        if above is not None:
            outside.append("bin > ?")
            params.append(above)
        if outside:
            sql += f" AND ({' OR '.join(outside)})"
        return [HourBin(int(s), str(r), int(b), int(c), int(s) + int(f), int(s) + int(la))
                for s, r, b, c, f, la in self._conn.execute(sql + " ORDER BY start_ms, bin", params)]

    def hour_counts(self, series: SeriesRef, start_ms: int, end_ms: int, *, room: str,
                    low_bin: int | None, high_bin: int | None) -> list[HourCount]:
        """Per hour starting in ``[start_ms, end_ms)`` in ``room``, the readings with ``low_bin <= bin <= high_bin``
        (None: no limit on that side), counted in SQLite; hours with none are left out."""
        if not self.available:
            return []
        lo = -(2**62) if low_bin is None else low_bin
        hi = 2**62 if high_bin is None else high_bin
        rows = self._conn.execute(
            "SELECT start_ms, room, sum(count) FROM summary_hour_bins WHERE series_id = ? AND start_ms >= ?"
            " AND start_ms < ? AND room = ? AND bin >= ? AND bin <= ? GROUP BY start_ms, room ORDER BY start_ms",
            (series.id, start_ms, end_ms, room, lo, hi))
        return [HourCount(int(s), str(r), int(c)) for s, r, c in rows]
