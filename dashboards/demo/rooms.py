"""The demo site's rooms as pure models of time: climate with daily curves and weather, doors, detectors.

Every value is a function of the timestamp alone (no clock, no state), so the 30 days of history, the live
simulators and the tests agree exactly, and the live part continues the history's curves where it ends.

- :class:`DemoRoom`: a :class:`~devices.simulators.climate.RoomClimate` (the daily curve, warmest at
  15:00 local time, RH moving the other way, sensor noise), plus weather-like drift (two slow waves, days
  long, that the HVAC only half evens out) and the excursions scripted for the demo (an HVAC fault: the
  room drifts out of its band and back, ramping in and out).
- :class:`DemoDoor`: a door's openings: working-hours visits from a
  :class:`~devices.simulators.climate.DoorSchedule`, plus scripted ones.
- :class:`DemoAlarm`: a smoke or leak detector: quiet, except during scripted spans (a detector test).

The sizes are chosen so that a normal day stays inside the paper profile's limits with margin (24 h range
under 2 ℃ and 5 %RH even with a reading every few seconds): only the scripted events raise alerts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from devices.simulators.climate import DoorOpening, DoorSchedule, Excursion, RoomClimate

__all__ = ["DAY_MS", "DemoAlarm", "DemoDoor", "DemoRoom", "Span"]

DAY_MS = 86_400_000
_WAVES_DAYS = (7.3, 4.3)  # periods of the weather drift; the second at half the amplitude


class Span(NamedTuple):
    """``[start_ms, end_ms)``: when a door stood open or a detector was in alarm."""

    start_ms: int
    end_ms: int

    def covers(self, ts_ms: int) -> bool:
        """Whether ``ts_ms`` lies inside."""
        return self.start_ms <= ts_ms < self.end_ms


@dataclass(frozen=True)
class DemoRoom:
    """One room's temperature and relative humidity over time.

    Args:
        climate: the daily curve and noise (its own random excursions off: ``excursion_rate_per_day=0``).
        drift_c: amplitude of the weather drift of temperature (°C).
        drift_rh: amplitude of the weather drift of RH (%RH).
        excursions: the scripted faults.
    """

    climate: RoomClimate
    drift_c: float = 0.0
    drift_rh: float = 0.0
    excursions: tuple[Excursion, ...] = ()

    def __post_init__(self) -> None:
        if self.climate.excursion_rate_per_day:
            raise ValueError("DemoRoom: the demo scripts its excursions; use a climate with excursion_rate_per_day=0")

    def with_excursions(self, more: Iterable[Excursion]) -> DemoRoom:
        """The same room with more scripted faults."""
        return dataclasses.replace(self, excursions=(*self.excursions, *more))

    def _drift(self, ts_ms: int) -> float:
        """The weather's shape at ``ts_ms``: -1.5..1.5, slow (days), different per room (its seed)."""
        days = ts_ms / DAY_MS
        phase = self.climate.seed * 1.7
        first, second = _WAVES_DAYS
        return math.sin(2 * math.pi * days / first + phase) + 0.5 * math.sin(2 * math.pi * days / second + 2 * phase)

    def _faults(self, ts_ms: int) -> tuple[float, float]:
        delta_c = delta_rh = 0.0
        for excursion in self.excursions:
            strength = excursion.strength(ts_ms)
            if strength:
                delta_c += excursion.delta_c * strength
                delta_rh += excursion.delta_rh * strength
        return delta_c, delta_rh

    def temperature(self, ts_ms: int) -> float:
        """Temperature in °C at ``ts_ms`` (UTC epoch ms), as the room's sensor reads it."""
        return self.climate.temperature(ts_ms) + self.drift_c * self._drift(ts_ms) + self._faults(ts_ms)[0]

    def humidity(self, ts_ms: int) -> float:
        """Relative humidity in %RH at ``ts_ms``, 0..100."""
        value = self.climate.humidity(ts_ms) - self.drift_rh * self._drift(ts_ms) + self._faults(ts_ms)[1]
        return min(100.0, max(0.0, value))


@dataclass(frozen=True)
class DemoDoor:
    """When a door is open: the schedule's visits and scripted openings.

    Args:
        schedule: working-hours visits (None: only the scripted ones).
        extra: scripted openings.
        quiet: spans without visits of the schedule (the live script's, so that only its events happen).
    """

    schedule: DoorSchedule | None = None
    extra: tuple[Span, ...] = ()
    quiet: tuple[Span, ...] = ()

    def with_openings(self, more: Iterable[Span], *, quiet: Iterable[Span] = ()) -> DemoDoor:
        """The same door with more scripted openings (and no scheduled visit overlapping ``quiet``)."""
        return dataclasses.replace(self, extra=(*self.extra, *more), quiet=(*self.quiet, *quiet))

    def openings(self, start_ms: int, end_ms: int) -> list[Span]:
        """The openings overlapping ``[start_ms, end_ms)``, in start order."""
        found = [Span(o.start_ms, o.end_ms) for o in self._scheduled(start_ms, end_ms)
                 if not any(o.start_ms < q.end_ms and o.end_ms > q.start_ms for q in self.quiet)]
        found += [o for o in self.extra if o.start_ms < end_ms and o.end_ms > start_ms]
        return sorted(found)

    def _scheduled(self, start_ms: int, end_ms: int) -> list[DoorOpening]:
        return [] if self.schedule is None else self.schedule.openings(start_ms, end_ms)

    def is_open(self, ts_ms: int) -> bool:
        """Whether the door is open at ``ts_ms``."""
        return any(opening.covers(ts_ms) for opening in self.openings(ts_ms, ts_ms + 1))


@dataclass(frozen=True)
class DemoAlarm:
    """A smoke or water-leak detector: 0, except 1 during its scripted spans."""

    spans: tuple[Span, ...] = field(default=())

    def with_spans(self, more: Iterable[Span]) -> DemoAlarm:
        """The same detector with more scripted alarms."""
        return dataclasses.replace(self, spans=(*self.spans, *more))

    def value(self, ts_ms: int) -> float:
        """1.0 during an alarm, else 0.0."""
        return float(any(span.covers(ts_ms) for span in self.spans))
