"""Door opened outside working hours (site hours, weekdays, holidays and make-up days in config)."""

from __future__ import annotations

from typing import Any

from alerts._series import Newest
from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule
from archmon.domain import Reading
from archmon.timeutil import from_ms

__all__ = ["DoorAfterHoursRule"]


class DoorAfterHoursRule(Rule):
    """Fires when a door opens (0 → 1) outside working hours in the site's zone; closing clears it.

    A door opened during working hours and left open past closing time is the door_open rule's job.

    Late readings: only the newest door reading is judged (``late = "skip"``): an opening that arrives
    after a newer reading of the same door is history (it is stored, and the events show it), not the
    door's state now. Memory: the doors open now, rebuilt at start from the newest stored door reading.
    """

    name = "door_hours"
    default_severity = "major"
    quantities = frozenset({"door"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[str] = set()

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        if reading.quantity != "door":
            return []
        is_open = reading.value >= 1.0
        was_open = sensor.id in self._open
        if is_open:
            self._open.add(sensor.id)
        else:
            self._open.discard(sensor.id)
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

    def rebuild(self, sensor: SensorInfo, history: Any) -> None:
        if history.quantity == "door" and history.newest is not None and history.newest.value >= 1.0:
            self._open.add(sensor.id)

    def rewind(self, sensor: SensorInfo, quantity: str, judged: Newest | None) -> None:
        if quantity == "door":
            if judged is not None and judged.value >= 1.0:
                self._open.add(sensor.id)
            else:
                self._open.discard(sensor.id)

    def adopt(self, previous: Rule, now_ms: int) -> None:
        if isinstance(previous, DoorAfterHoursRule):
            self._open = {door for door in previous._open if door in self.ctx.sensors}

    def snapshot(self) -> dict[str, Any]:
        return {"open": sorted(self._open)}
