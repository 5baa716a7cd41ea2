"""Stuck sensor: a quantity that always varies (temperature, humidity) reports one value for hours."""

from __future__ import annotations

from typing import Any

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule, at_resolution
from archmon.domain import Reading

__all__ = ["StuckRule"]


class StuckRule(Rule):
    """Fires when every reading of ``alerts.stuck.hours`` stayed within ``tolerance`` of the value that
    started the flat line; the next different value clears it."""

    name = "stuck"
    default_severity = "minor"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._flat: dict[str, list[float]] = {}  # "sensor/quantity" -> [value, since_ms]
        self.quantities = frozenset(self.ctx.settings.stuck.quantities)

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        settings = self.ctx.settings.stuck
        if reading.quantity not in settings.quantities:
            return []
        key = f"{sensor.id}/{reading.quantity}"
        flat = self._flat.get(key)
        if flat is None or at_resolution(abs(reading.value - flat[0])) > settings.tolerance:
            self._flat[key] = [reading.value, reading.ts_ms]
            state: bool | None = False
            hours = 0.0
        else:
            hours = (reading.ts_ms - flat[1]) / 3_600_000
            state = True if hours >= settings.hours else None
        if self.quiet(key, state):
            return []
        return [self.condition(
            sensor, key, state, reading.ts_ms, quantity=reading.quantity, value=hours, limit=settings.hours,
        )]

    def snapshot(self) -> dict[str, Any]:
        return {"flat": self._flat}

    def restore(self, data: dict[str, Any]) -> None:
        self._flat = {k: list(v) for k, v in data.get("flat", {}).items()}
