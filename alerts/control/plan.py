"""From the ``[[actuators]]`` tables to validated plans: set-points inside the room's band, sensors that exist
in that room and measure the quantity, a source that can carry the commands.

:func:`control_problems` is what ``archmon check-config`` reports (one line per problem, naming
``actuators[i] (id).key`` and the bad value); :func:`load_plans` what the service builds from (it raises
the same problems).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pydantic

from alerts.control.driver import DriverTiming
from alerts.control.loop import LoopSettings
from alerts.control.settings import ActuatorConfig
from alerts.notify.settings import TimeRange
from alerts.profiles import Band
from alerts.settings import stale_after_ms, stale_settings
from alerts.site import load_settings, room_profiles
from archmon.config import Config, SensorConfig
from archmon.config_problems import validation_problems
from archmon.errors import ConfigError
from devices.actuators import (
    MQTT_SWITCHES,
    EsphomeSwitch,
    ModbusCoil,
    MqttSwitch,
    ShellySwitch,
    TasmotaSwitch,
    Zigbee2MqttSwitch,
)

__all__ = ["ActuatorPlan", "FollowedSensor", "control_problems", "default_setpoints", "load_plans"]

MEASURES: dict[str, frozenset[str]] = {
    "humidity": frozenset({"temperature_humidity", "humidity", "multi"}),
    "temperature": frozenset({"temperature_humidity", "temperature", "multi"}),
}
UNITS = {"humidity": "%RH", "temperature": "℃"}


@dataclass(frozen=True, slots=True)
class FollowedSensor:
    """A sensor a loop follows and how long it may stay silent before it is stale."""

    id: str
    stale_after_ms: int


@dataclass(frozen=True, slots=True)
class ActuatorPlan:
    """One actuator, resolved.

    Attributes:
        config: the table as validated.
        where: its key path (``actuators[0] (dehum1)``).
        loop: the loop's settings (set-points resolved inside the band).
        sensors: the sensors followed.
        switch: how it is switched (an MQTT switch format or a Modbus coil).
        timing: the driver's timeouts and intervals.
        band: the room's band of the quantity (for the record and the dashboard).
    """

    config: ActuatorConfig
    where: str
    loop: LoopSettings
    sensors: tuple[FollowedSensor, ...]
    switch: MqttSwitch | ModbusCoil
    timing: DriverTiming
    band: Band

    @property
    def id(self) -> str:
        """The actuator's id."""
        return self.config.id


def default_setpoints(band: Band, lowers: bool) -> tuple[float, float] | None:
    """``(start_at, stop_at)`` inside a band when the table gives none: a device that lowers the value starts
    a third below the upper limit and stops two thirds below it (paper, 45–60 %RH: 55/50); one that raises
    it starts a sixth above the lower limit and stops a third above it (47.5/50), so a dehumidifier and a
    humidifier in one room never run together. None when the band lacks a limit."""
    if band.low is None or band.high is None:
        return None
    span = band.high - band.low
    if lowers:
        return round(band.high - span / 3, 2), round(band.high - 2 * span / 3, 2)
    return round(band.low + span / 6, 2), round(band.low + span / 3, 2)


def control_problems(config: Config) -> list[str]:
    """Every problem of the ``[[actuators]]`` tables, one line each (empty: fine)."""
    _, problems = _resolve(config)
    return problems


def load_plans(config: Config, *, disabled: bool = False) -> list[ActuatorPlan]:
    """The enabled actuators' plans (``disabled=True``: every table's, for reports on a past period in which a
    device now disabled may have run).

    Raises:
        ConfigError: one line per problem (as :func:`control_problems`).
    """
    plans, problems = _resolve(config)
    if problems:
        raise ConfigError(problems)
    return [plan for plan in plans if disabled or plan.config.enabled]


