"""Band rule: temperature and humidity outside the profile's low/high band (with clear margin)."""

from __future__ import annotations

from typing import Any, NamedTuple

from alerts.model import Condition, SensorInfo
from alerts.rules.base import Rule, hysteresis
from archmon.domain import Reading

__all__ = ["BandRule"]


class _Limit(NamedTuple):
    side: str  # low | high
    limit: float


class _Plan(NamedTuple):
    """The band of one room's quantity, worked out once."""

    margin: float
    delay_s: float
    clear_delay_s: float
    limits: tuple[_Limit, ...]


class BandRule(Rule):
    """Fires when a value is below ``low`` or above ``high`` for the profile's delay.

    States per ``sensor/quantity/side``: a value past the limit is a violation; it clears only once the
    value is ``clear_margin`` back inside the band for the clear delay, so a value oscillating around a
    limit within the margin does not flap.

    Late readings: only the newest reading of a series is judged (``late = "skip"``). The band states
    where a value is now; an older reading arriving after a newer one (device time, a redelivered
    backlog) must not clear an alert the newer out-of-band value keeps, nor raise one the newer in-band
    value has ended. It is stored and counts in reports and the day's stability.
    """

    name = "band"
    default_severity = "major"
    quantities = frozenset({"temperature", "humidity"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: dict[tuple[str, str], _Plan | None] = {}  # (room, quantity): profiles are per room

    def _plan(self, sensor: SensorInfo, quantity: str) -> _Plan | None:
        """The band of the sensor's room for ``quantity`` (None: not judged), worked out once per room."""
        subject = (sensor.room, quantity)
        if subject not in self._plans:
            band = sensor.profile.band(quantity)
            plan: _Plan | None = None
            if band is not None:
                timing = sensor.profile.timing
                plan = _Plan(
                    band.clear_margin,
                    timing.delay_s if band.delay_s is None else band.delay_s,
                    timing.clear_delay_s if band.clear_delay_s is None else band.clear_delay_s,
                    tuple(_Limit(side, limit) for side, limit in (("low", band.low), ("high", band.high))
                          if limit is not None),
                )
            self._plans[subject] = plan
        return self._plans[subject]

    def on_reading(self, reading: Reading, sensor: SensorInfo) -> list[Condition]:
        plan = self._plan(sensor, reading.quantity)
        if plan is None:
            return []
        out = []
        for side, limit in plan.limits:
            state = hysteresis(reading.value, limit, plan.margin, above=side == "high")
            key = f"{sensor.id}/{reading.quantity}/{side}"
            if self.quiet(key, state):
                continue
            out.append(self.condition(
                sensor, key, state, reading.ts_ms,
                quantity=reading.quantity, value=reading.value, limit=limit,
                delay_s=plan.delay_s, clear_delay_s=plan.clear_delay_s, detail=side,
            ))
        return out
