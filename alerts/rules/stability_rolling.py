"""24 h stability, early warning: the same limit applied to a rolling 24 h window."""

from __future__ import annotations

from typing import Any, ClassVar

from alerts._series import WindowNeeds
from alerts.model import Condition, SensorInfo
from alerts.profiles import StabilityLimits
from alerts.rules.base import LateReadings, Rule, at_resolution, hysteresis
from alerts.rules.stability import day_fluctuation
from archmon.domain import Reading

__all__ = ["RollingStabilityRule"]

_MARGIN = 0.2  # clears at 80 % of the limit


class RollingStabilityRule(Rule):
    """Warns as soon as the last 24 h already break the day's stability limit.

    The window is the hour layer of the engine's series table (:mod:`alerts._windows`): **the UTC hour of
    the series' newest reading plus the 23 before**, as min/max/sum/count per hour (rebuilt at start from
    the store's hour rollups). Interpretation A compares the window's max − min with the limit; B compares
    the newest value's deviation from the set-point (or the window's mean). Clears once below 80 % of the
    limit.

    Late readings (``late = "window"``): a reading older than the newest goes into the bucket of its own
    hour (if still inside the window) and the window is judged again (B still measures the newest value):
    the window's contents do not depend on the arrival order, but the verdict is the current window's, so a
    fluctuation only a past window showed is not judged when it arrives late.
    """

    name = "stability_24h"
    default_severity = "warning"
    quantities = frozenset({"temperature", "humidity"})
    late: ClassVar[LateReadings] = "window"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits: dict[tuple[str, str], float | None] = {}  # (room, quantity): profiles are per room

    def _limit(self, sensor: SensorInfo, quantity: str) -> float | None:
        subject = (sensor.room, quantity)
        if subject not in self._limits:
            limits = sensor.profile.stability
            self._limits[subject] = limits.limit(quantity) if limits.rolling else None
        return self._limits[subject]

    def window_needs(self, sensor: SensorInfo, quantity: str) -> WindowNeeds:
        if quantity not in self.quantities or self._limit(sensor, quantity) is None:
            return WindowNeeds()
        return WindowNeeds(hours=True)

    def fluctuation(self, sensor: SensorInfo, quantity: str) -> float | None:
        """The window's fluctuation under the profile's interpretation, at sensor resolution (None: not
        judged, or no reading)."""
        if self._limit(sensor, quantity) is None:
            return None
        series = self.ctx.series
        slot = series.find(sensor.id, quantity)
        if slot is None:
            return None
        limits: StabilityLimits = sensor.profile.stability
        if limits.interpretation == "A":
            span = series.day_span(slot)  # A needs no mean
            if span is None:
                return None
            value = day_fluctuation(span.min, span.max, 0.0, interpretation="A")
        else:
            stats = series.day_stats(slot)
            if stats is None:
                return None
            centre = limits.setpoint(quantity)
            value = abs(series.newest_value[slot] - (stats.mean if centre is None else centre))
        return at_resolution(value)

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        value = self.fluctuation(sensor, reading.quantity)
        if value is None:
            return []
        limit = self._limit(sensor, reading.quantity)
        assert limit is not None
        state = hysteresis(value, limit, limit * _MARGIN, above=True)
        key = f"{sensor.id}/{reading.quantity}"
        if self.quiet(key, state):
            return []
        slot = self.ctx.series.find(sensor.id, reading.quantity)
        # the window is judged as of the series' newest reading (a late reading included), so is its time
        ts = reading.ts_ms if slot is None else max(reading.ts_ms, self.ctx.series.newest_ts[slot])
        return [self.condition(
            sensor, key, state, ts, quantity=reading.quantity,
            value=value, limit=limit, clear_delay_s=sensor.profile.timing.clear_delay_s,
            detail=sensor.profile.stability.interpretation,
        )]