def _resolve(config: Config) -> tuple[list[ActuatorPlan], list[str]]:
    problems: list[str] = []
    tables: list[tuple[str, ActuatorConfig]] = []
    for index, data in enumerate(config.actuators):
        ident = data.get("id") if isinstance(data, dict) else None
        where = f"actuators[{index}]" + (f" ({ident})" if isinstance(ident, str) else "")
        try:
            tables.append((where, ActuatorConfig.model_validate(data)))
        except pydantic.ValidationError as exc:
            problems += [p.removeprefix("<config>: ")
                         for p in validation_problems(exc, data, source="<config>", prefix=where)]
    if not tables:
        return [], problems
    try:
        profiles = room_profiles(config, load_settings(config))
        stale = stale_settings(config)
    except (ConfigError, pydantic.ValidationError):
        return [], problems  # the alert checks report these
    sensors = {sensor.id: sensor for sensor in config.sensors}
    sources = _source_kinds(config)
    serial_ports = _polled_ports(config)
    seen: dict[str, str] = {}
    outputs: dict[tuple[Any, ...], str] = {}
    plans: list[ActuatorPlan] = []
    for where, table in tables:
        before = len(problems)
        if table.id in seen:
            problems.append(f"{where}.id: duplicate actuator id {table.id!r} (also {seen[table.id]})")
        seen.setdefault(table.id, where)
        profile = profiles.get(table.room)
        if profile is None:
            problems.append(f"{where}.room: unknown room {table.room!r}; known: {sorted(profiles)}")
            continue
        band = profile.band(table.quantity) or Band()
        setpoints = _setpoints(where, table, band, profile.id, problems)
        followed = _followed(where, table, sensors, stale, problems)
        ranges = _hours(where, table, problems)
        switch = _switch(where, table, sources, serial_ports, config.site.name, problems)
        output = _output_key(table)
        if output in outputs and table.enabled:
            problems.append(f"{where}: switches the same output as {outputs[output]}")
        if table.enabled:
            outputs.setdefault(output, where)
        if len(problems) > before or setpoints is None or switch is None:
            continue
        loop = LoopSettings(
            lowers=table.lowers, start_at=setpoints[0], stop_at=setpoints[1],
            min_on_ms=int(table.min_on_s * 1000), min_off_ms=int(table.min_off_s * 1000),
            max_run_ms=int(table.max_run_s * 1000), rest_ms=int(table.rest_s * 1000), allowed=tuple(ranges),
            safe_on=table.safe_state == "on", tz=ZoneInfo(config.site.timezone))
        timing = DriverTiming(confirm_ms=int(table.confirm_timeout_s * 1000), retries=table.retries,
                              poll_ms=int(table.poll_interval_s * 1000), probe_ms=int(table.probe_interval_s * 1000),
                              auto_off_s=table.auto_off_s)
        plans.append(ActuatorPlan(table, where, loop, tuple(followed), switch, timing, band))
    problems += _fighting(plans)
    return plans, problems


def _setpoints(where: str, table: ActuatorConfig, band: Band, profile: str,
               problems: list[str]) -> tuple[float, float] | None:
    unit = UNITS[table.quantity]
    if table.start_at is None or table.stop_at is None:
        defaults = default_setpoints(band, table.lowers)
        if defaults is None:
            problems.append(f"{where}.start_at: the {profile} band has no {table.quantity} limits to place default "
                            f"set-points in: give start_at and stop_at")
            return None
        start = table.start_at if table.start_at is not None else defaults[0]
        stop = table.stop_at if table.stop_at is not None else defaults[1]
        if (stop >= start) if table.lowers else (start >= stop):
            problems.append(f"{where}: start_at {start:g} and stop_at {stop:g} (one of them a default) are in the "
                            f"wrong order for {table.controls}: give both")
            return None
    else:
        start, stop = table.start_at, table.stop_at
    span = f"{band.low if band.low is not None else '−∞'}–{band.high if band.high is not None else '∞'} {unit}"
    for key, value in (("start_at", start), ("stop_at", stop)):
        if band.high is not None and value > band.high:
            problems.append(f"{where}.{key}: {value:g} {unit} is above the {profile} band ({span}): set-points must "
                            f"keep the room inside its band (got {value!r})")
        if band.low is not None and value < band.low:
            problems.append(f"{where}.{key}: {value:g} {unit} is below the {profile} band ({span}): set-points must "
                            f"keep the room inside its band (got {value!r})")
    return start, stop


def _followed(where: str, table: ActuatorConfig, sensors: dict[str, SensorConfig], stale: Any,
              problems: list[str]) -> list[FollowedSensor]:
    kinds = MEASURES[table.quantity]
    if table.sensors:
        chosen = []
        for index, ident in enumerate(table.sensors):
            sensor = sensors.get(ident)
            key = f"{where}.sensors[{index}]"
            if sensor is None:
                problems.append(f"{key}: unknown sensor {ident!r}")
            elif sensor.room != table.room:
                problems.append(f"{key}: sensor {ident!r} is in room {sensor.room!r}, not in {table.room!r}")
            elif sensor.kind not in kinds:
                problems.append(f"{key}: sensor {ident!r} ({sensor.kind}) does not measure {table.quantity}")
            elif not sensor.enabled:
                problems.append(f"{key}: sensor {ident!r} is disabled")
            else:
                chosen.append(sensor)
    else:
        chosen = [s for s in sensors.values() if s.room == table.room and s.kind in kinds and s.enabled]
        if not chosen:
            problems.append(f"{where}.sensors: room {table.room!r} has no enabled sensor measuring {table.quantity} "
                            f"for this device to follow")
    if chosen and table.min_sensors > len(chosen):
        problems.append(f"{where}.min_sensors: {table.min_sensors} but it follows {len(chosen)} sensor(s)")
    return [FollowedSensor(s.id, stale_after_ms(s.expected_interval_s, stale)) for s in chosen]


