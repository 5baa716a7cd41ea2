"""Reading the room history: each sensor's assignments, and raw readings tagged with the room of their time.

A reading belongs to the room its sensor was assigned to at the reading's timestamp (``sensor_rooms``;
see ``collector.store._write`` for how assignments are written).
"""

from __future__ import annotations

import heapq
import sqlite3
from collections.abc import Collection, Iterator
from typing import NamedTuple

from collector.store._schema import has_room_history, seed_assignments
from collector.store._types import RoomAssignment
from collector.store._values import value_sql

__all__ = ["ReadingRow", "assignments", "stream_readings"]

ReadingRow = tuple[int, str, str, str, float]
"""``(ts, room, sensor, quantity, value)``: SQLite gives rows as tuples, merged by ``heapq`` in ts order."""

_SERIES_ROWS = (f"SELECT ts, ?, ?, ?, {value_sql()} FROM readings WHERE series_id = ? AND ts >= ? AND ts < ?"
                " ORDER BY ts")


class _Span(NamedTuple):
    """Part of a series read as belonging to ``room``: ``lo <= ts < hi``."""

    room: str
    lo: int
    hi: int


def assignments(conn: sqlite3.Connection, sensor: str | None = None) -> dict[str, list[RoomAssignment]]:
    """Per sensor, its assignments oldest first (all sensors, or just ``sensor``)."""
    found: dict[str, list[tuple[str, int]]] = {}
    if has_room_history(conn):
        query = "SELECT sensor, room, from_ms FROM sensor_rooms"
        rows = conn.execute(
            query + " ORDER BY sensor, from_ms" if sensor is None else query + " WHERE sensor = ? ORDER BY from_ms",
            () if sensor is None else (sensor,),
        )
        for name, room, from_ms in rows:
            found.setdefault(str(name), []).append((str(room), int(from_ms)))
    # a file not opened for writing since sensor_rooms was added (read-only), or written to since by
    # an older archmon: its unassigned sensors are seen as on open for writing
    for name, room, from_ms in seed_assignments(conn, sensor):
        found.setdefault(name, [(room, from_ms)])
    return {
        name: [
            RoomAssignment(room, from_ms, spans[i + 1][1] if i + 1 < len(spans) else None)
            for i, (room, from_ms) in enumerate(spans)
        ]
        for name, spans in found.items()
    }


def stream_readings(
    conn: sqlite3.Connection,
    start_ms: int,
    end_ms: int,
    sensors: Collection[str] | None,
    rooms: Collection[str] | None,
) -> Iterator[ReadingRow]:
    """Raw readings with ``start_ms <= ts < end_ms``, in ts order, each with the room of its time
    (``SqliteStore.readings``): one cursor per series (one per assignment, in turn), merged."""
    spans_of = assignments(conn)
    streams: list[Iterator[ReadingRow]] = []
    for sid, sensor, quantity, room in conn.execute("SELECT id, sensor, quantity, room FROM series"):
        if sensors is not None and sensor not in sensors:
            continue
        spans = spans_of.get(sensor) or [RoomAssignment(str(room), 0, None)]
        parts: list[_Span] = []
        for i, span in enumerate(spans):
            # the first assignment also covers anything older (none is, but never drop a reading)
            lo = start_ms if i == 0 else max(start_ms, span.from_ms)
            hi = end_ms if span.to_ms is None else min(end_ms, span.to_ms)
            if lo < hi and (rooms is None or span.room in rooms):
                parts.append(_Span(span.room, lo, hi))
        if len(parts) == 1:  # the usual case: a bare cursor, no generator frame per row
            streams.append(conn.execute(_SERIES_ROWS, (parts[0].room, sensor, quantity, sid, parts[0].lo, parts[0].hi)))
        elif parts:
            streams.append(_series_rows(conn, int(sid), str(sensor), str(quantity), parts))
    try:
        yield from heapq.merge(*streams)
    finally:
        for stream in streams:
            stream.close()  # type: ignore[attr-defined]


def _series_rows(conn: sqlite3.Connection, sid: int, sensor: str, quantity: str, parts: list[_Span]
                 ) -> Iterator[ReadingRow]:
    """One series' readings, tagged with the room of each of its consecutive spans."""
    for part in parts:
        cursor = conn.execute(_SERIES_ROWS, (part.room, sensor, quantity, sid, part.lo, part.hi))
        try:
            yield from cursor
        finally:
            cursor.close()
