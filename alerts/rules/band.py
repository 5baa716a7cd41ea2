"""Band rule: temperature and humidity outside the profile's low/high band (with clear margin)."""

from __future__ import annotations

from typing import Any

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule, hysteresis
from archmon.domain import Reading

__all__ = ["BandRule"]

# the band of one sensor's quantity: clear margin, delay, clear delay, and (side, limit, key) per limit
_Plan = tuple[float, float, float, tuple[tuple[str, float, str], ...]]


class BandRule(Rule):
    """Fires when a value is below ``low`` or above ``high`` for the profile's delay.

    States per ``sensor/quantity/side``: a value past the limit is a violation; it clears only once the
    value is ``clear_margin`` back inside the band for the clear delay, so a value oscillating around a
    limit within the margin does not flap.
    """

    name = "band"
    default_severity = "major"
    quantities = frozenset({"temperature", "humidity"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: dict[tuple[str, str], _Plan | None] = {}

    def _plan(self, sensor: SensorInfo, quantity: str) -> _Plan | None:
        """The sensor's band for ``quantity`` (None: not judged), worked out once."""
        if (sensor.id, quantity) not in self._plans:
            band = sensor.profile.band(quantity)
            plan: _Plan | None = None
            if band is not None:
                timing = sensor.profile.timing
                plan = (
                    band.clear_margin,
                    timing.delay_s if band.delay_s is None else band.delay_s,
                    timing.clear_delay_s if band.clear_delay_s is None else band.clear_delay_s,
                    tuple((side, limit, f"{sensor.id}/{quantity}/{side}")
                          for side, limit in (("low", band.low), ("high", band.high)) if limit is not None),
                )
            self._plans[(sensor.id, quantity)] = plan
        return self._plans[(sensor.id, quantity)]

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        plan = self._plan(sensor, reading.quantity)
        if plan is None:
            return []
        margin, delay, clear_delay, sides = plan
        out = []
        for side, limit, key in sides:
            state = hysteresis(reading.value, limit, margin, above=side == "high")
            if self.quiet(key, state):
                continue
            out.append(self.condition(
                sensor, key, state, reading.ts_ms,
                quantity=reading.quantity, value=reading.value, limit=limit,
                delay_s=delay, clear_delay_s=clear_delay, detail=side,
            ))
        return out
