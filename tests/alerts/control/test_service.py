"""Climate control inside ``archmon run`` (the Service), in real time on a real Mosquitto: a reading stored
through the collector switches the plug, a reading below the stop set-point switches it off, a plug that
stops answering raises the ``actuator`` alert through the running alert engine, and the stop leaves the
plug as it is."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from archmon.app import Service, climate
from archmon.config import load_config
from archmon.paho import stop_network_loop
from archmon.timeutil import now_ms
from devices.simulators.plugs import PlugFleet, Zigbee2MqttPlug
from tests.archmon.operations import publisher
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.mosquitto


@pytest.fixture
def running(tmp_path: Path, mosquitto: MosquittoBroker,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Service, Zigbee2MqttPlug]]:
    monkeypatch.setattr(climate, "TICK_S", 1.0)  # the service decides every 5 s; every second keeps this short
    path = tmp_path / "archmon.toml"
    path.write_text(f"""
[site]
name = "t"
[[rooms]]
id = "A1"
[[mqtt]]
id = "b"
port = {mosquitto.port}
client_id = "svc-control"
reconnect_max_s = 1
[[sensors]]
id = "th"
room = "A1"
source = "b"
topic = "zigbee2mqtt/th"
format = "zigbee2mqtt"
[[actuators]]
id = "dehum1"
room = "A1"
kind = "zigbee2mqtt"
source = "b"
topic = "zigbee2mqtt/plug-d1"
controls = "humidity_down"
min_on_s = 0
min_off_s = 0
confirm_timeout_s = 1
retries = 1
""", encoding="utf-8")
    plug = Zigbee2MqttPlug(now_ms, topic="zigbee2mqtt/plug-d1")
    fleet = PlugFleet(mosquitto.host, mosquitto.port, [plug], client_id="svc-control-plugs").start()
    service = Service(load_config(path))
    try:
        yield service, plug
    finally:
        service.stop()
        fleet.stop()


def test_the_running_service_controls_the_plug(running: tuple[Service, Zigbee2MqttPlug],
                                               mosquitto: MosquittoBroker) -> None:
    service, plug = running
    assert service.control is not None
    [rule] = [r for r in service.alerts.engine.rules if r.name == "actuator"]
    assert rule.source is service.control  # (it answers with its controller of the moment)
    service.start()
    assert next(iter(service.sources().values())).wait_connected(15)
    pub = publisher(mosquitto.port, "svc-control-pub")
    try:
        pub.publish("zigbee2mqtt/th", json.dumps({"humidity": 58.0, "temperature": 21.0}), qos=1).wait_for_publish(10)
        wait_for(lambda: plug.on, "the dehumidifier switched on", timeout=30)
        pub.publish("zigbee2mqtt/th", json.dumps({"humidity": 48.0, "temperature": 21.0}), qos=1).wait_for_publish(10)
        wait_for(lambda: not plug.on, "the dehumidifier switched off below 50 %", timeout=30)
        plug.stop_answering()
        pub.publish("zigbee2mqtt/th", json.dumps({"humidity": 58.5, "temperature": 21.0}), qos=1).wait_for_publish(10)
        wait_for(lambda: _alert(service, "actuator:dehum1/not_responding") == "active", "the not-responding alert",
                 timeout=60)
    finally:
        stop_network_loop(pub)
        pub.disconnect()
    with sqlite3.connect(service.db_path) as conn:
        reasons = [json.loads(p).get("reason") for (p,) in conn.execute(
            "SELECT payload FROM audit_log WHERE kind = 'control' AND json_extract(payload, '$.event') = 'confirmed' "
            "ORDER BY seq")]
    assert reasons == ["demand", "satisfied"]
    assert plug.commands == 2 + 2 + 1  # on, off, the unanswered on and its repeat; plus the start's read-back


def _alert(service: Service, ident: str) -> str | None:
    with sqlite3.connect(service.db_path) as conn:
        row = conn.execute("SELECT state FROM alert_alerts WHERE ident = ? ORDER BY id DESC LIMIT 1",
                           (ident,)).fetchone()
    return None if row is None else row[0]
