"""Band rule: temperature and humidity outside the profile's low/high band (with clear margin)."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

from alerts.model import Condition, SensorInfo
from alerts.rules._late_runs import LateRaised, judge_late
from alerts.rules.base import LateReadings, Rule, at_resolution, hysteresis
from archmon.domain import Reading
from archmon.timeutil import to_iso

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

    Late readings (``late = "window"``, inside the 24 h window): a reading older than its series' newest
    never sets the state now (an old in-band value must not clear an alert the newer out-of-band value
    keeps, nor an old out-of-band one start a delay); what it proves about the past is judged from the
    stored readings around it (:mod:`alerts.rules._late_runs`): a past run out of band that lasted the delay
    is raised and cleared at once as its own alert (key ``<sensor>/<quantity>/<side>/late``, also while the
    band is violated now), once per excursion whatever the arrival order; a pending delay restarts from the
    run's new start. A late in-band reading
    of a subject that is idle needs no look-up when the 24 h window shows no value past the limit since.
    """

    name = "band"
    default_severity = "major"
    quantities = frozenset({"temperature", "humidity"})
    late: ClassVar[LateReadings] = "window"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: dict[tuple[str, str], _Plan | None] = {}  # (room, quantity): profiles are per room
        self._late = LateRaised()

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
        series = self.ctx.series
        slot = series.find(sensor.id, reading.quantity)
        if slot is not None and reading.ts_ms < series.newest_ts[slot]:
            return self._late_reading(reading, sensor, plan, slot)
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

    def _late_reading(self, reading: Reading, sensor: SensorInfo, plan: _Plan, slot: int) -> list[Condition]:
        series = self.ctx.series
        newest = series.newest(slot)
        assert newest is not None
        out: list[Condition] = []
        for side, limit in plan.limits:
            key = f"{sensor.id}/{reading.quantity}/{side}"
            above = side == "high"

            def state_of(value: float, limit: float = limit, above: bool = above) -> bool | None:
                return hysteresis(value, limit, plan.margin, above=above)

            busy = key in self.watched
            if not busy and state_of(reading.value) is not True and not self._past_limit_since(slot, reading.ts_ms,
                                                                                               limit, above):
                continue  # nothing out of band since: this in-band value splits no run
            verdict = judge_late(self.ctx.history, reading, newest.ts_ms, int(plan.delay_s * 1000), state_of,
                                 subject=side)
            if verdict is None:
                continue
            extra = {"quantity": reading.quantity, "limit": limit, "clear_delay_s": 0.0}
            past = list(verdict.proven)
            on_since = self.firing.get(key)  # the excursion whose alert is on now began then
            if on_since is not None:  # (overlapping it: that alert's excursion)
                past = [run for run in past if run.end_ms is not None and run.end_ms < on_since]
            if verdict.split_off is not None and (on_since is None or verdict.current_start is not None):
                past.append(verdict.split_off)  # the violation on now began after a fine reading found late
            if verdict.split is not None:  # an excursion split in two: the second is another one
                past.extend(self._late.split(key, verdict.split))
            for run in past:
                if self._late.first(key, run):  # a past excursion: its own alert, raised and cleared
                    detail = f"{side} late {to_iso(run.start_ms, self.ctx.tz)}"
                    out.append(self.condition(sensor, f"{key}/late", True, run.start_ms, value=reading.value,
                                              detail=detail, **extra))
                    out.append(self.condition(sensor, f"{key}/late", False, run.end_ms or newest.ts_ms,
                                              value=newest.value, detail=detail, **extra))
            timing = {**extra, "delay_s": plan.delay_s, "clear_delay_s": plan.clear_delay_s}
            if verdict.current_start is not None:  # the violation going on now began elsewhere: its delay too
                out.append(self.condition(sensor, key, True, newest.ts_ms, value=newest.value, detail=side,
                                          since_ms=verdict.current_start, **timing))
            elif verdict.ended_ms is not None and busy:  # it ended at this in-band reading
                out.append(self.condition(sensor, key, False, verdict.ended_ms, value=reading.value, detail=side,
                                          **timing))
        return out

    def _past_limit_since(self, slot: int, ts_ms: int, limit: float, above: bool) -> bool:
        """Whether the series' 24 h window may hold a value past ``limit`` at or after ``ts_ms`` (True when the
        series has no 24 h window to tell)."""
        row = self.ctx.series.hour_row[slot]
        if row < 0:
            return True
        span = self.ctx.series.hours.spans_since(row, ts_ms)
        if span is None:
            return False
        return span.max > at_resolution(limit) if above else span.min < at_resolution(limit)
