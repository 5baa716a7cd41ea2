"""Deterministic models of an archive room's climate, its door and its smoke/leak detectors.

Every model is pure: the value at a time depends only on the model's parameters, its seed and the
time, so a simulator, a test and a demo replay agree exactly. Nothing here reads the clock except
:class:`SimClock`, which maps real time to simulated time for a sped-up simulation (``speedup``; tests use
it, ``archmon demo`` runs in real time).

- :class:`RoomClimate`: a daily temperature curve (warmest mid-afternoon, local time), relative humidity
  moving the opposite way, small sensor noise, and occasional HVAC faults (excursions a few hours
  long, ramping in and out) placed from the seed.
- :class:`DoorSchedule`: opened a few times in working hours for a few minutes, rarely at night.
- :class:`AlarmModel`: a smoke or leak detector that reads 0 except during an optional scripted alarm.
- :class:`RoomModel`: all of the above for one room, as the values a simulated device reports.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from archmon.timeutil import from_ms, now_ms

__all__ = [
    "FILM_MASTER_STORE",
    "PAPER_STORE",
    "READING_ROOM",
    "AlarmModel",
    "DoorOpening",
    "DoorSchedule",
    "Excursion",
    "RoomClimate",
    "RoomModel",
    "SimClock",
]

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_MINUTE_MS = 60_000

ExcursionKind = Literal["cooling_failure", "heating_failure", "dehumidifier_failure", "humidifier_failure"]


def _rng(*key: object) -> random.Random:
    """A random generator seeded from ``key`` (stable across runs and Python versions)."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _gauss(*key: object) -> float:
    """A standard normal number derived from ``key`` alone."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=16).digest()
    u1 = (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 1)
    u2 = int.from_bytes(digest[8:], "big") / 2**64
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def _poisson(rng: random.Random, rate: float) -> int:
    if rate <= 0:
        return 0
    limit, count, product = math.exp(-rate), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


@dataclass(frozen=True, slots=True)
class Excursion:
    """One simulated HVAC fault: the room drifts out of its band and back.

    Attributes:
        start_ms: when the drift starts (UTC epoch ms).
        end_ms: when the room is back to normal.
        ramp_ms: how long the drift takes to build up (and to recover) at each end.
        delta_c: temperature offset at full strength (°C).
        delta_rh: relative-humidity offset at full strength (%RH).
        kind: what failed.
    """

    start_ms: int
    end_ms: int
    ramp_ms: int
    delta_c: float
    delta_rh: float
    kind: ExcursionKind

    def strength(self, ts_ms: int) -> float:
        """0 outside the excursion, rising linearly to 1 over ``ramp_ms`` and falling back at the end."""
        if ts_ms <= self.start_ms or ts_ms >= self.end_ms:
            return 0.0
        edge = min(ts_ms - self.start_ms, self.end_ms - ts_ms)
        return min(1.0, edge / self.ramp_ms)


@lru_cache(maxsize=2048)
def _day_excursions(
    seed: int, day: int, rate: float, size_c: float, size_rh: float, hours: tuple[float, float]
) -> tuple[Excursion, ...]:
    rng = _rng("excursion", seed, day)
    found: list[Excursion] = []
    for _ in range(_poisson(rng, rate)):
        start = day * _DAY_MS + int(rng.random() * _DAY_MS)
        length = int(rng.uniform(*hours) * _HOUR_MS)
        ramp = max(_MINUTE_MS, min(length // 4, _HOUR_MS))
        scale = rng.uniform(0.8, 1.25)
        kind: ExcursionKind = rng.choice(
            ("cooling_failure", "heating_failure", "dehumidifier_failure", "humidifier_failure")
        )
        delta_c, delta_rh = {
            "cooling_failure": (size_c, -size_rh / 3),
            "heating_failure": (-size_c, size_rh / 3),
            "dehumidifier_failure": (size_c / 8, size_rh),
            "humidifier_failure": (-size_c / 8, -size_rh),
        }[kind]
        found.append(Excursion(start, start + length, ramp, delta_c * scale, delta_rh * scale, kind))
    return tuple(sorted(found, key=lambda excursion: excursion.start_ms))


@dataclass(frozen=True, slots=True)
class RoomClimate:
    """Temperature and relative humidity of one room over time.

    Args:
        temperature_c: daily mean temperature (set-point).
        humidity_rh: daily mean relative humidity.
        daily_amplitude_c: half the day's temperature swing; the peak is at ``peak_hour`` local time.
        daily_amplitude_rh: half the day's RH swing; RH is lowest when the room is warmest.
        noise_c: standard deviation of the sensor noise on temperature.
        noise_rh: standard deviation of the sensor noise on RH.
        excursion_rate_per_day: mean number of HVAC faults per day (Poisson); 0 for none.
        excursion_c: size of a fault's temperature offset (°C, scaled 0.8-1.25 per fault).
        excursion_rh: size of a fault's RH offset (%RH, scaled the same way).
        excursion_hours: shortest and longest fault, in hours.
        peak_hour: local hour of the warmest moment of the day.
        timezone: IANA zone of the room (days and hours are local).
        seed: makes noise and faults reproducible; two seeds give two different rooms.
    """

    temperature_c: float = 19.0
    humidity_rh: float = 52.0
    daily_amplitude_c: float = 0.6
    daily_amplitude_rh: float = 1.5
    noise_c: float = 0.05
    noise_rh: float = 0.2
    excursion_rate_per_day: float = 0.05
    excursion_c: float = 6.0
    excursion_rh: float = 12.0
    excursion_hours: tuple[float, float] = (2.0, 5.0)
    peak_hour: float = 15.0
    timezone: str = "Asia/Shanghai"
    seed: int = 0
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        low, high = self.excursion_hours
        if not 0 < low <= high:
            raise ValueError(
                f"RoomClimate.excursion_hours must be 0 < low <= high, got {self.excursion_hours!r}"
            )
        if self.excursion_rate_per_day < 0:
            raise ValueError(
                f"RoomClimate.excursion_rate_per_day must be >= 0, got {self.excursion_rate_per_day!r}"
            )
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone))

    def _phase(self, ts_ms: int) -> float:
        local = from_ms(ts_ms).astimezone(self._zone)
        hour = local.hour + local.minute / 60 + local.second / 3600 + local.microsecond / 3.6e9
        return math.cos(2.0 * math.pi * (hour - self.peak_hour) / 24.0)

    def excursions(self, start_ms: int, end_ms: int) -> list[Excursion]:
        """The faults that overlap ``[start_ms, end_ms)``, in start order."""
        if self.excursion_rate_per_day == 0 or end_ms <= start_ms:
            return []
        longest_days = math.ceil(self.excursion_hours[1] * _HOUR_MS / _DAY_MS)
        found: list[Excursion] = []
        for day in range(start_ms // _DAY_MS - longest_days, (end_ms - 1) // _DAY_MS + 1):
            for excursion in _day_excursions(
                self.seed, day, self.excursion_rate_per_day, self.excursion_c, self.excursion_rh,
                tuple(self.excursion_hours),
            ):
                if excursion.start_ms < end_ms and excursion.end_ms > start_ms:
                    found.append(excursion)
        return found

    def _offsets(self, ts_ms: int) -> tuple[float, float]:
        delta_c = delta_rh = 0.0
        for excursion in self.excursions(ts_ms, ts_ms + 1):
            strength = excursion.strength(ts_ms)
            delta_c += excursion.delta_c * strength
            delta_rh += excursion.delta_rh * strength
        return delta_c, delta_rh

    def temperature(self, ts_ms: int) -> float:
        """Temperature in °C at ``ts_ms`` (UTC epoch ms), as a sensor would read it."""
        base = self.temperature_c + self.daily_amplitude_c * self._phase(ts_ms)
        return base + self._offsets(ts_ms)[0] + self.noise_c * _gauss("t", self.seed, ts_ms)

    def humidity(self, ts_ms: int) -> float:
        """Relative humidity in %RH at ``ts_ms``, clamped to 0..100."""
        base = self.humidity_rh - self.daily_amplitude_rh * self._phase(ts_ms)
        value = base + self._offsets(ts_ms)[1] + self.noise_rh * _gauss("rh", self.seed, ts_ms)
        return min(100.0, max(0.0, value))


PAPER_STORE = RoomClimate(temperature_c=19.0, humidity_rh=52.0, seed=1)
"""纸质档案库 paper store: about 19 °C / 52 %RH, small swings."""

FILM_MASTER_STORE = RoomClimate(
    temperature_c=14.0, humidity_rh=40.0, daily_amplitude_c=0.3, daily_amplitude_rh=1.0,
    excursion_c=3.0, excursion_rh=10.0, seed=2,
)
"""胶片库·母片 film-master store: about 14 °C / 40 %RH, tightly held."""

READING_ROOM = RoomClimate(
    temperature_c=22.0, humidity_rh=50.0, daily_amplitude_c=1.8, daily_amplitude_rh=5.0,
    noise_c=0.1, noise_rh=0.4, excursion_rate_per_day=0.1, seed=3,
)
"""阅览室 reading room: about 22 °C / 50 %RH, larger swings (people, daylight)."""


@dataclass(frozen=True, slots=True)
class DoorOpening:
    """One time the door stood open: ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class DoorSchedule:
    """When a store's door is open: a few short openings on working days, rarely at other times.

    Args:
        seed: makes the openings reproducible.
        timezone: IANA zone of the site.
        work_start: start of working hours (local).
        work_end: end of working hours (local).
        workdays: ISO weekdays with working hours (1 = Monday).
        openings_per_workday: mean openings in working hours on a working day (Poisson).
        offhours_openings_per_day: mean openings outside working hours per day.
        open_minutes: shortest and longest opening, in minutes.
    """

    seed: int = 0
    timezone: str = "Asia/Shanghai"
    work_start: time = time(8, 30)
    work_end: time = time(17, 30)
    workdays: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    openings_per_workday: float = 4.0
    offhours_openings_per_day: float = 0.03
    open_minutes: tuple[float, float] = (2.0, 10.0)

    def openings_on(self, day: datetime) -> tuple[DoorOpening, ...]:
        """The openings that start on the local calendar day of ``day`` (any aware datetime)."""
        zone = ZoneInfo(self.timezone)
        local_day = day.astimezone(zone).date()
        return _door_openings(self, local_day.toordinal(), zone)

    def openings(self, start_ms: int, end_ms: int) -> list[DoorOpening]:
        """The openings that overlap ``[start_ms, end_ms)``, in start order."""
        zone = ZoneInfo(self.timezone)
        first = from_ms(start_ms).astimezone(zone).date() - timedelta(days=1)
        last = from_ms(max(start_ms, end_ms - 1)).astimezone(zone).date()
        found: list[DoorOpening] = []
        for ordinal in range(first.toordinal(), last.toordinal() + 1):
            found.extend(
                o for o in _door_openings(self, ordinal, zone) if o.start_ms < end_ms and o.end_ms > start_ms
            )
        return found

    def is_open(self, ts_ms: int) -> bool:
        """True if the door is open at ``ts_ms``."""
        return bool(self.openings(ts_ms, ts_ms + 1))


