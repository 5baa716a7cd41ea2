"""Battery low: a battery below ``alerts.battery.low`` %."""

from __future__ import annotations

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule, hysteresis
from archmon.domain import Reading

__all__ = ["BatteryRule"]


class BatteryRule(Rule):
    """Fires at once below ``low`` %; clears at ``low + clear_margin`` % (a new battery).

    Late readings: only the newest battery reading is judged (``late = "skip"``): an old low reading
    arriving after the battery was replaced must not raise the alert again, nor an old full one clear it.
    """

    name = "battery"
    default_severity = "warning"
    quantities = frozenset({"battery"})

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        if reading.quantity != "battery":
            return []
        settings = self.ctx.settings.battery
        state = hysteresis(reading.value, settings.low, settings.clear_margin, above=False)
        if self.quiet(sensor.id, state):
            return []
        return [self.condition(
            sensor, sensor.id, state, reading.ts_ms, quantity="battery", value=reading.value, limit=settings.low,
        )]
