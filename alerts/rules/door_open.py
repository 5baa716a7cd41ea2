"""Door open too long: a door (1 = open) left open longer than ``alerts.door.open_max_s``."""

from __future__ import annotations

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule
from archmon.domain import Reading

__all__ = ["DoorOpenRule"]


class DoorOpenRule(Rule):
    """An open door is a pending condition whose delay is the allowed open time; closing clears it.

    Late readings: only the newest door reading is judged (``late = "skip"``): an old "open" arriving
    after the door was closed again must not start the delay, nor an old "closed" end one that runs.
    """

    name = "door_open"
    default_severity = "major"
    quantities = frozenset({"door"})

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        if reading.quantity != "door":
            return []
        open_max = self.ctx.settings.door.open_max_s
        state = reading.value >= 1.0
        if self.quiet(sensor.id, state):
            return []
        return [self.condition(
            sensor, sensor.id, state, reading.ts_ms, quantity="door", value=reading.value,
            limit=open_max, delay_s=open_max,
        )]
