"""Rate of change: a swing larger than the profile's limit within a short window (default 1 h)."""

from __future__ import annotations

from typing import Any

from alerts.model import Condition, SensorInfo
from alerts.rules._window import Window
from alerts.rules.base import Rule, at_resolution, hysteresis
from archmon.domain import Reading

__all__ = ["RateOfChangeRule"]


class RateOfChangeRule(Rule):
    """Fires when max − min over the last ``rate.window_s`` exceeds ``rate.<quantity>_max``.

    Clears once the swing in the window is back under 80 % of the limit for the clear delay.
    """

    name = "rate"
    default_severity = "minor"
    quantities = frozenset({"temperature", "humidity"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._windows: dict[tuple[str, str], Window] = {}
        self._limits: dict[tuple[str, str], tuple[float, int] | None] = {}  # -> (limit, window ms) or None

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        subject = (sensor.id, reading.quantity)
        if subject not in self._limits:
            rate = sensor.profile.rate
            limit = rate.limit(reading.quantity)
            self._limits[subject] = None if limit is None else (limit, int(rate.window_s * 1000))
        known = self._limits[subject]
        if known is None:
            return []
        limit, span_ms = known
        window = self._windows.get(subject)
        if window is None or window.span_ms != span_ms:
            window = self._windows[subject] = Window(span_ms)
        window.add(reading.ts_ms, reading.value)
        swing = at_resolution(window.max - window.min)
        state = hysteresis(swing, limit, limit * 0.2, above=True)
        key = f"{sensor.id}/{reading.quantity}"
        if self.quiet(key, state):
            return []
        return [self.condition(
            sensor, key, state, reading.ts_ms, quantity=reading.quantity,
            value=swing, limit=limit, clear_delay_s=sensor.profile.timing.clear_delay_s,
        )]

    def snapshot(self) -> dict[str, Any]:
        return {"windows": [[s, q, w.span_ms, w.dump()] for (s, q), w in self._windows.items()]}

    def restore(self, data: dict[str, Any]) -> None:
        self._windows = {(s, q): Window.load(span, items) for s, q, span, items in data.get("windows", [])}
