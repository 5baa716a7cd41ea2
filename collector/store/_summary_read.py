"""Reading the summaries kept forever (``collector.store._summary``) without touching raw readings.

:class:`SummaryReader` answers on one read connection, so everything a report reads comes from one
consistent snapshot (``SqliteStore.summaries()``). Files written before the summaries existed and opened
read-only (not migrated yet) read as having no summaries.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Collection
from typing import NamedTuple

from collector.store._schema import has_columns, has_table
from collector.store._summary import SLOT_COLUMNS
from collector.store._types import RoomAssignment

__all__ = ["HourBin", "SeriesRef", "SummaryHour", "SummaryReader"]


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
        present: the hour's 10-second slots holding a reading, as an integer bitmap (bit i = slot i).
        high: slots holding a reading with value ≥ 1 (binary quantities; 0 otherwise, and 0 unless asked for).
        first_ms, first_value, last_ms, last_value: the hour's first and last reading (UTC ms, value); None
            on an hour summarised before they were kept whose raw readings were gone.
    """

    start_ms: int
    room: str
    min: float
    max: float
    sum: float
    count: int
    present: int
    high: int
    first_ms: int | None = None
    first_value: float | None = None
    last_ms: int | None = None
    last_value: float | None = None


class HourBin(NamedTuple):
    """Readings of one local hour whose value rounds to ``bin`` tenths: how many, first and last time (UTC ms),
    and the minutes of the hour holding them (bit m = minute m; 0: not known, summarised before they were
    kept)."""

    start_ms: int
    room: str
    bin: int
    count: int
    first_ms: int
    last_ms: int
    minutes: int = 0


_HOURS = ("SELECT start_ms, room, min, max, sum, count, first_ms, first_value, last_ms, last_value,"
          " p0, p1, p2, p3, p4, p5{high} FROM summary_hour")
_HIGH = ", h0, h1, h2, h3, h4, h5"
_WORDS = struct.Struct(f"<{SLOT_COLUMNS}q")  # the stored signed 64-bit columns, little-endian: the bitmap


class SummaryReader:
    """Queries of the summary tables on one read connection (one snapshot).

    Args:
        conn: a read connection inside a read transaction (``ReaderPool.read()``).
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        # a file of the layout before step 6 opened read-only (not migrated yet) reads as without summaries
        self.available = has_table(conn, "summary_hour") and has_columns(conn, "summary_hour_bins", "minutes")

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

    def hours(self, series: SeriesRef, start_ms: int, end_ms: int, *, room: str | None = None,
              high: bool = False) -> list[SummaryHour]:
        """Hour summaries of ``series`` starting in ``[start_ms, end_ms)``, oldest first (one room, or all);
        ``high``: also the slots of value ≥ 1 (door openings)."""
        if not self.available:
            return []
        sql = _HOURS.format(high=_HIGH if high else "") + " WHERE series_id = ? AND start_ms >= ? AND start_ms < ?"
        params: list[object] = [series.id, start_ms, end_ms]
        if room is not None:
            sql += " AND room = ?"
            params.append(room)
        pack, make = _WORDS.pack, SummaryHour
        cursor = self._conn.execute(sql + " ORDER BY start_ms, room", params)
        out = []
        for r in cursor:
            start, first, last = r[0], r[6], r[8]
            out.append(make(start, r[1], r[2], r[3], r[4], r[5], int.from_bytes(pack(*r[10:16]), "little"),
                            int.from_bytes(pack(*r[16:22]), "little") if high else 0,
                            None if first is None else start + first, r[7],
                            None if last is None else start + last, r[9]))
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
        sql = ("SELECT start_ms, room, bin, count, first_ms, last_ms, minutes FROM summary_hour_bins"
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
        return [HourBin(int(s), str(r), int(b), int(c), int(s) + int(f), int(s) + int(la), int(m))
                for s, r, b, c, f, la, m in self._conn.execute(sql + " ORDER BY start_ms, bin", params)]
