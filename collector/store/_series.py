"""Series ids and room history of the store's write connection (``SeriesCache``).

A reading's series is looked up (or created) once and cached; a sensor's room history (``sensor_rooms``)
is kept in step with the readings of each transaction. See :class:`SeriesCache`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from itertools import chain
from typing import TypeVar

from archmon.domain import Reading

__all__ = ["SeriesCache"]

log = logging.getLogger("collector.store._write")

_MAX_ROWS_PER_STATEMENT = 128  # 128 rows x 3 columns: few statements, under SQLite's oldest parameter limit
_IN_LIMIT = 500  # parameters per IN (...) list, under SQLite's oldest limit of 999
T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]



# first and newest stored reading of a sensor (one index probe per series)
_SENSOR_SPAN = (
    "SELECT min(first), max(last) FROM (SELECT (SELECT min(ts) FROM readings WHERE series_id = s.id) AS first,"
    " (SELECT max(ts) FROM readings WHERE series_id = s.id) AS last FROM series s WHERE s.sensor = ?)"
)
_SENSOR_LAST_TS = "SELECT max((SELECT max(ts) FROM readings WHERE series_id = s.id)) FROM series s WHERE s.sensor = ?"
_UNASSIGNED = 2**63  # cached first_from of a sensor without an assignment: all its readings take the slow path
_PENDING = "\x00pending"  # room cached for a sensor whose move is being written: never matches a reading


class _SensorRooms:
    """A sensor's room-assignment state as stored, plus the changes the open transaction will write."""

    __slots__ = ("earliest", "first_from", "last_from", "lower_first", "moves", "new", "room")

    def __init__(self, room: str, first_from: int | None, last_from: int | None) -> None:
        self.room = room  # room of the newest assignment ('' if none), including pending moves
        self.first_from = first_from  # from_ms of the first stored assignment
        self.last_from = last_from  # from_ms of the newest stored assignment
        self.moves: list[tuple[str, int]] = []  # pending (room, from_ms) in arrival order
        self.lower_first: int | None = None  # pending new from_ms of the first assignment
        self.earliest: int | None = None  # earliest reading seen while the sensor had no assignment
        self.new: str | None = None  # the room its series were created with in this transaction (no data before)


