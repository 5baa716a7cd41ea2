"""Door opened outside working hours (site hours, weekdays, holidays and make-up days in config)."""

from __future__ import annotations

from typing import Any

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule
from archmon.domain import Reading
from archmon.timeutil import from_ms

__all__ = ["DoorAfterHoursRule"]


class DoorAfterHoursRule(Rule):
    """Fires when a door opens (0 → 1) outside working hours in the site's zone; closing clears it.

    A door opened during working hours and left open past closing time is the door_open rule's job.
    """

    name = "door_hours"
    default_severity = "major"
    quantities = frozenset({"door"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: dict[str, bool] = {}

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        if reading.quantity != "door":
            return []
        is_open = reading.value >= 1.0
        was_open = self._open.get(sensor.id, False)
        self._open[sensor.id] = is_open
        if not is_open:
            state: bool | None = False
        elif was_open:
            return []
        else:
            local = from_ms(reading.ts_ms).astimezone(self.ctx.tz)
            state = None if self.ctx.settings.working_hours.is_working_time(local) else True
        if self.quiet(sensor.id, state):
            return []
        return [self.condition(sensor, sensor.id, state, reading.ts_ms, quantity="door", value=reading.value)]

    def snapshot(self) -> dict[str, Any]:
        return {"open": self._open}

    def restore(self, data: dict[str, Any]) -> None:
        self._open = dict(data.get("open", {}))
