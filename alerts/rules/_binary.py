"""Shared logic of the critical binary detectors (smoke, water leak): fire and clear immediately."""

from __future__ import annotations

from typing import ClassVar

from alerts.model import Condition, SensorInfo
from alerts.rules.base import LateReadings, Rule
from archmon.domain import Reading
from archmon.timeutil import to_iso

__all__ = ["DetectorRule"]


class DetectorRule(Rule):
    """Critical, no delay: value 1 fires at once, value 0 clears at once.

    Late readings (``late = "always"``, even older than the 24 h window): an alarm nobody heard of must
    reach a person. A late 1 while the detector's newest reading is 0 raises the alert (detail ``late``
    and the reading's own time, stamped now) and clears it at once, so the fire or leak that happened is
    notified and recovered; a late 1 while the newest is 1 adds nothing (the alert is on); a late 0 never
    clears a newer alarm.
    """

    quantity: ClassVar[str] = ""
    default_severity = "critical"
    late: ClassVar[LateReadings] = "always"

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        if reading.quantity != self.quantity:
            return []
        alarm = reading.value >= 1.0
        slot = self.ctx.series.find(sensor.id, self.quantity)
        newest = None if slot is None else self.ctx.series.newest(slot)
        if newest is not None and reading.ts_ms < newest.ts_ms:
            if not alarm or newest.value >= 1.0:
                return []
            detail = f"late {to_iso(reading.ts_ms, self.ctx.tz)}"
            return [
                self.condition(sensor, sensor.id, True, reading.ts_ms, quantity=self.quantity, value=reading.value,
                               limit=1.0, detail=detail),
                self.condition(sensor, sensor.id, False, newest.ts_ms, quantity=self.quantity, value=newest.value,
                               limit=1.0, detail=detail),
            ]
        if self.quiet(sensor.id, alarm):
            return []
        return [self.condition(
            sensor, sensor.id, alarm, reading.ts_ms, quantity=self.quantity,
            value=reading.value, limit=1.0,
        )]
