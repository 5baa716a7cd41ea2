"""Door open too long: a door (1 = open) left open longer than ``alerts.door.open_max_s``."""

from __future__ import annotations

from typing import Any, ClassVar

from alerts.model import Condition, SensorInfo
from alerts.rules._late_runs import LateRaised, judge_late
from alerts.rules.base import LateReadings, Rule
from archmon.domain import Reading
from archmon.timeutil import to_iso

__all__ = ["DoorOpenRule"]


def _open(value: float) -> bool:
    return value >= 1.0


class DoorOpenRule(Rule):
    """An open door is a pending condition whose delay is the allowed open time; closing clears it.

    Late readings (``late = "window"``): a door reading older than the door's newest never sets the state
    now (an old "open" arriving after the door was closed again must not start the delay, nor an old
    "closed" end one that runs); what it proves about the past is judged from the stored door readings
    around it (:mod:`alerts.rules._late_runs`): a door that was open longer than allowed (its "closed"
    arriving first, a backlog in any order) is raised and cleared at once as its own alert (key
    ``<door>/late``, also while the door is open now), once per opening whatever the order its readings
    arrive in, and a running delay restarts from the opening a late reading reveals.
    """

    name = "door_open"
    default_severity = "major"
    quantities = frozenset({"door"})
    late: ClassVar[LateReadings] = "window"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._late = LateRaised()

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        if reading.quantity != "door":
            return []
        open_max = self.ctx.settings.door.open_max_s
        series = self.ctx.series
        slot = series.find(sensor.id, "door")
        newest = None if slot is None else series.newest(slot)
        if newest is not None and reading.ts_ms < newest.ts_ms:
            return self._late_reading(reading, sensor, newest.ts_ms, newest.value)
        state = _open(reading.value)
        if self.quiet(sensor.id, state):
            return []
        return [self.condition(
            sensor, sensor.id, state, reading.ts_ms, quantity="door", value=reading.value,
            limit=open_max, delay_s=open_max,
        )]

    def _late_reading(self, reading: Reading, sensor: SensorInfo, newest_ms: int, newest_value: float
                      ) -> list[Condition]:
        open_max = self.ctx.settings.door.open_max_s
        verdict = judge_late(self.ctx.history, reading, newest_ms, int(open_max * 1000), _open)
        if verdict is None:
            return []
        past = list(verdict.proven)
        on_since = self.firing.get(sensor.id)  # the opening whose alert is on now began then
        if on_since is not None:  # (overlapping it: that alert's opening)
            past = [run for run in past if run.end_ms is not None and run.end_ms < on_since]
        if verdict.split_off is not None and (on_since is None or verdict.current_start is not None):
            past.append(verdict.split_off)  # the opening on now began after a closing found late
        if verdict.split is not None:  # an excursion split in two: the second is another one
            past.extend(self._late.split(sensor.id, verdict.split))
        out = []
        for run in past:
            if self._late.first(sensor.id, run):  # its own alert, raised and cleared: a past opening
                detail = f"late {to_iso(run.start_ms, self.ctx.tz)}"
                key = f"{sensor.id}/late"
                out.append(self.condition(sensor, key, True, run.start_ms, quantity="door", value=1.0,
                                          limit=open_max, detail=detail))
                out.append(self.condition(sensor, key, False, run.end_ms or newest_ms, quantity="door",
                                          value=0.0, limit=open_max, detail=detail))
        if verdict.current_start is not None:  # the opening going on now began elsewhere: its delay too
            out.append(self.condition(sensor, sensor.id, True, newest_ms, quantity="door", value=newest_value,
                                      limit=open_max, delay_s=open_max, since_ms=verdict.current_start))
        return out
