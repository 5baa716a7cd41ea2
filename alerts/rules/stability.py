"""24 h stability, day verdict: each calendar day in the site's zone judged at local midnight."""

from __future__ import annotations

import datetime as dt
from typing import Any

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule, at_resolution
from archmon.domain import Reading

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
    """

    name = "stability"
    default_severity = "minor"
    quantities = frozenset({"temperature", "humidity"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (sensor, quantity) -> [day ordinal, min, max, sum, count, first ts, last ts]
        self._days: dict[tuple[str, str], list[float]] = {}
        self._ends: dict[int, int] = {}  # day ordinal -> its end (ms)
        self._due: int | None = None  # next_due, valid while _due_known
        self._due_known = False
        self._day_of: tuple[int, int] = (-1, 0)  # the last (ts_ms, local day ordinal) worked out
        self._judged: dict[tuple[str, str], bool] = {}  # (sensor, quantity) -> has a stability limit

    def _ordinal(self, ts_ms: int) -> int:
        """The local (site zone) day of ``ts_ms`` as an ordinal (a sensor's T and RH share a timestamp)."""
        if self._day_of[0] != ts_ms:
            self._day_of = (ts_ms, dt.datetime.fromtimestamp(ts_ms / 1000, self.ctx.tz).toordinal())
        return self._day_of[1]

    def _day_end_ms(self, ordinal: int) -> int:
        end = self._ends.get(ordinal)
        if end is None:
            day = dt.date.fromordinal(ordinal + 1)
            end = self._ends[ordinal] = int(dt.datetime.combine(day, dt.time(0), tzinfo=self.ctx.tz).timestamp() * 1000)
        return end

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        key = (sensor.id, reading.quantity)
        judged = self._judged.get(key)
        if judged is None:
            judged = self._judged[key] = (
                reading.quantity in _QUANTITIES and sensor.profile.stability.limit(reading.quantity) is not None
            )
        if not judged:
            return []
        ordinal = self._ordinal(reading.ts_ms)
        out: list[Condition] = []
        stats = self._days.get(key)
        if stats is not None and ordinal < stats[0]:
            return []  # late reading for a day already judged
        if stats is not None and ordinal > stats[0]:
            out.extend(self._verdict(key, stats))
            stats = None
        if stats is None:
            self._days[key] = [ordinal, reading.value, reading.value, reading.value, 1, reading.ts_ms, reading.ts_ms]
            self._due_known = False
        else:
            stats[1] = min(stats[1], reading.value)
            stats[2] = max(stats[2], reading.value)
            stats[3] += reading.value
            stats[4] += 1
            stats[5] = min(stats[5], reading.ts_ms)
            stats[6] = max(stats[6], reading.ts_ms)
        return out

    def _verdict(self, key: tuple[str, str], stats: list[float]) -> list[Condition]:
        sensor = self.ctx.sensors.get(key[0])
        if sensor is None:
            return []
        limits = sensor.profile.stability
        limit = limits.limit(key[1])
        if limit is None:
            return []
        value = at_resolution(day_fluctuation(
            stats[1], stats[2], stats[3] / stats[4], interpretation=limits.interpretation,
            setpoint=limits.setpoint(key[1]),
        ))  # 不得大于: exactly at the limit passes, so float noise must not push it over
        day = dt.date.fromordinal(int(stats[0]))
        end = self._day_end_ms(int(stats[0]))
        coverage = day_coverage(int(stats[5]), int(stats[6]), self._day_end_ms(int(stats[0]) - 1), end)
        detail = f"{limits.interpretation} {day.isoformat()}"
        state: bool | None = value > at_resolution(limit)
        if coverage < self.ctx.settings.stability.min_coverage:
            state, detail = None, f"{detail} {INSUFFICIENT}"  # neither fires nor clears
        return [self.condition(
            sensor, f"{key[0]}/{key[1]}", state, end, quantity=key[1], value=value, limit=limit, detail=detail,
        )]

    def next_due(self) -> int | None:
        if not self._due_known:  # the days kept change only when a day starts or is judged
            self._due = self._day_end_ms(int(min(s[0] for s in self._days.values()))) if self._days else None
            self._due_known = True
        return self._due

    def on_due(self, now_ms: int) -> list[Condition]:
        out: list[Condition] = []
        for key, stats in sorted(self._days.items(), key=lambda item: item[1][0]):
            if self._day_end_ms(int(stats[0])) <= now_ms:
                out.extend(self._verdict(key, stats))
                del self._days[key]
                self._due_known = False
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"days": [[s, q, *stats] for (s, q), stats in self._days.items()]}

    def restore(self, data: dict[str, Any]) -> None:
        self._days = {}
        for row in data.get("days", []):
            stats = list(row[2:])
            if len(stats) == 5:  # a snapshot from before coverage was kept: the span runs from the day's start
                start = self._day_end_ms(int(stats[0]) - 1)
                stats += [start, start]
            self._days[(row[0], row[1])] = stats
        self._due_known = False
