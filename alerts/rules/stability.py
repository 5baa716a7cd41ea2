"""24 h stability, day verdict: each calendar day in the site's zone judged at local midnight."""

from __future__ import annotations

import datetime as dt
from array import array
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from alerts.model import Condition, SensorInfo
from alerts.rules.base import LateReadings, Rule, at_resolution
from archmon.domain import Reading

if TYPE_CHECKING:
    from alerts.rebuild import SeriesHistory

__all__ = ["INSUFFICIENT", "StabilityRule", "day_coverage", "day_fluctuation"]

_QUANTITIES = ("temperature", "humidity")


def day_fluctuation(
    low: float, high: float, mean: float, *, interpretation: str, setpoint: float | None = None
) -> float:
    """The fluctuation a day's values show under one reading of 每昼夜波动.

    Args:
        low: the day's minimum; high: its maximum; mean: its mean.
        interpretation: ``A`` (max − min) or ``B`` (largest deviation from the set-point or the mean).
        setpoint: set-point for B (None: the mean).

    Returns:
        The fluctuation to compare with the profile's limit.
    """
    if interpretation == "A":
        return high - low
    centre = mean if setpoint is None else setpoint
    return max(high - centre, centre - low)


INSUFFICIENT = "insufficient data"


class _DayOf(NamedTuple):
    """A time and the local day (ordinal) it falls on."""

    ts_ms: int
    ordinal: int


def day_coverage(first_ms: int, last_ms: int, day_start_ms: int, day_end_ms: int) -> float:
    """How much of a day its readings span: (last − first) / the day's length (23 h or 25 h days count as
    they are), 0..1."""
    length = day_end_ms - day_start_ms
    return max(0.0, min(1.0, (last_ms - first_ms) / length)) if length > 0 else 0.0


