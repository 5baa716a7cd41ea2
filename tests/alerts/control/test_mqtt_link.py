"""Every MQTT switch kind over a real broker, each confirmed by the state the simulated device reports:
Zigbee2MQTT (``/set``, state message), Tasmota (``cmnd/POWER``, ``stat/RESULT``; ``PulseTime`` armed on
connect), Shelly Gen2 (``Switch.Set`` RPC, ``NotifyStatus``; ``toggle_after``), ESPHome (``command``,
retained ``state``: the read-back after a restart)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.control import ControlRecords, ControlRuntime, build_runtime
from archmon.config import Config, parse_config
from devices.simulators.plugs import EsphomeNode, PlugFleet, ShellyPlug, TasmotaPlug, Zigbee2MqttPlug
from tests.fixtures.mosquitto import MosquittoBroker

pytestmark = pytest.mark.mosquitto

T0 = 1_719_792_000_000
KINDS = ("zigbee2mqtt", "tasmota", "shelly", "esphome")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def config(folder: Path, broker: MosquittoBroker) -> Config:
    common = {"room": "A1", "source": "broker", "controls": "humidity_down", "min_on_s": 0, "min_off_s": 0}
    return parse_config({
        "site": {"name": "links"},
        "storage": {"sqlite_path": str(folder / "archmon.db")},
        "rooms": [{"id": "A1"}],
        "mqtt": [{"id": "broker", "host": broker.host, "port": broker.port}],
        "sensors": [{"id": "th1", "room": "A1", "source": "broker", "topic": "zigbee2mqtt/th1",
                     "format": "zigbee2mqtt"}],
        "actuators": [
            {"id": "zigbee2mqtt", "kind": "zigbee2mqtt", "topic": "zigbee2mqtt/plug-z", "auto_off_s": 600, **common},
            {"id": "tasmota", "kind": "tasmota", "topic": "plug-t", "auto_off_s": 600, **common},
            {"id": "shelly", "kind": "shelly", "topic": "shellyplusplugs-a8032ab1c2d3", "auto_off_s": 600, **common},
            {"id": "esphome", "kind": "esphome", "topic": "esphome-node", "switch": "relay", **common},
        ],
    })


@pytest.fixture
def rig(tmp_path: Path, mosquitto: MosquittoBroker) -> Iterator[tuple[Clock, Config, dict, PlugFleet, ControlRecords]]:
    clock = Clock()
    plugs = {"zigbee2mqtt": Zigbee2MqttPlug(clock, topic="zigbee2mqtt/plug-z"),
             "tasmota": TasmotaPlug(clock, topic="plug-t"),
             "shelly": ShellyPlug(clock, topic="shellyplusplugs-a8032ab1c2d3"),
             "esphome": EsphomeNode(clock, topic="esphome-node")}
    fleet = PlugFleet(mosquitto.host, mosquitto.port, plugs.values(), client_id="link-plugs").start()
    records = ControlRecords(tmp_path / "archmon.db")
    try:
        yield clock, config(tmp_path, mosquitto), plugs, fleet, records
    finally:
        fleet.stop()
        records.close()


def start(clock: Clock, cfg: Config, records: ControlRecords) -> ControlRuntime:
    runtime = build_runtime(cfg, records=records, clock=clock)
    runtime.start()
    assert runtime.controller.wait_idle(10)
    return runtime


def test_every_kind_is_switched_and_confirmed_by_its_own_report(rig) -> None:
    clock, cfg, plugs, _, records = rig
    runtime = start(clock, cfg, records)
    try:
        controller = runtime.controller
        assert {s.actuator: s.on for s in controller.status()} == dict.fromkeys(KINDS, False)  # read back
        assert plugs["tasmota"].pulse_time == 700  # PulseTime armed at connect: 600 s + 100
        for kind in KINDS:
            records.set_override(kind, True, clock.now, clock.now + 3600_000, "test", "switch on")
        controller.tick()
        assert controller.wait_idle(10)
        assert all(plug.on for plug in plugs.values())
        assert {s.actuator: s.on for s in controller.status()} == dict.fromkeys(KINDS, True)
        assert plugs["zigbee2mqtt"].off_at_ms == clock.now + 600_000  # on_time rode on the command
        assert plugs["shelly"].off_at_ms == clock.now + 600_000  # toggle_after
        assert plugs["tasmota"].off_at_ms == clock.now + 600_000  # its PulseTime (700 = 600 s + 100)
        for kind in KINDS:
            records.set_override(kind, False, clock.now, clock.now + 3600_000, "test", "switch off")
        clock.now += 1000
        controller.tick()
        assert controller.wait_idle(10)
        assert not any(plug.on for plug in plugs.values())
        confirmed = {kind: controller.driver(kind).commands_sent for kind in KINDS}
        assert confirmed == dict.fromkeys(KINDS, 2)  # no repeat was needed
    finally:
        runtime.stop()


def test_esphome_state_is_read_back_from_its_retained_message(rig) -> None:
    clock, cfg, plugs, _, records = rig
    runtime = start(clock, cfg, records)
    records.set_override("esphome", True, clock.now, clock.now + 3600_000, "test", "on")
    runtime.controller.tick()
    assert runtime.controller.wait_idle(10) and plugs["esphome"].on
    runtime.stop()
    clock.now += 60_000
    again = start(clock, cfg, records)  # ESPHome cannot be asked: its retained state is the answer
    try:
        [status] = [s for s in again.controller.status() if s.actuator == "esphome"]
        assert status.on is True and status.since_ms == T0
        assert again.controller.driver("esphome").commands_sent == 0
    finally:
        again.stop()
