"""The stored readings rules read while judging late readings: read once, kept up to date, and counted.

A late reading's verdict (:mod:`alerts.rules._late_runs`) needs the stored readings of its series around it;
the engine lock is held meanwhile, so every read and every index built over what was read is counted in work
units (:data:`QUERY_COST` per query, a unit per :data:`ROWS_PER_UNIT` rows) that the engine charges to the
step's budget (:mod:`alerts._steps`). A series is read once and then kept (at most :data:`MAX_ROWS` rows in
all, the series read longest ago forgotten first): every reading the engine judges afterwards is put into what
was read (:meth:`LateLookups.judging`), with the index of its runs updated in place — a thousand late
readings of one series cost one query, not a thousand.

What a late reading is judged against is what the engine has judged: the store commits a batch before the
engine judges any of it (a device's buffer uploaded in one message is one commit), so the readings of a batch
not judged yet are left out (:meth:`LateLookups.expect`) and each is put in when it is judged. Judged newest
first (``AlertService`` orders a batch's late readings so), a burst of late readings raises what the same
readings one message each raise.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING

from alerts._series import NEVER
from archmon.domain import Reading

if TYPE_CHECKING:
    from alerts._series import SeriesTable
    from alerts.model import HistoryRef

__all__ = ["MAX_ROWS", "QUERY_COST", "ROWS_PER_UNIT", "LateLookups", "RunIndex", "SeriesRows", "late_last"]

QUERY_COST = 25
"""Work units of one store query (about 0.1 ms)."""
ROWS_PER_UNIT = 2
"""Rows fetched (or indexed) per work unit."""
MAX_ROWS = 200_000
"""Rows kept in all (about 10 MB); the series read longest ago are forgotten first."""

State = bool | None


class RunIndex:
    """The readings of one series judged by one ``state_of``, indexed for the late-run verdict: per position,
    its state, the start of the run of violation on after it (None: none), and the time of the first fine /
    first violating reading at or after it (None: none)."""

    __slots__ = ("next_false", "next_true", "run_start", "state_of", "states")

    def __init__(self, times: list[int], values: list[float], state_of: Callable[[float], State]) -> None:
        self.state_of = state_of
        n = len(times)
        self.states: list[State] = [state_of(value) for value in values]
        self.run_start: list[int | None] = [None] * n
        start: int | None = None
        for i, state in enumerate(self.states):
            if state is True and start is None:
                start = times[i]
            elif state is False:
                start = None
            self.run_start[i] = start
        self.next_false: list[int | None] = [None] * n
        self.next_true: list[int | None] = [None] * n
        fine: int | None = None
        violated: int | None = None
        for i in range(n - 1, -1, -1):
            if self.states[i] is False:
                fine = times[i]
            elif self.states[i] is True:
                violated = times[i]
            self.next_false[i], self.next_true[i] = fine, violated

    def insert(self, times: list[int], at: int, ts: int, value: float) -> int:
        """Put a reading at position ``at`` (``times`` has it already); returns the positions it updated."""
        state = self.state_of(value)
        n = len(self.states)
        before = self.run_start[at - 1] if at > 0 else None
        self.states.insert(at, state)
        self.next_false.insert(at, ts if state is False else (self.next_false[at] if at < n else None))
        self.next_true.insert(at, ts if state is True else (self.next_true[at] if at < n else None))
        updated = 1
        i = at - 1
        if state is not None:  # the positions before it whose next fine / violating reading it is now
            column = self.next_false if state is False else self.next_true
            while i >= 0 and self.states[i] is not state:
                column[i] = ts
                i -= 1
                updated += 1
        own = ts if state is True and before is None else None if state is False else before
        self.run_start.insert(at, own)
        start = own
        for i in range(at + 1, n + 1):  # the runs after it, up to where they agree again
            state_i = self.states[i]
            if state_i is True and start is None:
                start = times[i]
            elif state_i is False:
                start = None
            if self.run_start[i] == start:
                break
            self.run_start[i] = start
            updated += 1
        return updated


class SeriesRows:
    """The readings of one series read (``[start_ms, end_ms)``) and judged since, and their run indexes."""

    __slots__ = ("end_ms", "indexes", "start_ms", "times", "values")

    def __init__(self, start_ms: int, end_ms: int, rows: list[tuple[int, float]]) -> None:
        self.start_ms, self.end_ms = start_ms, end_ms
        self.times = [ts for ts, _ in rows]
        self.values = [value for _, value in rows]
        self.indexes: dict[Hashable, RunIndex] = {}


class LateLookups:
    """The stored readings the rules read for late readings (kept, see the module docstring), and the work
    units those reads cost since the engine last took them (it charges them to the step's budget)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], SeriesRows] = {}
        self._pending: dict[tuple[str, str], set[int]] = defaultdict(set)
        self._kept = 0
        self.units = 0

    def forget(self) -> None:
        """Forget what was read and what is expected (the engine judges readings it does not pass through
        :meth:`judging`: one at a time, the catch-up)."""
        self._rows.clear()
        self._pending.clear()
        self._kept = 0

    def expect(self, readings: Iterable[Reading]) -> None:
        """``readings`` are stored and about to be judged: left out of what is read until :meth:`judging`
        each (:meth:`settle` drops what is left of them)."""
        for reading in readings:
            self._pending[(reading.sensor, reading.quantity)].add(reading.ts_ms)

    def settle(self, readings: Iterable[Reading]) -> None:
        """``readings`` (given to :meth:`expect`) are done with, judged or not (a judgement that raised)."""
        for reading in readings:
            waiting = self._pending.get((reading.sensor, reading.quantity))
            if waiting is not None:
                waiting.discard(reading.ts_ms)
                if not waiting:
                    del self._pending[(reading.sensor, reading.quantity)]

    def take_units(self) -> int:
        """The units spent since the last call."""
        units, self.units = self.units, 0
        return units

    def judging(self, reading: Reading) -> None:
        """``reading`` is judged now: from here on it is among what was judged (and read)."""
        key = (reading.sensor, reading.quantity)
        waiting = self._pending.get(key)
        if waiting:
            waiting.discard(reading.ts_ms)
        cached = self._rows.get(key)
        if cached is None or not cached.start_ms <= reading.ts_ms < cached.end_ms:
            return
        times = cached.times
        at = bisect.bisect_left(times, reading.ts_ms)
        if at < len(times) and times[at] == reading.ts_ms:
            return
        times.insert(at, reading.ts_ms)
        cached.values.insert(at, reading.value)
        self._kept += 1
        units = 1
        for index in cached.indexes.values():
            units += index.insert(times, at, reading.ts_ms, reading.value)
        self.units += units // ROWS_PER_UNIT

    def query(self, history: HistoryRef, sensor: str, quantity: str, start_ms: int,
              end_ms: int) -> list[tuple[int, float]]:
        """One read of raw readings, counted (those expected but not judged yet left out)."""
        assert history.source is not None
        rows = history.source.series(sensor, quantity, start_ms, end_ms)
        self.units += QUERY_COST + len(rows) // ROWS_PER_UNIT
        waiting = self._pending.get((sensor, quantity))
        return [row for row in rows if row[0] not in waiting] if waiting else rows

    def rows(self, history: HistoryRef, sensor: str, quantity: str, start_ms: int, end_ms: int) -> SeriesRows:
        """The series' readings in ``[start_ms, end_ms)`` or a wider range (read once, then kept; extended at
        its end when it must reach further)."""
        key = (sensor, quantity)
        cached = self._rows.get(key)
        if cached is not None and (cached.start_ms > start_ms or cached.start_ms < start_ms - 2 * (end_ms - start_ms)):
            self._drop(key)
            cached = None
        if cached is None:
            cached = self._rows[key] = SeriesRows(start_ms, end_ms, self.query(history, sensor, quantity, start_ms,
                                                                               end_ms))
            self._kept += len(cached.times)
            while self._kept > MAX_ROWS and len(self._rows) > 1:
                self._drop(next(iter(self._rows)))
        elif cached.end_ms < end_ms:
            more = self.query(history, sensor, quantity, cached.end_ms, end_ms)
            cached.times.extend(ts for ts, _ in more)
            cached.values.extend(value for _, value in more)
            cached.end_ms = end_ms
            cached.indexes.clear()
            self._kept += len(more)
        return cached

    def _drop(self, key: tuple[str, str]) -> None:
        self._kept -= len(self._rows.pop(key).times)

    def index(self, rows: SeriesRows, subject: Hashable, state_of: Callable[[float], State]) -> RunIndex:
        """The run index of ``rows`` judged by ``state_of`` (built once per subject, then updated; counted)."""
        found = rows.indexes.get(subject)
        if found is None:
            found = rows.indexes[subject] = RunIndex(rows.times, rows.values, state_of)
            self.units += len(rows.times) // ROWS_PER_UNIT
        return found


def late_last(readings: Sequence[Reading], series: SeriesTable) -> Sequence[Reading]:
    """``readings`` in the order to judge them: those in order for their series (at or after its newest, as
    the batch goes) as given, then the late ones, newest first. A late reading is judged against what was
    judged (:mod:`alerts._lookups`), and judged newest first a burst of them (a device's buffer in one
    message) proves each past excursion once, as one message each would."""
    newest: dict[tuple[str, str], int] = {}
    late: list[Reading] = []
    ordered: list[Reading] = []
    index, newest_ts = series.index, series.newest_ts
    for reading in readings:
        key = (reading.sensor, reading.quantity)
        seen = newest.get(key)
        if seen is None:
            slot = index.get(key)
            seen = NEVER if slot is None else newest_ts[slot]
        if reading.ts_ms < seen:
            late.append(reading)
        else:
            ordered.append(reading)
            newest[key] = reading.ts_ms
    if not late:
        return readings
    late.sort(key=lambda r: r.ts_ms, reverse=True)
    return ordered + late
