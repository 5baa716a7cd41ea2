"""Rate of change: a swing larger than the profile's limit within a short window (default 1 h)."""

from __future__ import annotations

from typing import Any, ClassVar

from alerts._series import WindowNeeds
from alerts.model import Condition, SensorInfo
from alerts.rules.base import LateReadings, Rule, at_resolution, hysteresis
from archmon.domain import Reading

__all__ = ["RateOfChangeRule"]


class RateOfChangeRule(Rule):
    """Fires when max − min over the rate window exceeds ``rate.<quantity>_max``.

    The window is the fine layer of the engine's series table (:mod:`alerts._windows`): buckets of a
    sixtieth of ``rate.window_s``, **the bucket of the series' newest reading plus the 60 before** (at least
    ``window_s``, at most one bucket more). Clears once the swing in the window is back under 80 % of the
    limit for the clear delay.

    Late readings (``late = "window"``): a reading older than the newest goes into the bucket of its own
    time if it is still inside the window, and the window's swing (as of the newest reading) is judged
    again: the window's contents do not depend on the arrival order. A late reading older than the window
    cannot change it (counted ``late_for_rate``): a swing it would have shown in a past window is not
    judged; nor is a swing that only a window of the past showed (the rule judges the current window).
    """

    name = "rate"
    default_severity = "minor"
    quantities = frozenset({"temperature", "humidity"})
    late: ClassVar[LateReadings] = "window"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits: dict[tuple[str, str], float | None] = {}  # (room, quantity): profiles are per room

    def _limit(self, sensor: SensorInfo, quantity: str) -> float | None:
        subject = (sensor.room, quantity)
        if subject not in self._limits:
            self._limits[subject] = sensor.profile.rate.limit(quantity)
        return self._limits[subject]

    def window_needs(self, sensor: SensorInfo, quantity: str) -> WindowNeeds:
        if quantity not in self.quantities or self._limit(sensor, quantity) is None:
            return WindowNeeds()
        return WindowNeeds(fine_window_ms=int(sensor.profile.rate.window_s * 1000))

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        limit = self._limit(sensor, reading.quantity)
        if limit is None:
            return []
        slot = self.ctx.series.find(sensor.id, reading.quantity)
        swing = None if slot is None else self.ctx.series.swing(slot)
        if swing is None:
            return []
        swing = at_resolution(swing)
        state = hysteresis(swing, limit, limit * 0.2, above=True)
        key = f"{sensor.id}/{reading.quantity}"
        if self.quiet(key, state):
            return []
        # the swing is the window's as of the series' newest reading (a late reading included), so is its time
        ts = max(reading.ts_ms, self.ctx.series.newest_ts[slot])
        return [self.condition(
            sensor, key, state, ts, quantity=reading.quantity,
            value=swing, limit=limit, clear_delay_s=sensor.profile.timing.clear_delay_s,
        )]
