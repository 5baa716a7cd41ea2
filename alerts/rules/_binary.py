"""Shared logic of the critical binary detectors (smoke, water leak): fire and clear immediately."""

from __future__ import annotations

from typing import ClassVar

from alerts.model import Condition, SensorInfo
from alerts.rules._late_runs import alarm_run
from alerts.rules.base import LateReadings, Rule
from archmon.domain import Reading
from archmon.timeutil import to_iso

__all__ = ["DetectorRule"]


class DetectorRule(Rule):
    """Critical, no delay: value 1 fires at once, value 0 clears at once.

    Late readings (``late = "always"``, even older than the 24 h window): an alarm nobody heard of must
    reach a person. A late 1 while the detector's newest reading is 0 raises the alert (detail ``late``
    and the time the alarm began, stamped now) and clears it at once, so the fire or leak that happened is
    notified and recovered; a late 1 while the newest is 1 adds nothing (the alert is on); a late 0 never
    clears a newer alarm. One alarm is raised once whatever the order its readings arrive in (a detector's
    buffer uploaded newest first): with a readings store, only the late 1 whose next stored reading (within
    an hour) is not a 1 raises it, the alarm's last reading — the store has all of them before the engine
    judges any (one look-up of two hours of the detector's readings, counted in the step's budget).
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
            began = reading.ts_ms
            near = alarm_run(self.ctx.history, reading)
            if near is not None:
                if near.continues:
                    return []  # the same alarm as the stored 1 after it: raised by the last one
                began = near.began_ms
            detail = f"late {to_iso(began, self.ctx.tz)}"
            return [
                self.condition(sensor, sensor.id, True, began, quantity=self.quantity, value=reading.value,
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
