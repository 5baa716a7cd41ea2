"""24 h stability, day verdict: each calendar day in the site's zone judged at local midnight."""

from __future__ import annotations

import datetime as dt
from typing import Any

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule
from archmon.domain import Reading
from archmon.timeutil import from_ms

__all__ = ["StabilityRule", "day_fluctuation"]

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


class StabilityRule(Rule):
    """Judges each finished calendar day (site zone) per sensor and quantity.

    At local midnight the day's min/max/mean give the fluctuation under the profile's interpretation
    (A: max − min; B: deviation from the set-point or the day's mean). A failing day fires at once; the
    alert clears at the end of the next day that passes.
    """

    name = "stability"
    default_severity = "minor"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (sensor, quantity) -> [day ordinal, min, max, sum, count]
        self._days: dict[tuple[str, str], list[float]] = {}

    def _day_end_ms(self, ordinal: int) -> int:
        day = dt.date.fromordinal(ordinal + 1)
        return int(dt.datetime.combine(day, dt.time(0), tzinfo=self.ctx.tz).timestamp() * 1000)

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        if reading.quantity not in _QUANTITIES or sensor.profile.stability.limit(reading.quantity) is None:
            return []
        ordinal = from_ms(reading.ts_ms).astimezone(self.ctx.tz).date().toordinal()
        key = (sensor.id, reading.quantity)
        out: list[Condition] = []
        stats = self._days.get(key)
        if stats is not None and ordinal < stats[0]:
            return []  # late reading for a day already judged
        if stats is not None and ordinal > stats[0]:
            out.extend(self._verdict(key, stats))
            stats = None
        if stats is None:
            self._days[key] = [ordinal, reading.value, reading.value, reading.value, 1]
        else:
            stats[1] = min(stats[1], reading.value)
            stats[2] = max(stats[2], reading.value)
            stats[3] += reading.value
            stats[4] += 1
        return out

    def _verdict(self, key: tuple[str, str], stats: list[float]) -> list[Condition]:
        sensor = self.ctx.sensors.get(key[0])
        if sensor is None:
            return []
        limits = sensor.profile.stability
        limit = limits.limit(key[1])
        if limit is None:
            return []
        value = day_fluctuation(
            stats[1], stats[2], stats[3] / stats[4], interpretation=limits.interpretation,
            setpoint=limits.setpoint(key[1]),
        )
        day = dt.date.fromordinal(int(stats[0]))
        return [self.condition(
            sensor, f"{key[0]}/{key[1]}", value > limit, self._day_end_ms(int(stats[0])),
            quantity=key[1], value=value, limit=limit, detail=f"{limits.interpretation} {day.isoformat()}",
        )]

    def next_due(self) -> int | None:
        if not self._days:
            return None
        return self._day_end_ms(int(min(stats[0] for stats in self._days.values())))

    def on_due(self, now_ms: int) -> list[Condition]:
        out: list[Condition] = []
        for key, stats in sorted(self._days.items(), key=lambda item: item[1][0]):
            if self._day_end_ms(int(stats[0])) <= now_ms:
                out.extend(self._verdict(key, stats))
                del self._days[key]
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"days": [[s, q, *stats] for (s, q), stats in self._days.items()]}

    def restore(self, data: dict[str, Any]) -> None:
        self._days = {(row[0], row[1]): list(row[2:]) for row in data.get("days", [])}