class StabilityRule(Rule):
    """Judges each finished calendar day (site zone) per sensor and quantity.

    At local midnight the day's min/max/mean give the fluctuation under the profile's interpretation
    (A: max − min; B: deviation from the set-point or the day's mean). A failing day fires at once; the
    alert clears at the end of the next day that passes. A day whose readings span less than
    ``alerts.stability.min_coverage`` of it (default 80 %) is "insufficient data": its condition is
    neither violated nor fine (it neither fires nor clears), with detail ``A 2024-03-04 insufficient data``.

    Memory: per series, the aggregate of the day being accumulated (min, max, sum, count, first and last
    reading) in flat columns indexed by the engine's series slot. At start it is rebuilt from the store's
    daily rollup of the day (and of the day before, if the engine was down over midnight before judging
    it); the only thing persisted is the last day judged (``marker``), so a restart neither judges a day
    twice nor skips one.

    Late readings (``late = "window"``): a reading of the day being accumulated counts whatever its
    arrival order (the aggregate is order-independent); a reading of a day already judged cannot change
    its verdict: it is stored (reports see it) and counted (``late_for_day``).
    """

    name = "stability"
    default_severity = "minor"
    quantities = frozenset({"temperature", "humidity"})
    late: ClassVar[LateReadings] = "window"
    stored: ClassVar[bool] = False  # its day aggregate was rebuilt from the daily rollup, every reading in it
    DUE_SLICE = 2000
    """Verdicts given per ``on_due`` call: the engine calls again while more are due, releasing its lock
    in between, so midnight for 20,000 series never holds smoke and leak judgement back for long."""
    DUE_VIOLATIONS = 50
    """Failing verdicts per ``on_due`` call (each raises or updates an alert: far more work than a pass)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # per series slot: the local day ordinal accumulated (0: none) and its aggregate
        self._day = array("q")
        self._min = array("d")
        self._max = array("d")
        self._sum = array("d")
        self._count = array("q")
        self._first = array("q")
        self._last = array("q")
        self._held: dict[int, int] = {}  # day ordinal -> series accumulating it
        self._ends: dict[int, int] = {}  # day ordinal -> its end (ms)
        self._day_of = _DayOf(-1, 0)  # the last local day worked out
        self._judged: dict[tuple[str, str], bool] = {}  # (room, quantity) -> has a stability limit
        self.judged_through = 0  # the last day ordinal whose verdicts were all given
        self.late_for_day = 0
        self._rebuilt: list[Condition] = []  # verdicts of a day found unjudged at start, given at the first due
        self._rebuilt_through = 0

    def _ordinal(self, ts_ms: int) -> int:
        """The local (site zone) day of ``ts_ms`` as an ordinal (a sensor's T and RH share a timestamp)."""
        if self._day_of.ts_ms != ts_ms:
            self._day_of = _DayOf(ts_ms, dt.datetime.fromtimestamp(ts_ms / 1000, self.ctx.tz).toordinal())
        return self._day_of.ordinal

    def day_end_ms(self, ordinal: int) -> int:
        """The end of a local day (its next midnight), UTC epoch ms."""
        end = self._ends.get(ordinal)
        if end is None:
            day = dt.date.fromordinal(ordinal + 1)
            end = self._ends[ordinal] = int(dt.datetime.combine(day, dt.time(0), tzinfo=self.ctx.tz).timestamp() * 1000)
        return end

    def _is_judged(self, sensor: SensorInfo, quantity: str) -> bool:
        subject = (sensor.room, quantity)
        judged = self._judged.get(subject)
        if judged is None:
            judged = self._judged[subject] = (
                quantity in _QUANTITIES and sensor.profile.stability.limit(quantity) is not None
            )
        return judged

    def _grow(self, slot: int) -> None:
        missing = slot + 1 - len(self._day)
        if missing > 0:
            for column in (self._day, self._count, self._first, self._last):
                column.extend([0] * missing)
            for column in (self._min, self._max, self._sum):
                column.extend([0.0] * missing)

    def _begin(self, slot: int, ordinal: int, low: float, high: float, total: float, count: int, first: int,
               last: int) -> None:
        self._grow(slot)
        self._day[slot] = ordinal
        self._min[slot], self._max[slot], self._sum[slot] = low, high, total
        self._count[slot], self._first[slot], self._last[slot] = count, first, last
        self._held[ordinal] = self._held.get(ordinal, 0) + 1

    def _end(self, slot: int, *, judged: bool = True) -> None:
        ordinal = self._day[slot]
        self._day[slot] = 0
        left = self._held[ordinal] - 1
        if left:
            self._held[ordinal] = left
        else:
            del self._held[ordinal]
            if judged:
                self.judged_through = max(self.judged_through, ordinal)

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        if not self._is_judged(sensor, reading.quantity):
            return []
        slot = self.ctx.series.find(sensor.id, reading.quantity)
        if slot is None:
            return []
        ordinal = self._ordinal(reading.ts_ms)
        value, ts = reading.value, reading.ts_ms
        held = self._day[slot] if slot < len(self._day) else 0
        if ordinal <= self.judged_through or (held and ordinal < held):
            self.late_for_day += 1  # a day already judged
            return []
        out: list[Condition] = []
        if held and ordinal > held:
            out.extend(self._verdict(slot))
            self._end(slot)
            held = 0
        if not held:
            self._begin(slot, ordinal, value, value, value, 1, ts, ts)
            return out
        if value < self._min[slot]:
            self._min[slot] = value
        if value > self._max[slot]:
            self._max[slot] = value
        self._sum[slot] += value
        self._count[slot] += 1
        if ts < self._first[slot]:
            self._first[slot] = ts
        if ts > self._last[slot]:
            self._last[slot] = ts
        return out

    def _verdict(self, slot: int) -> list[Condition]:
        sensor_id, quantity = self.ctx.series.keys[slot]
        sensor = self.ctx.sensors.get(sensor_id)
        if sensor is None:
            return []
        limits = sensor.profile.stability
        limit = limits.limit(quantity)
        if limit is None:
            return []
        ordinal = self._day[slot]
        value = at_resolution(day_fluctuation(
            self._min[slot], self._max[slot], self._sum[slot] / self._count[slot],
            interpretation=limits.interpretation, setpoint=limits.setpoint(quantity),
        ))  # 不得大于: exactly at the limit passes, so float noise must not push it over
        day = dt.date.fromordinal(ordinal)
        end = self.day_end_ms(ordinal)
        coverage = day_coverage(self._first[slot], self._last[slot], self.day_end_ms(ordinal - 1), end)
        detail = f"{limits.interpretation} {day.isoformat()}"
        state: bool | None = value > at_resolution(limit)
        if coverage < self.ctx.settings.stability.min_coverage:
            state, detail = None, f"{detail} {INSUFFICIENT}"  # neither fires nor clears
        return [self.condition(
            sensor, f"{sensor_id}/{quantity}", state, end, quantity=quantity, value=value, limit=limit, detail=detail,
        )]

    def next_due(self) -> int | None:
        if self._rebuilt:
            return self._rebuilt[0].ts_ms
        return self.day_end_ms(min(self._held)) if self._held else None

    def on_due(self, now_ms: int) -> list[Condition]:
        if self._rebuilt:
            out, self._rebuilt = self._rebuilt[:self.DUE_VIOLATIONS], self._rebuilt[self.DUE_VIOLATIONS:]
            if not self._rebuilt:
                self.judged_through = max(self.judged_through, self._rebuilt_through)
            return out
        if not self._held:
            return []
        ordinal = min(self._held)
        if self.day_end_ms(ordinal) > now_ms:
            return []
        out: list[Condition] = []
        failing = 0
        day = self._day
        for slot in range(len(day)):
            if day[slot] == ordinal:
                verdict = self._verdict(slot)
                out.extend(verdict)
                failing += sum(1 for cond in verdict if cond.state)
                self._end(slot)
                if (len(out) >= self.DUE_SLICE or failing >= self.DUE_VIOLATIONS) and ordinal in self._held:
                    return out  # the rest at the next call (the engine calls again while due)
        return out

    def marker(self) -> dict[str, Any] | None:
        return {"judged_through": self.judged_through} if self.judged_through else None

    def restore(self, data: dict[str, Any]) -> None:
        through = data.get("judged_through")  # older files hold full snapshots ("days"): rebuilt instead
        if isinstance(through, int):
            self.judged_through = through

    def rebuild(self, sensor: SensorInfo, history: SeriesHistory) -> None:
        """The day being accumulated, from the store's daily rollup; the day before too if the engine was
        down over its midnight (its verdict is given at the first ``advance``)."""
        if not self._is_judged(sensor, history.quantity) or history.newest is None:
            return
        slot = self.ctx.series.find(sensor.id, history.quantity)
        if slot is None:
            return
        newest_day = self._ordinal(history.newest.ts_ms)
        # the day before too unless it is known to be judged: with no marker no day was ever judged, so the
        # first day is judged even when the engine was down over its midnight
        first_day = max(self.judged_through + 1, newest_day - 1)
        for ordinal in range(first_day, newest_day + 1):
            start, end = self.day_end_ms(ordinal - 1), self.day_end_ms(ordinal)
            aggregate = history.day(start, end)
            if aggregate is None:
                continue
            if slot < len(self._day) and self._day[slot]:
                self._rebuilt.extend(self._verdict(slot))
                self._rebuilt_through = max(self._rebuilt_through, self._day[slot])
                self._end(slot, judged=False)  # judged at the first due, with the others of that day
            self._begin(slot, ordinal, aggregate.min, aggregate.max, aggregate.sum, aggregate.count,
                        aggregate.first_ms, aggregate.last_ms)

    def adopt(self, previous: Rule, now_ms: int) -> None:
        if not isinstance(previous, StabilityRule):
            return
        for name in ("_day", "_min", "_max", "_sum", "_count", "_first", "_last", "_held", "judged_through",
                     "late_for_day"):
            setattr(self, name, getattr(previous, name))
        self._rebuilt, self._rebuilt_through = list(previous._rebuilt), previous._rebuilt_through

    def snapshot(self) -> dict[str, Any]:
        keys = self.ctx.series.keys
        return {"judged_through": self.judged_through,
                "days": [{"sensor": keys[slot][0], "quantity": keys[slot][1], "day": self._day[slot],
                          "min": self._min[slot], "max": self._max[slot], "sum": self._sum[slot],
                          "count": self._count[slot], "first_ms": self._first[slot], "last_ms": self._last[slot]}
                         for slot in range(len(self._day)) if self._day[slot]]}
