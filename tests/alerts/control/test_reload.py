"""A reload (what SIGHUP runs) changing ``[[actuators]]`` in a running service, in real time on a real
Mosquitto with simulated plugs: new set-points apply without a restart, a removed device is put in its
configured safe state first (confirmed by the plug, audited), an added one is controlled at once, a device
left unchanged keeps its state and its switch time, and the audit chain verifies."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from archmon.app import Service, climate
from archmon.cli import main
from archmon.config import load_config
from archmon.paho import stop_network_loop
from archmon.timeutil import now_ms
from devices.simulators.plugs import PlugFleet, TasmotaPlug, Zigbee2MqttPlug
from tests.archmon.operations import publisher
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.mosquitto

SITE = """
[site]
name = "t"
[[rooms]]
id = "A1"
[[mqtt]]
id = "b"
port = {port}
client_id = "svc-reload"
reconnect_max_s = 1
[[sensors]]
id = "th"
room = "A1"
source = "b"
topic = "zigbee2mqtt/th"
format = "zigbee2mqtt"
"""
PLUG = """
[[actuators]]
id = "{ident}"
room = "A1"
kind = "{kind}"
source = "b"
topic = "{topic}"
controls = "humidity_down"
min_on_s = 0
min_off_s = 0
confirm_timeout_s = 2
retries = 1
{extra}
"""


def _site(port: int, *plugs: tuple[str, str, str, str]) -> str:
    return SITE.format(port=port) + "".join(PLUG.format(ident=i, kind=k, topic=t, extra=e) for i, k, t, e in plugs)


class Site(NamedTuple):
    path: Path
    service: Service
    plugs: dict[str, Zigbee2MqttPlug | TasmotaPlug]


@pytest.fixture
def site(tmp_path: Path, mosquitto: MosquittoBroker, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setattr(climate, "TICK_S", 1.0)
    path = tmp_path / "archmon.toml"
    path.write_text(_site(mosquitto.port, ("dehum1", "zigbee2mqtt", "zigbee2mqtt/plug-d1", ""),
                          ("dehum2", "zigbee2mqtt", "zigbee2mqtt/plug-d2", "")), encoding="utf-8")
    plugs = {"dehum1": Zigbee2MqttPlug(now_ms, topic="zigbee2mqtt/plug-d1"),
             "dehum2": Zigbee2MqttPlug(now_ms, topic="zigbee2mqtt/plug-d2"),
             "dehum3": TasmotaPlug(now_ms, topic="plug-d3")}
    fleet = PlugFleet(mosquitto.host, mosquitto.port, list(plugs.values()), client_id="svc-reload-plugs").start()
    service = Service(load_config(path))
    try:
        yield Site(path, service, plugs)
    finally:
        service.stop()
        fleet.stop()


def _events(db: Path) -> list[tuple[str, str, dict]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT subject, payload FROM audit_log WHERE kind = 'control' ORDER BY seq").fetchall()
    return [(subject.removeprefix("actuator:"), json.loads(payload).get("event"), json.loads(payload))
            for subject, payload in rows]


def test_a_reload_rebuilds_the_actuators_without_a_restart(site: Site, mosquitto: MosquittoBroker) -> None:
    service, plugs = site.service, site.plugs
    service.start()
    assert next(iter(service.sources().values())).wait_connected(15)
    pub = publisher(mosquitto.port, "svc-reload-pub")

    def humidity(value: float) -> None:
        pub.publish("zigbee2mqtt/th", json.dumps({"humidity": value, "temperature": 21.0}),
                    qos=1).wait_for_publish(10)

    try:
        humidity(58.0)  # above the default start (55 %): both dehumidifiers on
        wait_for(lambda: plugs["dehum1"].on and plugs["dehum2"].on, "both dehumidifiers on", timeout=30)
        switched_on = plugs["dehum1"].history[-1].ts_ms
        site.path.write_text(_site(mosquitto.port,
                                   ("dehum1", "zigbee2mqtt", "zigbee2mqtt/plug-d1", "start_at = 59\nstop_at = 57"),
                                   ("dehum3", "tasmota", "plug-d3", "")), encoding="utf-8")
        outcome = service.reload(site.path)
        assert outcome.applied, outcome.problems
        assert not plugs["dehum2"].on  # removed: in its safe state (off) before the reload returned
        assert [s.why for s in plugs["dehum2"].history] == ["command", "command"]
        wait_for(lambda: plugs["dehum3"].on, "the added dehumidifier on (58 % is above its start)", timeout=30)
        assert plugs["dehum1"].on and plugs["dehum1"].history[-1].ts_ms == switched_on  # 58 %: inside 57–59, hold
        humidity(56.5)  # below the new stop (57 %), above the old one (50 %)
        wait_for(lambda: not plugs["dehum1"].on, "dehum1 off at its new stop set-point", timeout=30)
        assert plugs["dehum3"].on  # 56.5 % is above its default stop (50 %)
        humidity(58.0)
        wait_for(lambda: service.control.controller.status()[0].value == 58.0, "the new controller's reading")
        assert not plugs["dehum2"].on  # nobody switches a removed device any more
    finally:
        stop_network_loop(pub)
        pub.disconnect()
    events = _events(service.db_path)
    removed = [p for a, e, p in events if a == "dehum2" and e == "removed"]
    assert len(removed) == 1 and removed[0]["safe_state"] == "off" and removed[0]["confirmed"] is True
    confirmed = [(p["state"], p["reason"]) for a, e, p in events if a == "dehum2" and e == "confirmed"]
    assert confirmed == [("on", "demand"), ("off", "removed")]
    assert [p["keys"] for a, e, p in events if a == "dehum1" and e == "reconfigured"] == [["start_at", "stop_at"]]
    assert [a for a, e, _ in events if e == "added"] == ["dehum3"]
    assert [a for a, e, _ in events if e == "readback"].count("dehum1") == 2  # read back at the start and reload
    assert [p["reason"] for a, e, p in events if a == "dehum1" and e == "confirmed"] == ["demand", "satisfied"]
    assert all(p.get("config_sha256") for _, e, p in events if e in ("added", "reconfigured", "removed"))
    [rule] = [r for r in service.alerts.engine.rules if r.name == "actuator"]
    assert {h.actuator for h in rule.source.actuator_health()} == {"dehum1", "dehum3"}
    service.stop()
    assert main(["audit", "verify", "--config", str(site.path)]) == 0


def test_a_reload_adding_the_first_actuator_starts_climate_control(tmp_path: Path, mosquitto: MosquittoBroker,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(climate, "TICK_S", 1.0)
    path = tmp_path / "archmon.toml"
    path.write_text(_site(mosquitto.port), encoding="utf-8")
    plug = Zigbee2MqttPlug(now_ms, topic="zigbee2mqtt/plug-d1")
    fleet = PlugFleet(mosquitto.host, mosquitto.port, [plug], client_id="svc-reload-first").start()
    service = Service(load_config(path))
    pub = publisher(mosquitto.port, "svc-reload-first-pub")
    try:
        assert service.control is None
        service.start()
        assert next(iter(service.sources().values())).wait_connected(15)
        path.write_text(_site(mosquitto.port, ("dehum1", "zigbee2mqtt", "zigbee2mqtt/plug-d1", "")), encoding="utf-8")
        assert service.reload(path).applied
        assert service.control is not None
        pub.publish("zigbee2mqtt/th", json.dumps({"humidity": 58.0}), qos=1).wait_for_publish(10)
        wait_for(lambda: plug.on, "the first dehumidifier switched on", timeout=30)
        wait_for(lambda: any(r.name == "actuator" and r.source is service.control
                             for r in service.alerts.engine.rules), "the actuator rule attached", timeout=10)
    finally:
        stop_network_loop(pub)
        pub.disconnect()
        service.stop()
        fleet.stop()
