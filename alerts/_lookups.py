"""The stored readings rules read while judging late readings, read once per step and counted.

A late reading's verdict (:mod:`alerts.rules._late_runs`) needs the stored readings of its series around it;
the engine lock is held meanwhile, so every read and every index built over what was read is counted in work
units (:data:`QUERY_COST` per query, a unit per :data:`ROWS_PER_UNIT` rows) that the engine charges to the
step's budget (:mod:`alerts._steps`), and a series is read once per step, not once per late reading.

What a late reading is judged against is what the engine has judged: the store commits a batch before the
engine judges any of it (a device's buffer uploaded in one message is one commit), so the readings of the
step not judged yet are left out of what was read (:meth:`LateLookups.new_step`) and each is put in when it
is judged (:meth:`LateLookups.judging`). Judged newest first (``AlertService`` orders a batch's late readings
so), a burst of late readings raises what the same readings one message each raise.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, NamedTuple

from archmon.domain import Reading

if TYPE_CHECKING:
    from alerts.model import HistoryRef

__all__ = ["QUERY_COST", "ROWS_PER_UNIT", "LateLookups", "RunIndex", "SeriesRows"]

QUERY_COST = 25
"""Work units of one store query (about 0.1 ms)."""
ROWS_PER_UNIT = 2
"""Rows fetched (or indexed) per work unit."""


class RunIndex(NamedTuple):
    """The stored readings of one subject, indexed: the start of the run on after each reading (None: none),
    and the position of the first fine / first violating reading at or after each position."""

    run_start: list[int | None]
    next_false: list[int]
    next_true: list[int]


class SeriesRows:
    """The stored readings of one series read in this step (``[start_ms, end_ms)``), and their indexes."""

    __slots__ = ("end_ms", "indexes", "start_ms", "times", "values")

    def __init__(self, start_ms: int, end_ms: int, rows: list[tuple[int, float]]) -> None:
        self.start_ms, self.end_ms = start_ms, end_ms
        self.times = [ts for ts, _ in rows]
        self.values = [value for _, value in rows]
        self.indexes: dict[Hashable, RunIndex] = {}


class LateLookups:
    """The stored readings the rules read for late readings during one step of the engine, and the work units
    those reads cost (the engine charges them to the step's budget and calls :meth:`new_step` at each step)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], SeriesRows] = {}
        self._pending: dict[tuple[str, str], set[int]] = defaultdict(set)
        self.units = 0

    def new_step(self, pending: Iterable[Reading] = ()) -> None:
        """Forget what was read (the store gains readings between steps) and what it cost; ``pending``: the
        readings the step is about to judge (stored already), left out until :meth:`judging` each."""
        self._rows.clear()
        self._pending.clear()
        for reading in pending:
            self._pending[(reading.sensor, reading.quantity)].add(reading.ts_ms)
        self.units = 0

    def judging(self, reading: Reading) -> None:
        """``reading`` is judged now: from here on it is among what was judged."""
        key = (reading.sensor, reading.quantity)
        waiting = self._pending.get(key)
        if not waiting or reading.ts_ms not in waiting:
            return
        waiting.discard(reading.ts_ms)
        cached = self._rows.get(key)
        if cached is not None and cached.start_ms <= reading.ts_ms < cached.end_ms:
            at = bisect.bisect_left(cached.times, reading.ts_ms)
            if at == len(cached.times) or cached.times[at] != reading.ts_ms:
                cached.times.insert(at, reading.ts_ms)
                cached.values.insert(at, reading.value)
                cached.indexes.clear()

    def _judged(self, sensor: str, quantity: str, rows: list[tuple[int, float]]) -> list[tuple[int, float]]:
        waiting = self._pending.get((sensor, quantity))
        return [row for row in rows if row[0] not in waiting] if waiting else rows

    def take_units(self) -> int:
        """The units spent since the last call."""
        units, self.units = self.units, 0
        return units

    def query(self, history: HistoryRef, sensor: str, quantity: str, start_ms: int,
              end_ms: int) -> list[tuple[int, float]]:
        """One read of raw readings, counted."""
        assert history.source is not None
        rows = history.source.series(sensor, quantity, start_ms, end_ms)
        self.units += QUERY_COST + len(rows) // ROWS_PER_UNIT
        return rows

    def rows(self, history: HistoryRef, sensor: str, quantity: str, start_ms: int, end_ms: int) -> SeriesRows:
        """The series' readings in ``[start_ms, end_ms)`` or a wider range (read once per step; extended at
        its end when newer readings were judged since)."""
        cached = self._rows.get((sensor, quantity))
        if cached is None or cached.start_ms > start_ms:
            cached = self._rows[(sensor, quantity)] = SeriesRows(
                start_ms, end_ms, self._judged(sensor, quantity, self.query(history, sensor, quantity, start_ms,
                                                                            end_ms)))
        elif cached.end_ms < end_ms:
            more = self._judged(sensor, quantity, self.query(history, sensor, quantity, cached.end_ms, end_ms))
            cached.times.extend(ts for ts, _ in more)
            cached.values.extend(value for _, value in more)
            cached.end_ms = end_ms
            cached.indexes.clear()
        return cached

    def index(self, rows: SeriesRows, subject: Hashable, state_of: Callable[[float], bool | None]) -> RunIndex:
        """The run index of ``rows`` judged by ``state_of`` (built once per subject and step, counted)."""
        found = rows.indexes.get(subject)
        if found is not None:
            return found
        times, n = rows.times, len(rows.times)
        states = [state_of(value) for value in rows.values]
        run_start: list[int | None] = [None] * n
        start: int | None = None
        for i, state in enumerate(states):
            if state is True and start is None:
                start = times[i]
            elif state is False:
                start = None
            run_start[i] = start
        next_false, next_true = [n] * (n + 1), [n] * (n + 1)
        for i in range(n - 1, -1, -1):
            next_false[i] = i if states[i] is False else next_false[i + 1]
            next_true[i] = i if states[i] is True else next_true[i + 1]
        self.units += n // ROWS_PER_UNIT
        found = rows.indexes[subject] = RunIndex(run_start, next_false, next_true)
        return found
