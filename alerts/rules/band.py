"""Band rule: temperature and humidity outside the profile's low/high band (with clear margin)."""

from __future__ import annotations

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule, hysteresis
from archmon.domain import Reading

__all__ = ["BandRule"]


class BandRule(Rule):
    """Fires when a value is below ``low`` or above ``high`` for the profile's delay.

    States per ``sensor/quantity/side``: a value past the limit is a violation; it clears only once the
    value is ``clear_margin`` back inside the band for the clear delay, so a value oscillating around a
    limit within the margin does not flap.
    """

    name = "band"
    default_severity = "major"

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        band = sensor.profile.band(reading.quantity)
        if band is None:
            return []
        delay = sensor.profile.timing.delay_s if band.delay_s is None else band.delay_s
        clear_delay = sensor.profile.timing.clear_delay_s if band.clear_delay_s is None else band.clear_delay_s
        out = []
        for side, limit in (("low", band.low), ("high", band.high)):
            if limit is None:
                continue
            state = hysteresis(reading.value, limit, band.clear_margin, above=side == "high")
            out.append(self.condition(
                sensor, f"{sensor.id}/{reading.quantity}/{side}", state, reading.ts_ms,
                quantity=reading.quantity, value=reading.value, limit=limit,
                delay_s=delay, clear_delay_s=clear_delay, detail=side,
            ))
        return out
