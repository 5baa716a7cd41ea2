"""Stuck sensor: a quantity that always varies (temperature, humidity) reports one value for hours."""

from __future__ import annotations

import math
from array import array
from typing import TYPE_CHECKING, Any

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule, at_resolution
from archmon.domain import Reading

if TYPE_CHECKING:
    from alerts.rebuild import SeriesHistory

__all__ = ["StuckRule"]

_HOUR_MS = 3_600_000


class StuckRule(Rule):
    """Fires when every reading of ``alerts.stuck.hours`` stayed within ``tolerance`` of the value that
    started the flat line; the next different value clears it.

    Memory: per series, the flat line's first value and time, in flat columns indexed by the engine's
    series slot. At start it is rebuilt from the store, walking back from the newest reading over the raw
    readings of the last hour, then whole hour rollups, then the raw readings of the hour the line
    started in: the line is the readings within ``tolerance`` of the newest value. With the default
    tolerance 0 that is exactly the line the live rule follows; with a tolerance the rebuilt line may
    start up to the noise band earlier (never later) than the live one.

    Late readings: only the newest reading of a series is judged (``late = "skip"``): the flat line runs
    along the newest readings, and an older value must not break or restart it.
    """

    name = "stuck"
    default_severity = "minor"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._value = array("d")  # per series slot: the flat line's first value (NaN: none)
        self._since = array("q")  # and its time
        self.quantities = frozenset(self.ctx.settings.stuck.quantities)

    def _grow(self, slot: int) -> None:
        missing = slot + 1 - len(self._value)
        if missing > 0:
            self._value.extend([math.nan] * missing)
            self._since.extend([0] * missing)

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        settings = self.ctx.settings.stuck
        if reading.quantity not in settings.quantities:
            return []
        slot = self.ctx.series.find(sensor.id, reading.quantity)
        if slot is None:
            return []
        self._grow(slot)
        flat = self._value[slot]
        if math.isnan(flat) or at_resolution(abs(reading.value - flat)) > settings.tolerance:
            self._value[slot], self._since[slot] = reading.value, reading.ts_ms
            state: bool | None = False
            hours = 0.0
        else:
            hours = (reading.ts_ms - self._since[slot]) / _HOUR_MS
            state = True if hours >= settings.hours else None
        key = f"{sensor.id}/{reading.quantity}"
        if self.quiet(key, state):
            return []
        return [self.condition(
            sensor, key, state, reading.ts_ms, quantity=reading.quantity, value=hours, limit=settings.hours,
        )]

    def rebuild(self, sensor: SensorInfo, history: SeriesHistory) -> None:
        if history.quantity not in self.quantities or history.newest is None:
            return
        slot = self.ctx.series.find(sensor.id, history.quantity)
        if slot is None:
            return
        self._grow(slot)
        tolerance = self.ctx.settings.stuck.tolerance
        newest = history.newest.value

        def within(value: float) -> bool:
            return at_resolution(abs(value - newest)) <= tolerance

        since, first = history.newest.ts_ms, newest
        for ts, value in reversed(history.raw):  # the last hour, newest first
            if not within(value):
                self._value[slot], self._since[slot] = first, since
                return
            since, first = ts, value
        # the whole last hour is flat: whole hours back, then the raw readings of the hour it began in
        older = [b for b in history.hours if b.start_ms < history.raw_start and b.count]
        start = older[0].start_ms if older else history.raw_start
        for bucket in reversed(older):
            if not (within(bucket.min) and within(bucket.max)):
                start = bucket.start_ms
                break
        for ts, value in reversed(history.readings(start, history.raw_start)):
            if not within(value):
                break
            since, first = ts, value
        self._value[slot], self._since[slot] = first, since

    def adopt(self, previous: Rule, now_ms: int) -> None:
        if isinstance(previous, StuckRule):
            self._value, self._since = previous._value, previous._since

    def snapshot(self) -> dict[str, Any]:
        keys = self.ctx.series.keys
        return {"flat": {"/".join(keys[slot]): [self._value[slot], self._since[slot]]
                         for slot in range(len(self._value)) if not math.isnan(self._value[slot])}}