@lru_cache(maxsize=1024)
def _door_openings(schedule: DoorSchedule, ordinal: int, zone: ZoneInfo) -> tuple[DoorOpening, ...]:
    day = datetime.fromordinal(ordinal).date()
    rng = _rng("door", schedule.seed, ordinal)
    midnight = datetime.combine(day, time(0), tzinfo=zone)
    work_from = datetime.combine(day, schedule.work_start, tzinfo=zone)
    work_to = datetime.combine(day, schedule.work_end, tzinfo=zone)
    day_ms = int(midnight.timestamp() * 1000)
    work_from_ms, work_to_ms = int(work_from.timestamp() * 1000), int(work_to.timestamp() * 1000)
    starts: list[int] = []
    if day.isoweekday() in schedule.workdays and work_to_ms > work_from_ms:
        count = _poisson(rng, schedule.openings_per_workday)
        starts += [rng.randrange(work_from_ms, work_to_ms) for _ in range(count)]
    for _ in range(_poisson(rng, schedule.offhours_openings_per_day)):
        start = day_ms + rng.randrange(_DAY_MS)
        if not work_from_ms <= start < work_to_ms or day.isoweekday() not in schedule.workdays:
            starts.append(start)
    openings = []
    for start in sorted(starts):
        length = int(rng.uniform(*schedule.open_minutes) * _MINUTE_MS)
        openings.append(DoorOpening(start, start + length))
    return tuple(openings)


