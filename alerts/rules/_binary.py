"""Shared logic of the critical binary detectors (smoke, water leak): fire and clear immediately."""

from __future__ import annotations

from typing import ClassVar

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule
from archmon.domain import Reading

__all__ = ["DetectorRule"]


class DetectorRule(Rule):
    """Critical, no delay: value 1 fires at once, value 0 clears at once."""

    quantity: ClassVar[str] = ""
    default_severity = "critical"

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        if reading.quantity != self.quantity:
            return []
        state = reading.value >= 1.0
        if self.quiet(sensor.id, state):
            return []
        return [self.condition(
            sensor, sensor.id, state, reading.ts_ms, quantity=self.quantity,
            value=reading.value, limit=1.0,
        )]
