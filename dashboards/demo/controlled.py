"""The demo's controlled room: a basement store whose dehumidifier archmon switches through a Tasmota plug.

地下档案库 (``annex``, paper profile, 45–60 %RH) sits in damp ground: outdoor air at 80–93 %RH seeps in and,
left alone, would take the room to 80 %RH. A small dehumidifier on a Tasmota smart plug keeps it dry: the
loop (``[[actuators]] annex-dehum``) switches it on above 53 %RH and off below 52 %RH, never for less than
10 minutes on or 5 minutes off. The room is a :class:`~devices.simulators.room_physics.RoomPhysics`
(moisture and heat balances, outdoor weather), so its humidity is what the dehumidifier makes of it, in
the history as live:

- **History** (:class:`ControlledHistory`): 30 days simulated minute by minute with archmon's own
  :class:`~alerts.control.ClimateController`, its decisions, switch log and audit trail written to the
  demo's database at their simulated times (the plug answers in-process: 8,640 commands and questions over
  a broker would take minutes). 35 minutes before the end the keeper 张伟 takes the dehumidifier out of
  automatic control for a filter change (an override "off" for up to an hour) and leaves the door ajar: RH
  rises above the start set-point.
- **Live** (:class:`LiveControlledRoom`): the same room goes on in real time from the history's state; the
  plug is a simulated Tasmota plug on the demo's broker, switched by the running service's controller. At
  +10 s the keeper is done and ends the override (as ``archmon control auto`` does): the loop switches the
  dehumidifier on within seconds and RH falls;
  a scripted humid spell later (``humid_spell``, +45 min) makes it switch on again.

The sizes keep an ordinary day inside every limit (24 h range about 3 %RH, no fast swing): only the scripted
events of the other rooms raise alerts.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from alerts.control import ClimateController, ControlRecords, load_plans
from archmon.config import Config
from archmon.domain import Reading
from archmon.timeutil import now_ms
from collector.backfill import HistoricalReading
from devices.actuators import SwitchReport
from devices.simulators.room_physics import RoomDevice, RoomPhysics, RoomShape, Weather

__all__ = ["ACTUATOR", "BACK_S", "CONFIG", "LIVE_SPELL_S", "PLUG_TOPIC", "ROOM", "SENSOR", "SENSOR_NAME",
           "ControlledHistory", "HumidSpell", "LiveControlledRoom", "controlled_room"]

ROOM = "annex"
SENSOR = "annex-th"
SENSOR_NAME = "annex_th"  # its Zigbee2MQTT friendly name
ACTUATOR = "annex-dehum"
PLUG_TOPIC = "annex-dehum"
OFFSET_S = 47  # seconds after each 5-minute mark the sensor reports at in the history
STEP_S = 300
BATTERY = 97
MAINTENANCE_MIN = 35
OVERRIDE_HOLD_MS = 3_600_000  # the filter change's override, unless the keeper ends it before (the live part does)
BACK_S = 10
"""When, after the live start, the keeper ends the filter change's override (``archmon control auto``)."""
LIVE_SPELL_S = 45 * 60
"""When, after the live start, the scripted humid spell comes."""
_MINUTE = 60_000

CONFIG = """
[[rooms]]
id = "annex"
name_zh = "地下档案库"
name_en = "Basement records store"
profile = "paper"

[[sensors]]
id = "annex-th"
room = "annex"
source = "demo-broker"
topic = "zigbee2mqtt/annex_th"
format = "zigbee2mqtt"
expected_interval_s = {expected}
[sensors.calibration.temperature]
calibrated_on = "{annex_calibrated}"
certificate = "JL-DEMO-0104"

# the dehumidifier on a Tasmota plug: on above 53 %RH, off below 52 %RH (see docs/control.md)
[[actuators]]
id = "annex-dehum"
room = "annex"
name_zh = "去湿机"
name_en = "Dehumidifier"
kind = "tasmota"
source = "demo-broker"
topic = "annex-dehum"
controls = "humidity_down"
sensors = ["annex-th"]
start_at = 53
stop_at = 52
min_on_s = 600
min_off_s = 300
"""
"""The controlled room's part of the demo configuration (``{expected}``: the sensors' expected interval,
``{annex_calibrated}``: its sensor's calibration date)."""

WEATHER = Weather(mean_c=19.0, swing_c=2.0, mean_rh=80.0, swing_rh=6.0, wet_days=0.35, wet_rh=93.0, seed=7)
SHAPE = RoomShape(volume_m3=30.0, ach=0.3, door_ach=0.0, buffer_g_per_rh=60.0, time_constant_h=24.0)
DEHUMIDIFIER = RoomDevice("dehumidifier", rate_g_h=240.0, heat_k_h=0.3)


