"""Readings the store holds but the engine had not judged when it stopped are judged at the next start.

The store writer commits readings first and hands them to the engine afterwards (``archmon run``'s alert
feed), so a crash, a power cut or a stop that runs out of time can leave committed readings unjudged: a smoke
alarm, a door opened and left open. The engine keeps a watermark per series, the newest reading it has
judged (``alert_judged``, :class:`~alerts.store.JudgedThrough`):

- written in the transaction of every state change a reading of the series caused (so a reading whose
  transitions are committed is never judged twice), and when the engine first judges a series (with the
  step that judged it, in one statement);
- for the rest (readings that changed nothing) every :data:`SAVE_EVERY_S` by the live service's tick, and
  for every series at a clean stop.

At start, after rebuilding windows and rule memory (:mod:`alerts.rebuild`), the engine judges every reading
the store holds after a series' watermark (inside its 24 h window), in device-time order, without placing
them in the windows again (they were rebuilt with them): each series' newest reading is set back to the
watermark's and moved along as its readings are judged, so rules that judge the newest reading see the
sequence the live path would have; the day verdict, whose aggregate the rebuild took from the daily rollup,
does not take them again (``Rule.stored``). Readings between a watermark written by the periodic save and
the stop are judged a second time: they changed nothing the first time, and judged from the state they left
they change nothing again.

A series with no watermark was never judged by an engine that keeps them (a file seeded or imported from
outside, an archmon before this one): its readings are taken as judged. Not caught: a late reading (older
than its series' newest) stored but unjudged at a crash; at a stop out of time it is in the backlog file
(``archmon.app.feed``), which :meth:`AlertEngine.judge_backlog` judges.
"""

from __future__ import annotations

import logging
from array import array
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from alerts._series import IN_ORDER, LATE, NEVER, TOO_OLD, Newest, SeriesTable
from alerts._steps import Budget
from alerts._windows import HOUR_MS, HOURS
from alerts.model import Transition
from alerts.store import AlertStore
from alerts.store._memory import JudgedThrough
from archmon.domain import Reading

if TYPE_CHECKING:
    from alerts.engine import AlertEngine
    from alerts.history import ReadingHistory
    from alerts.rebuild import SeriesHistory

__all__ = ["SAVE_EVERY_S", "CatchUp", "Unjudged", "catch_up", "judge_stored_late", "load_judged", "save_first_judged",
           "save_judged", "save_watermarks", "unjudged"]

log = logging.getLogger(__name__)

SAVE_EVERY_S = 10.0
"""How often the live service persists the watermarks that moved (readings after it are judged again at a
restart after a crash: about this much of each series' readings, which changed nothing)."""


class Unjudged(NamedTuple):
    """What the store holds of one series after its watermark: the reading at the watermark (None: not in
    the store any more, or older than the window) and the range of readings to judge, ``[start_ms, end_ms)``
    (after the watermark; read when they are judged, not held)."""

    slot: int
    judged: Newest | None
    start_ms: int
    end_ms: int


def save_judged(series: SeriesTable, store: AlertStore, slot: int) -> None:
    """Persist one series' watermark (its newest reading, judged) in the current transaction."""
    ts = series.newest_ts[slot]
    if ts > series.judged_saved[slot]:
        sensor, quantity = series.keys[slot]
        store.save_judged([JudgedThrough(sensor, quantity, ts)])
        series.judged_saved[slot] = ts


def save_first_judged(series: SeriesTable, store: AlertStore, slots: Iterable[int]) -> None:
    """Persist the watermarks of series judged for the first time (one statement for a whole step)."""
    rows = [JudgedThrough(*series.keys[slot], series.newest_ts[slot]) for slot in slots
            if series.newest_ts[slot] > series.judged_saved[slot]]
    store.save_judged(rows)
    for row in rows:
        series.judged_saved[series.index[(row.sensor, row.quantity)]] = row.ts_ms


def save_watermarks(series: SeriesTable, store: AlertStore, limit: int | None = None) -> int:
    """Persist the watermarks that moved since they were last written (at most ``limit``); returns how many."""
    newest, saved, keys = series.newest_ts, series.judged_saved, series.keys
    moved = [slot for slot in range(len(keys)) if newest[slot] > saved[slot] and newest[slot] != NEVER]
    if limit is not None:
        moved = moved[:limit]
    store.save_judged(JudgedThrough(*keys[slot], newest[slot]) for slot in moved)
    for slot in moved:
        saved[slot] = newest[slot]
    return len(moved)