class SeriesCache:
    """Series ids and room assignments for the write connection; cleared on rollback.

    Room history: a sensor's room is stored as assignments ``sensor_rooms(sensor, from_ms, room)``. A
    reading whose (non-empty) room differs from the sensor's newest assignment starts a new assignment
    in the same transaction, from the earliest timestamp among the sensor's readings with that room in
    the transaction. Only readings newer than everything already stored for the sensor count: a late
    reading (device buffer, redelivery, spool replayed after a config change) never moves the sensor and
    is attributed to the room assigned at its timestamp, whatever room it carries, so stored history
    never moves. The first assignment starts at the sensor's first reading and is moved back when an
    older reading arrives, so every reading of the sensor lies inside some assignment. ``series.room`` of
    all the sensor's series follows the newest assignment (what older archmon versions read).
    """

    def __init__(self) -> None:
        # (sensor, quantity) -> (series id, sensor's room, sensor's first from_ms): the write fast path
        self.ids: dict[tuple[str, str], tuple[int, str, int]] = {}
        self._sensors: dict[str, _SensorRooms] = {}
        self._quantities: dict[str, set[str]] = {}  # sensor -> quantities cached in ids
        self._pending: set[str] = set()
        # sensor -> its newest reading stored before the open transaction (looked up on a room mismatch)
        self._stored_last: dict[str, int | None] = {}
        self._found: dict[tuple[str, str], int] = {}  # series ids looked up or created by prefetch()
        self._keys: dict[int, tuple[str, str]] = {}  # series id -> (sensor, quantity)

    def clear(self) -> None:
        """Forget everything (a rolled-back transaction may have created series rows or assignments)."""
        self.ids.clear()
        self._sensors.clear()
        self._quantities.clear()
        self._pending.clear()
        self._stored_last.clear()
        self._found.clear()
        self._keys.clear()

    def prefetch(self, cur: sqlite3.Cursor, readings: Sequence[Reading]) -> None:
        """Look up (or create) the series and room state of every sensor in ``readings`` not cached yet, in a
        few statements for all of them: first contact with thousands of new sensors costs what a later
        round costs, not several queries per sensor."""
        keys: dict[tuple[str, str], str] = {}
        for reading in readings:
            key = (reading.sensor, reading.quantity)
            if key not in self.ids and key not in keys:
                keys[key] = reading.room
        if not keys:
            return
        sensors = sorted({sensor for sensor, _ in keys if sensor not in self._sensors})
        had_series: set[str] = set()
        for part in _chunks(sorted({sensor for sensor, _ in keys}), _IN_LIMIT):
            marks = ", ".join("?" * len(part))
            for sensor, quantity, sid in cur.execute(
                f"SELECT sensor, quantity, id FROM series WHERE sensor IN ({marks})", part
            ):
                self._found[(str(sensor), str(quantity))] = int(sid)
                had_series.add(str(sensor))
        rows: dict[str, list[tuple[str, int]]] = {}
        for part in _chunks(sensors, _IN_LIMIT):
            marks = ", ".join("?" * len(part))
            for sensor, room, from_ms in cur.execute(
                f"SELECT sensor, room, from_ms FROM sensor_rooms WHERE sensor IN ({marks}) ORDER BY sensor, from_ms",
                part,
            ):
                rows.setdefault(str(sensor), []).append((str(room), int(from_ms)))
        for sensor in sensors:
            spans = rows.get(sensor)
            self._sensors[sensor] = (
                _SensorRooms(spans[-1][0], spans[0][1], spans[-1][1]) if spans else _SensorRooms("", None, None)
            )
        missing = [(sensor, quantity, room or self._sensors[sensor].room)
                   for (sensor, quantity), room in keys.items() if (sensor, quantity) not in self._found]
        for part in _chunks(missing, _MAX_ROWS_PER_STATEMENT):
            values = ", ".join(["(?, ?, ?)"] * len(part))
            created = cur.execute(
                f"INSERT INTO series (sensor, quantity, room) VALUES {values} RETURNING id, sensor, quantity",
                list(chain.from_iterable(part)),
            ).fetchall()
            for sid, sensor, quantity in created:
                self._found[(str(sensor), str(quantity))] = int(sid)
        for sensor, _, room in missing:
            if sensor not in had_series:
                state = self._sensors[sensor]
                if state.first_from is None and state.new is None:
                    state.new = room

    def _sensor(self, cur: sqlite3.Cursor, sensor: str) -> _SensorRooms:
        state = self._sensors.get(sensor)
        if state is None:
            rows = cur.execute(
                "SELECT room, from_ms FROM sensor_rooms WHERE sensor = ? ORDER BY from_ms", (sensor,)
            ).fetchall()
            if rows:
                state = _SensorRooms(str(rows[-1][0]), int(rows[0][1]), int(rows[-1][1]))
            else:
                state = _SensorRooms("", None, None)
            self._sensors[sensor] = state
        return state

    def _late(self, cur: sqlite3.Cursor, state: _SensorRooms, sensor: str, ts: int) -> bool:
        """Whether ``ts`` is at or before the newest reading already stored for a sensor with an assignment."""
        if state.first_from is None:
            return False
        if sensor not in self._stored_last:
            row = cur.execute(_SENSOR_LAST_TS, (sensor,)).fetchone()
            self._stored_last[sensor] = None if row[0] is None else int(row[0])
        last = self._stored_last[sensor]
        return last is not None and ts <= last

    def series_id(self, cur: sqlite3.Cursor, reading: Reading) -> int:
        """The series id of ``reading``, creating the series and noting a room change as needed."""
        key = (reading.sensor, reading.quantity)
        state = self._sensor(cur, reading.sensor)
        known = self.ids.get(key)
        found = self._found.pop(key, None) if known is None else None
        if found is not None:
            sid = found
        elif known is None:
            row = cur.execute("SELECT id FROM series WHERE sensor = ? AND quantity = ?", key).fetchone()
            if row is None:
                cur.execute(
                    "INSERT INTO series (sensor, quantity, room) VALUES (?, ?, ?)",
                    (reading.sensor, reading.quantity, reading.room or state.room),
                )
                assert cur.lastrowid is not None
                sid = cur.lastrowid
            else:
                sid = int(row[0])
        else:
            sid = known[0]
        room, ts = reading.room, reading.ts_ms
        if room and room != state.room and not self._late(cur, state, reading.sensor, ts):
            if not state.moves:  # until written, every reading of the sensor takes this path
                for quantity in self._quantities.get(reading.sensor, ()):
                    other = self.ids[(reading.sensor, quantity)]
                    self.ids[(reading.sensor, quantity)] = (other[0], _PENDING, other[2])
            state.moves.append((room, ts))
            state.room = room
            self._pending.add(reading.sensor)
        elif room == state.room and state.moves and not self._late(cur, state, reading.sensor, ts):
            state.moves[-1] = (room, min(ts, state.moves[-1][1]))  # a move starts at its earliest reading
        if state.first_from is None:
            state.earliest = ts if state.earliest is None else min(ts, state.earliest)
        elif ts < state.first_from:
            state.lower_first = ts if state.lower_first is None else min(ts, state.lower_first)
            self._pending.add(reading.sensor)
        first = _UNASSIGNED if state.first_from is None else state.first_from
        self.ids[key] = (sid, _PENDING if state.moves else state.room, first)
        self._quantities.setdefault(reading.sensor, set()).add(reading.quantity)
        self._keys[sid] = key
        return sid

    def key_of(self, cur: sqlite3.Cursor, sid: int) -> tuple[str, str]:
        """``(sensor, quantity)`` of series ``sid``."""
        key = self._keys.get(sid)
        if key is None:
            row = cur.execute("SELECT sensor, quantity FROM series WHERE id = ?", (sid,)).fetchone()
            key = self._keys[sid] = (str(row[0]), str(row[1]))
        return key

    def newest_assignment(self, cur: sqlite3.Cursor, sensor: str) -> tuple[str, int | None]:
        """The room of the sensor's newest assignment and its from_ms (None: no assignment), as written by
        the last :meth:`write_assignments`: every reading at or after from_ms is in that room."""
        state = self._sensor(cur, sensor)
        return state.room, state.last_from

    @staticmethod
    def room_at(cur: sqlite3.Cursor, sensor: str, ts_ms: int) -> str:
        """The room ``sensor`` was assigned to at ``ts_ms`` (the first assignment also covers anything older;
        '' for a sensor without any), as ``collector.store._rooms`` reads it back."""
        row = cur.execute(
            "SELECT room FROM sensor_rooms WHERE sensor = ? AND from_ms <= ? ORDER BY from_ms DESC LIMIT 1",
            (sensor, ts_ms),
        ).fetchone()
        if row is None:
            row = cur.execute("SELECT room FROM sensor_rooms WHERE sensor = ? ORDER BY from_ms LIMIT 1",
                              (sensor,)).fetchone()
        return "" if row is None else str(row[0])

    def write_assignments(self, cur: sqlite3.Cursor) -> None:
        """Write the room changes noted since the last call (before the readings of this transaction)."""
        self._stored_last.clear()  # this transaction's readings are about to be stored
        if not self._pending:
            return
        new_rows: list[tuple[str, str, int]] = []
        for sensor in sorted(self._pending):
            state = self._sensors[sensor]
            if state.lower_first is not None and state.first_from is not None:
                cur.execute(
                    "UPDATE sensor_rooms SET from_ms = ? WHERE sensor = ? AND from_ms = ?",
                    (state.lower_first, sensor, state.first_from),
                )
                if state.last_from == state.first_from:
                    state.last_from = state.lower_first
                state.first_from = state.lower_first
            state.lower_first = None
            if state.moves:
                self._write_moves(cur, sensor, state, new_rows)
        cur.executemany("INSERT INTO sensor_rooms (sensor, room, from_ms) VALUES (?, ?, ?)", new_rows)
        for sensor in self._pending:
            state = self._sensors[sensor]
            first = _UNASSIGNED if state.first_from is None else state.first_from
            for quantity in self._quantities.get(sensor, ()):
                self.ids[(sensor, quantity)] = (self.ids[(sensor, quantity)][0], state.room, first)
        self._pending.clear()

    @staticmethod
    def _write_moves(
        cur: sqlite3.Cursor, sensor: str, state: _SensorRooms, new_rows: list[tuple[str, str, int]]
    ) -> None:
        # the sensor's stored readings, before this transaction's are inserted (none for a new sensor)
        fresh = state.new
        first_ts, last_ts = (None, None) if fresh is not None else cur.execute(_SENSOR_SPAN, (sensor,)).fetchone()
        state.new = None
        for room, earliest in state.moves:
            if state.last_from is None:  # the first assignment ever: from the sensor's first reading
                from_ms = min(x for x in (earliest, first_ts, state.earliest) if x is not None)
                state.first_from = from_ms
            else:  # after the previous assignment and after everything already stored (late readings are
                # not moves, so this only guards against a file changed behind the cache)
                from_ms = max(earliest, state.last_from + 1, -(2**63) if last_ts is None else int(last_ts) + 1)
            new_rows.append((sensor, room, from_ms))
            state.last_from = from_ms
            log.log(logging.DEBUG if fresh is not None else logging.INFO, "store: sensor %s is in room %s from %d",
                    sensor, room, from_ms)
        if fresh != state.room:  # a new sensor's series were created in its room already
            cur.execute("UPDATE series SET room = ? WHERE sensor = ?", (state.room, sensor))
        state.moves = []