def _hours(where: str, table: ActuatorConfig, problems: list[str]) -> list[TimeRange]:
    ranges = []
    for index, text in enumerate(table.allowed_hours):
        try:
            ranges.append(TimeRange.parse(text))
        except ValueError as exc:
            problems.append(f"{where}.allowed_hours[{index}]: {exc}")
    return ranges


def _switch(where: str, table: ActuatorConfig, sources: dict[str, str], polled: dict[str, str], site: str,
            problems: list[str]) -> MqttSwitch | ModbusCoil | None:
    if table.kind == "modbus":
        missing = [key for key in ("device", "address", "coil") if getattr(table, key) is None]
        for key in missing:
            problems.append(f"{where}.{key}: required for a Modbus coil actuator")
        if table.device is not None and table.device in polled:
            problems.append(f"{where}.device: {table.device} is polled by source {polled[table.device]!r}; one serial "
                            f"port has one Modbus master: put the relay module on a port of its own")
        if table.auto_off_s is not None:
            problems.append(f"{where}.auto_off_s: Modbus coils have no device-side auto-off (see docs/control.md)")
        if missing:
            return None
        assert table.address is not None and table.coil is not None
        return ModbusCoil(table.address, table.coil, table.write_function)
    if table.source is None:
        problems.append(f"{where}.source: required: the MQTT source whose broker the {table.kind} device is on")
    elif table.source not in sources:
        problems.append(f"{where}.source: unknown source {table.source!r}; known: {sorted(sources)}")
    elif sources[table.source] != "mqtt":
        problems.append(f"{where}.source: {table.source!r} is a {sources[table.source]} source, not an MQTT one")
    if not table.topic:
        problems.append(f"{where}.topic: required for a {table.kind} actuator")
        return None
    cls = MQTT_SWITCHES[table.kind]
    if table.auto_off_s is not None and cls.auto_off == "none":
        problems.append(f"{where}.auto_off_s: {table.kind} switches have no device-side auto-off; remove it or use a "
                        f"plug that has one (see docs/control.md)")
    topic = table.topic.rstrip("/")
    if table.kind == "zigbee2mqtt":
        return Zigbee2MqttSwitch(topic, state_property=table.state_property)
    if table.kind == "tasmota":
        return TasmotaSwitch(topic, relay=table.relay, full_topic=table.full_topic)
    if table.kind == "shelly":
        src = f"archmon-{'_'.join(site.split())}-control"
        return ShellySwitch(topic, switch_id=table.relay, device_id=table.device_id, rpc_src=src)
    return EsphomeSwitch(topic, switch=table.switch)


def _output_key(table: ActuatorConfig) -> tuple[Any, ...]:
    if table.kind == "modbus":
        return ("modbus", table.device, table.address, table.coil)
    return (table.kind, table.source, (table.topic or "").rstrip("/"), table.relay, table.switch, table.state_property)


def _fighting(plans: list[ActuatorPlan]) -> list[str]:
    """A device raising a value and one lowering it in one room must not both run: the raiser must stop at or
    below where the lowerer stops."""
    problems = []
    for up in (p for p in plans if not p.loop.lowers):
        for down in (p for p in plans if p.loop.lowers):
            if up.config.room == down.config.room and up.config.quantity == down.config.quantity \
                    and up.loop.stop_at > down.loop.stop_at:
                problems.append(f"{up.where}.stop_at: {up.loop.stop_at:g} is above {down.where}'s stop_at "
                                f"{down.loop.stop_at:g}: both devices would run at once in room {up.config.room!r}")
    return problems


def _source_kinds(config: Config) -> dict[str, str]:
    return {table.id: table.kind for table in config.sources}


def _polled_ports(config: Config) -> dict[str, str]:
    """Serial ports the collector's sources open (``device``), by source id."""
    ports = {}
    for table in config.sources:
        device = table.options.get("device") or table.options.get("port")
        if isinstance(device, str):
            ports[device] = table.id
    return ports
