"""Mould risk: RH at or above the profile's threshold (65 %) sustained, within 2–45 ℃."""

from __future__ import annotations

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule, hysteresis
from archmon.domain import Reading

__all__ = ["MouldRule"]


class MouldRule(Rule):
    """Fires when RH ≥ ``mould.rh`` holds for ``mould.delay_s`` while the sensor's temperature (if known)
    is within ``mould.t_low``..``mould.t_high``; clears below ``rh − clear_margin``.

    The temperature is the sensor's newest temperature reading (from the engine's series table, so it
    needs no memory of its own and is rebuilt from the store at start). Late readings: only the newest
    humidity reading is judged (``late = "skip"``): an old humid reading must not restart the delay of a
    room that is dry now, nor an old dry one end a risk that holds.
    """

    name = "mould"
    default_severity = "major"
    quantities = frozenset({"humidity"})

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        if reading.quantity != "humidity":
            return []
        mould = sensor.profile.mould
        series = self.ctx.series
        slot = series.find(sensor.id, "temperature")
        newest = None if slot is None else series.newest(slot)
        if newest is not None and not mould.t_low <= newest.value <= mould.t_high:
            state: bool | None = False
        else:
            # at the threshold counts as risk (RH ≥ 65 %)
            state = hysteresis(reading.value, mould.rh, mould.clear_margin, above=True, inclusive=True)
        if self.quiet(sensor.id, state):
            return []
        return [self.condition(
            sensor, sensor.id, state, reading.ts_ms, quantity="humidity", value=reading.value,
            limit=mould.rh, delay_s=mould.delay_s, clear_delay_s=sensor.profile.timing.clear_delay_s,
        )]
