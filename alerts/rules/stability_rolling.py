"""24 h stability, early warning: the same limit applied to a rolling 24 h window."""

from __future__ import annotations

from typing import Any

from alerts.model import Condition, SensorInfo
from alerts.rules._window import Window
from alerts.rules.base import Rule, at_resolution, hysteresis
from alerts.rules.stability import day_fluctuation
from archmon.domain import Reading

__all__ = ["RollingStabilityRule"]

_DAY_MS = 86_400_000
_MARGIN = 0.2  # clears at 80 % of the limit


class RollingStabilityRule(Rule):
    """Warns as soon as the last 24 h already break the day's stability limit.

    Interpretation A compares the window's max − min with the limit; B compares the current value's
    deviation from the set-point (or the window's mean). Clears once below 80 % of the limit.
    """

    name = "stability_24h"
    default_severity = "warning"
    quantities = frozenset({"temperature", "humidity"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._windows: dict[tuple[str, str], Window] = {}
        self._limits: dict[tuple[str, str], float | None] = {}  # (sensor, quantity) -> limit if judged

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        limits = sensor.profile.stability
        subject = (sensor.id, reading.quantity)
        if subject not in self._limits:
            self._limits[subject] = limits.limit(reading.quantity) if limits.rolling else None
        limit = self._limits[subject]
        if limit is None:
            return []
        window = self._windows.get(subject)
        if window is None:
            window = self._windows[subject] = Window(_DAY_MS)
        window.add(reading.ts_ms, reading.value)
        if limits.interpretation == "A":
            value = day_fluctuation(window.min, window.max, 0.0, interpretation="A")  # A needs no mean
        else:
            centre = limits.setpoint(reading.quantity)
            value = abs(reading.value - (window.mean if centre is None else centre))
        value = at_resolution(value)
        state = hysteresis(value, limit, limit * _MARGIN, above=True)
        key = f"{sensor.id}/{reading.quantity}"
        if self.quiet(key, state):
            return []
        return [self.condition(
            sensor, key, state, reading.ts_ms, quantity=reading.quantity,
            value=value, limit=limit, clear_delay_s=sensor.profile.timing.clear_delay_s,
            detail=limits.interpretation,
        )]

    def snapshot(self) -> dict[str, Any]:
        return {"windows": [[s, q, w.dump()] for (s, q), w in self._windows.items()]}

    def restore(self, data: dict[str, Any]) -> None:
        self._windows = {(s, q): Window.load(_DAY_MS, items) for s, q, items in data.get("windows", [])}
