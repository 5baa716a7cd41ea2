"""Mould risk: RH at or above the profile's threshold (65 %) sustained, within 2–45 ℃."""

from __future__ import annotations

from typing import Any

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule, hysteresis
from archmon.domain import Reading

__all__ = ["MouldRule"]


class MouldRule(Rule):
    """Fires when RH ≥ ``mould.rh`` holds for ``mould.delay_s`` while the sensor's temperature (if known)
    is within ``mould.t_low``..``mould.t_high``; clears below ``rh − clear_margin``."""

    name = "mould"
    default_severity = "major"
    quantities = frozenset({"temperature", "humidity"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._temperature: dict[str, float] = {}

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        if reading.quantity == "temperature":
            self._temperature[sensor.id] = reading.value
            return []
        if reading.quantity != "humidity":
            return []
        mould = sensor.profile.mould
        temperature = self._temperature.get(sensor.id)
        if temperature is not None and not mould.t_low <= temperature <= mould.t_high:
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

    def snapshot(self) -> dict[str, Any]:
        return {"temperature": self._temperature}

    def restore(self, data: dict[str, Any]) -> None:
        self._temperature = dict(data.get("temperature", {}))