@dataclass(frozen=True, slots=True)
class AlarmModel:
    """A smoke or water-leak detector: 0 always, except during an optional scripted alarm.

    Args:
        alarm_at_ms: when the scripted alarm starts (UTC epoch ms), or None for never.
        alarm_duration_s: how long it lasts.
    """

    alarm_at_ms: int | None = None
    alarm_duration_s: float = 120.0

    def value(self, ts_ms: int) -> int:
        """1 while the alarm is on, else 0."""
        if self.alarm_at_ms is None:
            return 0
        return int(self.alarm_at_ms <= ts_ms < self.alarm_at_ms + self.alarm_duration_s * 1000)


class SimClock:
    """Simulated time for sped-up simulations (tests): ``origin + (now - start) * speedup``, in UTC epoch ms.

    Args:
        speedup: how many simulated seconds pass per real second (1440 shows a day in a minute).
        origin_ms: the simulated time at start (default: the real time at start).
        real_clock: source of real time (epoch ms), injectable for tests.
    """

    def __init__(
        self, speedup: float = 1.0, *, origin_ms: int | None = None, real_clock: Callable[[], int] = now_ms
    ) -> None:
        if speedup <= 0:
            raise ValueError(f"SimClock.speedup must be > 0, got {speedup!r}")
        self.speedup = speedup
        self._real_clock = real_clock
        self.start_ms = real_clock()
        self.origin_ms = self.start_ms if origin_ms is None else origin_ms

    def __call__(self) -> int:
        """The current simulated time (UTC epoch ms)."""
        return self.origin_ms + round((self._real_clock() - self.start_ms) * self.speedup)


@dataclass(frozen=True)
class RoomModel:
    """Everything a room's sensors can read: climate, door, smoke and leak models.

    Args:
        climate: temperature and humidity.
        door: when the door is open.
        smoke: the smoke detector.
        leak: the water-leak detector.
    """

    climate: RoomClimate = PAPER_STORE
    door: DoorSchedule = field(default_factory=DoorSchedule)
    smoke: AlarmModel = field(default_factory=AlarmModel)
    leak: AlarmModel = field(default_factory=AlarmModel)

    def values(self, ts_ms: int) -> dict[str, float]:
        """Every quantity of the room at ``ts_ms``."""
        return {
            "temperature": self.climate.temperature(ts_ms),
            "humidity": self.climate.humidity(ts_ms),
            "door": float(self.door.is_open(ts_ms)),
            "smoke": float(self.smoke.value(ts_ms)),
            "leak": float(self.leak.value(ts_ms)),
        }
