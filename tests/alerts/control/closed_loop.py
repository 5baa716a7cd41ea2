"""A paper store under climate control, closed over real parts, in simulated time.

The room (:class:`devices.simulators.room_physics.RoomPhysics`) has three devices: a dehumidifier on a
Zigbee plug and an air conditioner on a Tasmota plug (simulated plugs on a real Mosquitto broker), and a
second dehumidifier on relay 1 of a Modbus RTU relay module (simulated, on a pseudo-terminal). Two
temperature/humidity sensors report every simulated minute; the controller decides, its commands go over
the broker and the serial line, the plugs and the module switch, report back, and the room's physics
follows their relays. Time only moves by :meth:`ClosedLoopRoom.step`; after each step the harness waits
(real time, bounded) until every command and question has its answer, so no deadline passes in
simulated time while the broker is still carrying a reply.

Used by ``tests/alerts/control/test_closed_loop.py`` and ``bench/bench_control.py``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.control import ClimateController, ControlRecords, ControlRuntime, build_runtime
from alerts.engine import AlertEngine
from alerts.rules.actuator import ActuatorRule
from alerts.store import AlertStore
from archmon.config import Config, parse_config
from archmon.domain import Reading
from devices.simulators.climate import DoorSchedule
from devices.simulators.modbus_relay import ModbusRelayModule
from devices.simulators.plugs import PlugFleet, Switch, TasmotaPlug, Zigbee2MqttPlug
from devices.simulators.room_physics import HUMID_WEEK, RoomDevice, RoomPhysics, Weather

__all__ = ["T0", "ClosedLoopRoom", "WeekResult", "room_config"]

T0 = 1_719_792_000_000  # 2024-07-01T08:00:00+08:00, a Monday
MINUTE_MS = 60_000
MIN_ON_S = {"dehum1": 600, "ac1": 600, "dehum2": 600}
MIN_OFF_S = {"dehum1": 300, "ac1": 600, "dehum2": 300}
DEVICES = {
    "dehum1": RoomDevice("dehumidifier", rate_g_h=900, heat_k_h=0.3),
    "ac1": RoomDevice("cooler", rate_g_h=250, heat_k_h=-2.0),
    "dehum2": RoomDevice("dehumidifier", rate_g_h=900, heat_k_h=0.3),
}


def room_config(folder: Path, *, host: str, port: int, relay_port: str, overrides: dict[str, Any] | None = None,
                enabled: bool = True) -> Config:
    """The site: one paper store (45–60 %RH, 14–24 ℃), two sensors, three actuators; also written to
    ``folder/archmon.toml`` (for the CLI)."""
    common = {"room": "A1", "sensors": ["th1", "th2"], "poll_interval_s": 1800, "confirm_timeout_s": 10,
              "retries": 2, "enabled": enabled}
    actuators = [
        {"id": "dehum1", "name_zh": "去湿机 1", "kind": "zigbee2mqtt", "source": "broker",
         "topic": "zigbee2mqtt/plug-dehum1", "controls": "humidity_down", "start_at": 55, "stop_at": 50,
         "min_on_s": MIN_ON_S["dehum1"], "min_off_s": MIN_OFF_S["dehum1"], "auto_off_s": 1800, **common},
        {"id": "ac1", "name_zh": "空调", "kind": "tasmota", "source": "broker", "topic": "plug-ac1",
         "controls": "temperature_down", "start_at": 22, "stop_at": 20, "min_on_s": MIN_ON_S["ac1"],
         "min_off_s": MIN_OFF_S["ac1"], "max_run_s": 8 * 3600, "auto_off_s": 1800, **common},
        {"id": "dehum2", "name_zh": "去湿机 2", "kind": "modbus", "device": relay_port, "address": 1, "coil": 0,
         "timeout_s": 0.3, "controls": "humidity_down", "start_at": 57.5, "stop_at": 52,
         "min_on_s": MIN_ON_S["dehum2"], "min_off_s": MIN_OFF_S["dehum2"], **common},
    ]
    for table in actuators:
        table.update((overrides or {}).get(table["id"], {}))
    data = {
        "site": {"name": "closed-loop", "timezone": "Asia/Shanghai"},
        "storage": {"sqlite_path": str(folder / "archmon.db")},
        "rooms": [{"id": "A1", "name_zh": "一号库房", "profile": "paper"}],
        "mqtt": [{"id": "broker", "host": host, "port": port}],
        "sensors": [{"id": sensor, "room": "A1", "source": "broker", "topic": f"zigbee2mqtt/{sensor}",
                     "format": "zigbee2mqtt", "expected_interval_s": 60} for sensor in ("th1", "th2")],
        "actuators": actuators,
    }
    path = folder / "archmon.toml"
    path.write_text(_toml(data), encoding="utf-8")
    return parse_config(data, source=str(path), path=path)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _toml(data: dict[str, Any]) -> str:
    """The few TOML shapes a site file needs: tables of scalars and arrays of such tables."""
    lines: list[str] = []
    for key, value in data.items():
        rows = value if isinstance(value, list) else [value]
        for row in rows:
            lines.append(f"[[{key}]]" if isinstance(value, list) else f"[{key}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in row.items() if v is not None]
            lines.append("")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class WeekResult:
    """What a run showed.

    Attributes:
        minutes: simulated minutes.
        rh_in_band, t_in_band: share of minutes the room's true RH was within 45–60 % / temperature 14–24 ℃.
        rh_min, rh_max: the room's true RH range.
        switches: relay changes per device.
        shortest_on_s, shortest_off_s: per device, the shortest on and off spell (inf: none).
        run_hours: per device.
    """

    minutes: int
    rh_in_band: float
    t_in_band: float
    rh_min: float
    rh_max: float
    switches: dict[str, int]
    shortest_on_s: dict[str, float]
    shortest_off_s: dict[str, float]
    run_hours: dict[str, float]


def _spells(history: list[Switch]) -> tuple[float, float]:
    """Shortest complete on and off spells in a switch history (between two recorded switches; the spell
    before the first switch began before the run and the one after the last is not over)."""
    shortest = {True: float("inf"), False: float("inf")}
    for before, after in itertools.pairwise(history):
        shortest[before.on] = min(shortest[before.on], (after.ts_ms - before.ts_ms) / 1000)
    return shortest[True], shortest[False]


class ClosedLoopRoom:
    """The room, its devices, the broker's plugs, the relay module and archmon's controller.

    Args:
        folder: where the database goes.
        host, port: the Mosquitto broker.
        relay_port: the pty end archmon opens; module_port: the end the relay module serves.
        control: False runs the same room with every actuator disabled (the baseline).
        weather: outdoors.
        overrides: per actuator id, table keys to change.
        judge: also run the alert engine on the readings and the actuator rule (slower).
        start_ms: the simulated start (the CLI stamps overrides with the real clock: start there to use it).
        rh: the room's RH at the start.
    """

    def __init__(self, folder: Path, *, host: str, port: int, relay_port: str, module_port: str,
                 control: bool = True, weather: Weather = HUMID_WEEK,
                 overrides: dict[str, dict[str, Any]] | None = None, judge: bool = True, start_ms: int = T0,
                 rh: float = 52.0) -> None:
        self.start_ms = self.now = start_ms
        self.config = room_config(folder, host=host, port=port, relay_port=relay_port, overrides=overrides,
                                  enabled=control)
        self.zigbee = Zigbee2MqttPlug(self.clock, topic="zigbee2mqtt/plug-dehum1")
        self.tasmota = TasmotaPlug(self.clock, topic="plug-ac1", power_w=900)
        self.fleet = PlugFleet(host, port, [self.zigbee, self.tasmota], client_id="sim-plugs-closed-loop")
        self.relay = ModbusRelayModule(module_port, self.clock)
        switches = {"dehum1": lambda: self.zigbee.on, "ac1": lambda: self.tasmota.on,
                    "dehum2": lambda: self.relay.is_on(0)}
        self.room = RoomPhysics(start_ms, rh=rh, devices=dict(DEVICES), weather=weather, door=DoorSchedule(seed=1),
                                switches=switches)
        db = self.config.storage.sqlite_path
        self.records = ControlRecords(db)
        self.alerts = AlertStore(db)
        self.engine = AlertEngine(self.config, self.alerts)
        self.runtime: ControlRuntime | None = None
        self.judge = judge
        self.unanswered_steps = 0

    def clock(self) -> int:
        """The simulated time."""
        return self.now

    @property
    def controller(self) -> ClimateController:
        """archmon's controller (after :meth:`start`)."""
        assert self.runtime is not None
        return self.runtime.controller

    def start(self, *, plugs: bool = True) -> ClosedLoopRoom:
        """Start the devices, then archmon's controller (which reads their states back)."""
        if plugs:
            self.fleet.start()
            self.relay.start()
        self.start_archmon()
        return self

    def start_archmon(self) -> None:
        """(Re)start archmon's side: a new controller reading every device's state back, as after a restart."""
        self.runtime = build_runtime(self.config, records=self.records, clock=self.clock, maintenance=self.alerts)
        for rule in self.engine.rules:
            if isinstance(rule, ActuatorRule):
                rule.attach(self.controller)
        self.runtime.start()
        self.controller.wait_idle(10)

    def kill_archmon(self) -> None:
        """archmon gone (``kill -9``): its links drop, nothing is switched off on the way."""
        assert self.runtime is not None
        self.runtime.stop()
        self.runtime = None

    def stop(self) -> None:
        """Stop everything this harness started."""
        if self.runtime is not None:
            self.runtime.stop()
        self.fleet.stop()
        self.relay.stop()
        self.records.close()
        self.alerts.close()

    def step(self, minutes: int = 1, *, wait_s: float = 10.0, sensors: bool = True) -> list[Reading]:
        """Move simulated time on by ``minutes``: the room, the plugs' timers, the sensors' readings (none
        with ``sensors=False``: they went silent), the controller and the alert engine; then wait for every
        answer (at most ``wait_s``: a device that does not answer is counted in ``unanswered_steps``)."""
        self.now += minutes * MINUTE_MS
        self.room.step_to(self.now)
        self.fleet.tick(self.now)
        temperature, rh = self.room.reading()
        readings = [Reading(sensor, quantity, value + offset, self.now, "A1")
                    for sensor, offset in (("th1", 0.0), ("th2", -0.3))
                    for quantity, value in (("temperature", temperature), ("humidity", rh))] if sensors else []
        if self.runtime is not None:
            self.controller.on_readings(readings)
            self.controller.tick(self.now)
            if wait_s and not self.controller.wait_idle(wait_s):
                self.unanswered_steps += 1
        if self.judge:
            self.engine.feed_many(readings)
            self.engine.advance(self.now)
        return readings

    def histories(self) -> dict[str, list[Switch]]:
        """Each device's relay changes, as the devices themselves recorded them."""
        return {"dehum1": self.zigbee.history, "ac1": self.tasmota.history, "dehum2": self.relay.history[0]}

    def until(self, condition: Callable[[], bool], *, limit_min: int, **step: Any) -> int:
        """Step minute by minute until ``condition`` holds; the minutes it took.

        Raises:
            AssertionError: not within ``limit_min`` simulated minutes.
        """
        for minute in range(1, limit_min + 1):
            self.step(**step)
            if condition():
                return minute
        raise AssertionError(f"not within {limit_min} simulated minutes")

    def run(self, minutes: int) -> WeekResult:
        """Run ``minutes`` of simulated time, one minute a step; the room's figures over them."""
        inside = t_inside = 0
        rh_min, rh_max = 100.0, 0.0
        for _ in range(minutes):
            self.step()
            rh, temperature = self.room.rh, self.room.temperature_c
            inside += 45.0 <= rh <= 60.0
            t_inside += 14.0 <= temperature <= 24.0
            rh_min, rh_max = min(rh_min, rh), max(rh_max, rh)
        histories = self.histories()
        spells = {name: _spells(history) for name, history in histories.items()}
        return WeekResult(
            minutes=minutes, rh_in_band=inside / minutes, t_in_band=t_inside / minutes, rh_min=rh_min, rh_max=rh_max,
            switches={name: len(history) for name, history in histories.items()},
            shortest_on_s={name: spell[0] for name, spell in spells.items()},
            shortest_off_s={name: spell[1] for name, spell in spells.items()},
            run_hours={name: round(seconds / 3600, 2) for name, seconds in self.room.run_s.items()})