class HumidSpell(NamedTuple):
    """Outdoor air let in: ``ach`` extra air changes per hour during ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int
    ach: float


def _vent(spells: Sequence[HumidSpell]) -> Callable[[int], float]:
    def extra(ts_ms: int) -> float:
        return sum(spell.ach for spell in spells if spell.start_ms <= ts_ms < spell.end_ms)

    return extra


def controlled_room(start_ms: int, switch: Callable[[], bool], spells: Sequence[HumidSpell] = (), *,
                    timezone: str = "Asia/Shanghai") -> RoomPhysics:
    """The room at ``start_ms`` (19 ℃, 52.5 %RH), its dehumidifier running while ``switch()`` is true."""
    return RoomPhysics(start_ms, temperature_c=19.0, rh=52.5, shape=SHAPE,
                       weather=dataclasses.replace(WEATHER, timezone=timezone),
                       devices={ACTUATOR: DEHUMIDIFIER}, switches={ACTUATOR: switch}, vent=_vent(spells),
                       noise_rh=0.08, noise_c=0.03, seed=31)


class _DirectLink:
    """The history's plug: obeys at once; its reports are handed to the controller after each tick."""

    def __init__(self) -> None:
        self.on = False
        self.reports: list[bool] = []

    def send(self, actuator: str, on: bool, *, auto_off_s: int | None) -> None:
        self.on = on
        self.reports.append(on)

    def ask(self, actuator: str) -> bool:
        self.reports.append(self.on)
        return True


class ControlledHistory:
    """The controlled room's 30 days, simulated with archmon's controller (see the module docstring).

    Args:
        config: the demo configuration (its ``annex-dehum`` actuator).
        db_path: the demo's database (the switch log, the override and the audit trail go there).
        start_ms, end_ms: the history.
        keeper: who takes the dehumidifier out of automatic control at the end.
    """

    def __init__(self, config: Config, db_path: object, start_ms: int, end_ms: int, *, keeper: str = "张伟") -> None:
        self.start_ms, self.end_ms, self.keeper = start_ms, end_ms, keeper
        self.now = start_ms
        self.link = _DirectLink()
        self.records = ControlRecords(str(db_path), durable=False)  # generated history: no fsync per switch
        plans = [plan for plan in load_plans(config) if plan.id == ACTUATOR]
        self.controller = ClimateController(plans, {ACTUATOR: self.link}, records=self.records,
                                            clock=lambda: self.now)
        self.maintenance_ms = end_ms - MAINTENANCE_MIN * _MINUTE
        self.room = controlled_room(start_ms, lambda: self.link.on,
                                    [HumidSpell(self.maintenance_ms, end_ms + 10 * _MINUTE, 1.7)],
                                    timezone=config.site.timezone)

    def _deliver(self) -> None:
        reports, self.link.reports = self.link.reports, []
        for on in reports:
            self.controller.on_device(ACTUATOR, SwitchReport(on, "stat/POWER"))

    def readings(self) -> Iterator[HistoricalReading]:
        """The sensor's readings in time order, simulating as they are taken (a generator: the backfill pulls
        it beside the other sensors', so the control records are written in step with the judged alerts)."""
        self.controller.start()
        self._deliver()
        step = STEP_S * 1000
        first = (self.start_ms // step + 1) * step + OFFSET_S * 1000
        overridden = False
        last_battery = None
        try:
            for ts in range(first, self.end_ms, step):
                if not overridden and ts >= self.maintenance_ms:
                    overridden = True
                    self.records.set_override(ACTUATOR, False, ts, ts + OVERRIDE_HOLD_MS, self.keeper,
                                              "更换滤网、倒空水箱 / filter change, tank emptied")
                self.room.step_to(ts, max_step_s=150.0)
                temperature, humidity = self.room.reading()
                self.now = ts
                self.controller.on_readings([Reading(SENSOR, "humidity", humidity, ts, ROOM)])
                self.controller.tick(ts)
                self._deliver()
                yield HistoricalReading(SENSOR, "temperature", ts, temperature)
                yield HistoricalReading(SENSOR, "humidity", ts, humidity)
                if last_battery is None or ts - last_battery >= 3_600_000:
                    last_battery = ts
                    yield HistoricalReading(SENSOR, "battery", ts, float(BATTERY))
            self.room.step_to(self.end_ms)
        finally:
            self.records.close()

    @property
    def plug_on(self) -> bool:
        """The plug's relay at the end of the history."""
        return self.link.on

    @staticmethod
    def count(start_ms: int, end_ms: int) -> int:
        """About how many readings :meth:`readings` gives."""
        return 2 * (end_ms - start_ms) // (STEP_S * 1000) + (end_ms - start_ms) // 3_600_000


class LiveControlledRoom:
    """The room going on in real time from the history's state, its dehumidifier on the live plug.

    Args:
        room: the room as the history left it.
        switch: whether the live plug's relay is on.
        start_ms: the live start (the door is shut :data:`BACK_S` after it, the scripted humid spell comes
            :data:`LIVE_SPELL_S` after it).
    """

    def __init__(self, room: RoomPhysics, switch: Callable[[], bool], start_ms: int) -> None:
        spell = start_ms + LIVE_SPELL_S * 1000
        room.switches = {ACTUATOR: switch}
        room.vent = _vent([HumidSpell(room.now_ms, start_ms + BACK_S * 1000, 1.7),
                           HumidSpell(spell, spell + 30 * _MINUTE, 2.5)])
        self.room = room
        self._lock = threading.Lock()

    def values(self, ts_ms: int | None = None) -> dict[str, float]:
        """What the room's sensor reads now (the room moved on to then first)."""
        with self._lock:
            self.room.step_to(max(self.room.now_ms, now_ms() if ts_ms is None else ts_ms), max_step_s=30.0)
            temperature, humidity = self.room.reading()
        return {"temperature": temperature, "humidity": humidity, "door": 0.0, "smoke": 0.0, "leak": 0.0}
