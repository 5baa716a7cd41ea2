"""A room whose climate responds to its devices: moisture and heat balances, outdoor weather, door openings.

Unlike :mod:`devices.simulators.climate` (curves that depend only on time), :class:`RoomPhysics` has state
and moves it step by step, so a dehumidifier switched on pulls the relative humidity down and one left off
lets humid weather push it up:

- **Moisture**: the room's water is the vapour in its air plus what its hygroscopic contents (paper,
  boxes, shelving) hold, taken as ``buffer_g_per_rh`` grams per %RH (a store full of paper changes RH slowly:
  the air alone holds ~17 g per %RH in 100 m³). RH follows from the total and the temperature. Air exchange
  with outdoors (``ach`` per hour, more while the door is open) brings the outdoor vapour density in; a
  dehumidifier removes ``rate_g_h`` (scaled down at low RH, as compressor units lose capacity), a
  humidifier adds it, an air conditioner cooling condenses some.
- **Heat**: the temperature relaxes towards outdoors with the building's time constant; a running
  dehumidifier warms the room, an air conditioner cools it, a heater warms it.
- **Weather** (:class:`Weather`): a daily temperature cycle, outdoor RH moving the opposite way, wet days.

Everything is deterministic (seeded). Vapour densities come from :func:`archmon.climate.absolute_humidity`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from archmon.climate import absolute_humidity
from devices.simulators.climate import DoorSchedule

__all__ = ["HUMID_WEEK", "DeviceKind", "RoomDevice", "RoomPhysics", "RoomShape", "Weather"]

DeviceKind = Literal["dehumidifier", "humidifier", "cooler", "heater"]
_HOUR_S = 3600.0


def _saturation_g_m3(temperature_c: float) -> float:
    value = absolute_humidity(max(-40.0, min(85.0, temperature_c)), 100.0)
    assert value is not None
    return value


@dataclass(frozen=True, slots=True)
class Weather:
    """Outdoor conditions.

    Attributes:
        mean_c, swing_c: daily mean temperature and half its daily range (warmest at 15:00 local time).
        mean_rh, swing_rh: daily mean RH and half its range (most humid at dawn).
        wet_days: share of days with rain (RH ``wet_rh`` all day).
        wet_rh: RH of a wet day.
        seed: which days are wet.
        timezone: the site's zone (the daily cycle is in local time).
    """

    mean_c: float = 28.0
    swing_c: float = 4.0
    mean_rh: float = 82.0
    swing_rh: float = 10.0
    wet_days: float = 0.3
    wet_rh: float = 95.0
    seed: int = 0
    timezone: str = "Asia/Shanghai"

    def at(self, ts_ms: int) -> tuple[float, float]:
        """``(temperature ℃, RH %)`` outdoors at ``ts_ms``."""
        local = datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(self.timezone))
        hour = local.hour + local.minute / 60 + local.second / 3600
        phase = math.cos(2 * math.pi * (hour - 15) / 24)
        temperature = self.mean_c + self.swing_c * phase
        wet = random.Random(f"wet-{self.seed}-{local.date().toordinal()}").random() < self.wet_days
        rh = self.wet_rh if wet else self.mean_rh - self.swing_rh * phase
        return temperature, max(1.0, min(100.0, rh))


HUMID_WEEK = Weather()
"""A humid early-summer week in South China (梅雨): 24–32 ℃, RH 72–92 %, a third of the days rain."""


@dataclass(frozen=True, slots=True)
class RoomDevice:
    """A device in the room and how strongly it acts.

    Attributes:
        kind: what it does.
        rate_g_h: dehumidifier/humidifier: water moved per hour at 60 %RH; cooler: water condensed.
        heat_k_h: how fast it would change the room's temperature (K per hour; negative cools).
    """

    kind: DeviceKind
    rate_g_h: float = 0.0
    heat_k_h: float = 0.0


@dataclass(frozen=True, slots=True)
class RoomShape:
    """The room's size and fabric.

    Attributes:
        volume_m3: air volume.
        ach: air changes per hour with the door shut (infiltration).
        door_ach: air changes per hour while the door stands open.
        buffer_g_per_rh: water the contents take up or give off per %RH.
        time_constant_h: how fast the temperature follows outdoors.
    """

    volume_m3: float = 100.0
    ach: float = 0.3
    door_ach: float = 4.0
    buffer_g_per_rh: float = 400.0
    time_constant_h: float = 10.0


@dataclass
class RoomPhysics:
    """One room's state and how it moves (see the module docstring).

    Args:
        start_ms: the simulated time of the initial state.
        temperature_c, rh: the initial state.
        shape: the room.
        weather: outdoors.
        devices: device name -> what it does.
        switches: device name -> whether it is running now (read at every step: a simulated plug's relay).
        door: when the door is open (None: never).
        vent: extra air changes per hour at a time (a window or door left open, a scripted humid spell;
            None: none).
        noise_rh, noise_c: sensor noise (standard deviation) added by :meth:`reading`.
        seed: the noise.
    """

    start_ms: int
    temperature_c: float = 22.0
    rh: float = 52.0
    shape: RoomShape = field(default_factory=RoomShape)
    weather: Weather = HUMID_WEEK
    devices: Mapping[str, RoomDevice] = field(default_factory=dict)
    switches: Mapping[str, Callable[[], bool]] = field(default_factory=dict)
    door: DoorSchedule | None = None
    vent: Callable[[int], float] | None = None
    noise_rh: float = 0.15
    noise_c: float = 0.05
    seed: int = 0
    now_ms: int = field(init=False)
    run_s: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.now_ms = self.start_ms
        self.run_s = dict.fromkeys(self.devices, 0.0)
        self._rng = random.Random(f"room-{self.seed}")
        self._water_g = self._water_at(self.temperature_c, self.rh)

    def _capacity(self, temperature_c: float) -> float:
        """Grams of water per %RH at this temperature: the air's share plus the contents'."""
        return self.shape.volume_m3 * _saturation_g_m3(temperature_c) / 100 + self.shape.buffer_g_per_rh

    def _water_at(self, temperature_c: float, rh: float) -> float:
        return rh * self._capacity(temperature_c)

    def step_to(self, ts_ms: int, *, max_step_s: float = 60.0) -> None:
        """Move the room to ``ts_ms`` in steps of at most ``max_step_s`` (devices read at each step)."""
        while self.now_ms < ts_ms:
            dt_s = min(max_step_s, (ts_ms - self.now_ms) / 1000)
            self._step(dt_s)
            self.now_ms = min(ts_ms, self.now_ms + int(dt_s * 1000))

    def _step(self, dt_s: float) -> None:
        shape, hours = self.shape, dt_s / _HOUR_S
        out_c, out_rh = self.weather.at(self.now_ms)
        ach = shape.ach + (shape.door_ach if self.door is not None and self.door.is_open(self.now_ms) else 0.0)
        if self.vent is not None:
            ach += max(0.0, self.vent(self.now_ms))
        indoor_vapour = self.rh / 100 * _saturation_g_m3(self.temperature_c)
        outdoor_vapour = out_rh / 100 * _saturation_g_m3(out_c)
        water = self._water_g + ach * shape.volume_m3 * (outdoor_vapour - indoor_vapour) * hours
        heat = (out_c - self.temperature_c) * (1 - math.exp(-hours / shape.time_constant_h))
        for name, device in self.devices.items():
            switch = self.switches.get(name)
            if switch is None or not switch():
                continue
            self.run_s[name] += dt_s
            capacity = max(0.0, min(1.3, (self.rh - 30.0) / 30.0))  # compressor units weaken at low RH
            if device.kind in ("dehumidifier", "cooler"):
                water -= device.rate_g_h * capacity * hours
            elif device.kind == "humidifier":
                water += device.rate_g_h * max(0.0, (100.0 - self.rh) / 40.0) * hours
            heat += device.heat_k_h * hours
        self.temperature_c += heat
        self.rh = max(1.0, min(100.0, water / self._capacity(self.temperature_c)))
        self._water_g = self.rh * self._capacity(self.temperature_c)

    def reading(self) -> tuple[float, float]:
        """``(temperature ℃, RH %)`` as a sensor would report them now (noise, 0.1 resolution)."""
        temperature = round(self.temperature_c + self._rng.gauss(0, self.noise_c), 1)
        rh = round(max(0.0, min(100.0, self.rh + self._rng.gauss(0, self.noise_rh))), 1)
        return temperature, rh