def load_judged(series: SeriesTable, store: AlertStore) -> None:
    """Take the persisted watermarks of the series in the table (at start, after their slots exist)."""
    for key, ts in store.judged().items():
        slot = series.index.get(key)
        if slot is not None:
            series.judged_saved[slot] = ts


DAY_MS = 24 * HOUR_MS
KEPT_SINCE = "_watermarks_kept_since"
"""The ``alert_rule_state`` row naming when engines began keeping watermarks on this file (``{"ts_ms": T}``)."""


def watermarks_kept_since(store: AlertStore, after_stored_ms: int, now_ms: int) -> int:
    """Since when (device time) every series an engine judged has a watermark on this file: written at the
    first start of an engine that keeps them (``after_stored_ms``: just after the newest reading stored
    then; everything before was seeded, imported or judged by an archmon before this one), read at every
    later one."""
    found = store.rule_states().get(KEPT_SINCE)
    if found is not None and isinstance(found.get("ts_ms"), int):
        return int(found["ts_ms"])
    store.save_rule_state(KEPT_SINCE, {"ts_ms": after_stored_ms}, now_ms)
    return after_stored_ms


def unjudged(series: SeriesTable, slot: int, past: SeriesHistory, room: str,
             kept_since: int | None = None) -> Unjudged | None:
    """The range of one series' readings the store holds after its watermark, inside its 24 h window (None:
    none). A series without a watermark was never judged: when all its stored readings are newer than
    ``kept_since`` (watermarks kept on this file since then: a series first met before a crash, its first
    readings committed but not judged) it is judged from its first reading; otherwise (a file seeded or
    imported, an archmon before this one; None: not asked) it is taken as judged."""
    mark, newest = series.judged_saved[slot], series.newest(slot)
    if newest is None:
        return None
    window = (newest.ts_ms // HOUR_MS - HOURS + 1) * HOUR_MS
    if mark == NEVER:
        if kept_since is None or newest.ts_ms < kept_since or past.readings(window - DAY_MS, kept_since):
            return None
        return Unjudged(slot, None, max(kept_since, window), newest.ts_ms + 1)
    if mark >= newest.ts_ms:
        return None
    judged = None
    if mark >= window:
        rows = [r for r in past.raw if r[0] == mark] if mark >= past.raw_start else past.readings(mark, mark + 1)
        judged = Newest(*rows[0]) if rows else None
    return Unjudged(slot, judged, max(mark + 1, window), newest.ts_ms + 1)


JUDGE_COST = 5
"""Work units of one reading judged by the catch-up (a step of :data:`alerts._steps.STEP_BUDGET` judges about
a thousand, as a live slice does)."""
WINDOW_READINGS = 50_000
"""About how many readings the catch-up reads at a time (a window of time across the series: one query per
series, outside the engine lock), at one reading a minute per series."""


class CatchUp:
    """The readings stored after their series' watermarks, judged in steps (see the module docstring).

    Created at start (:meth:`AlertEngine.start_catch_up`), after the rebuild and before anything else is
    judged: each series' newest is set back to its watermark, and until :attr:`done` the engine runs no timer
    at the clock (``AlertEngine.catching_up``: the live tick waits, smoke and leak are judged without running
    timers), so the delays run out in device-time order as the caught-up readings pass them. The readings
    are read a window of time at a time (:meth:`read_ahead`: a query per series, about
    :data:`WINDOW_READINGS` readings, no engine state touched, so the caller does it outside the lock) and
    judged in device-time order by :meth:`step`; never all in memory.
    """

    def __init__(self, engine: AlertEngine, pending: Iterable[Unjudged], now_ms: int,
                 history: ReadingHistory | None) -> None:
        self.engine = engine
        self.history = history
        self.plan = {item.slot: item for item in pending}
        self.judged = 0
        self.transitions = 0
        self._buffer: deque[Reading] = deque()
        series = engine.series
        for item in self.plan.values():
            series.rewind(item.slot, item.judged)
            sensor_id, quantity = series.keys[item.slot]
            sensor = engine.sensors.get(sensor_id)
            if sensor is not None:
                for rule in engine.rules:
                    rule.rewind(sensor, quantity, item.judged)
        self.done = not self.plan or history is None
        if self.done:
            self._next_ms = self._end_ms = 0
        else:
            engine.begin(now_ms)
            self._next_ms = min(item.start_ms for item in self.plan.values())
            self._end_ms = max(item.end_ms for item in self.plan.values())
        self._width = max(5 * 60_000, WINDOW_READINGS * 60_000 // max(1, len(self.plan)))
        engine.catching_up = not self.done

    def read_ahead(self) -> None:
        """Read the next window of stored readings when those read are all judged (the store only)."""
        series, sensors = self.engine.series, self.engine.sensors
        while not self._buffer and self._next_ms < self._end_ms and self.history is not None:
            start, end = self._next_ms, min(self._next_ms + self._width, self._end_ms)
            self._next_ms = end
            found: list[Reading] = []
            for slot, item in self.plan.items():
                lo, hi = max(start, item.start_ms), min(end, item.end_ms)
                sensor_id, quantity = series.keys[slot]
                sensor = sensors.get(sensor_id)
                if lo < hi and sensor is not None:
                    found.extend(Reading(sensor_id, quantity, value, ts, sensor.room)
                                 for ts, value in self.history.series(sensor_id, quantity, lo, hi))
            found.sort(key=lambda r: r.ts_ms)
            self._buffer.extend(found)

    def step(self, budget: Budget) -> list[Transition]:
        """Judge the readings read ahead until ``budget`` is spent (call inside ``store.batch()``, then
        :meth:`read_ahead` again); :attr:`done` when all are judged."""
        engine, series = self.engine, self.engine.series
        out: list[Transition] = []
        while not budget.spent and self._buffer:
            reading = self._buffer[0]
            out.extend(engine.run_due(reading.ts_ms, budget))  # timers in device-time order, as live
            if budget.spent and engine.due(reading.ts_ms):
                break  # (the timers before it go on in the next step)
            self._buffer.popleft()
            slot = series.index[(reading.sensor, reading.quantity)]
            order = IN_ORDER
            if reading.ts_ms >= series.newest_ts[slot]:
                series.set_newest(slot, reading.ts_ms, reading.value)
            else:  # a live reading of the series (smoke, leak) was judged meanwhile: this one is late now
                order = LATE
            engine.lifecycle.device_clock = True  # their arrival is not known: delays run from their device time
            try:
                engine.history.lookups.forget()
                out.extend(budget.transitions(engine.judge_stored(reading, order)))
            finally:
                engine.lifecycle.device_clock = False
            engine.store.flush_requests()
            budget.spend(JUDGE_COST)
            self.judged += 1
        if not self._buffer and self._next_ms >= self._end_ms:
            self._finish()
        engine.save_first_judged()
        self.transitions += len(out)
        return out

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.engine.catching_up = False
        self.engine.counters.caught_up += self.judged
        log.warning("alert engine: judged %d reading(s) of %d series the store held but the engine had not judged "
                    "when it stopped (%d transition(s))", self.judged, len(self.plan), self.transitions)


def catch_up(engine: AlertEngine, pending: Iterable[Unjudged], now_ms: int) -> list[Transition]:
    """Judge readings stored after their series' watermarks (see the module docstring), at ``now_ms``, all at
    once (a replay's restart). Call inside ``store.batch()``, before the engine judges anything else."""
    job = CatchUp(engine, pending, now_ms, engine.history.source)
    out: list[Transition] = []
    while not job.done:
        job.read_ahead()
        out.extend(job.step(Budget(None)))
    return out


def judge_stored_late(engine: AlertEngine, readings: Iterable[Reading], marks: array[int]) -> list[Transition]:
    """Judge stored readings an earlier run did not get to, older than their series' watermark at this start
    (``marks``, by slot; the readings after it were caught up at start): late readings, judged by the rules
    that take late readings, without placing them in the windows again."""
    series = engine.series
    out: list[Transition] = []
    readings = sorted(readings, key=lambda r: r.ts_ms, reverse=True)  # (newest first: see alerts._lookups)
    engine.history.lookups.forget()
    engine.history.lookups.expect(readings)
    for reading in readings:
        engine.history.lookups.judging(reading)
        slot = series.index.get((reading.sensor, reading.quantity))
        if slot is None or slot >= len(marks) or reading.ts_ms >= marks[slot]:
            continue  # caught up at start, the watermark's own reading, or a series never judged
        newest = series.newest_ts[slot]
        order = IN_ORDER if reading.ts_ms >= newest else LATE if reading.ts_ms // HOUR_MS > newest // HOUR_MS - HOURS \
            else TOO_OLD
        out.extend(engine.run_due(reading.ts_ms, Budget(None)))
        out.extend(engine.judge_stored(reading, order))
        engine.store.flush_requests()
    engine.history.lookups.forget()
    engine.save_first_judged()
    return out
