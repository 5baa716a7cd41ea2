"""The whole service on a real Mosquitto: bad input is quarantined, routine chatter ignored, and the
collector keeps storing good readings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from archmon.app import Service
from archmon.config import load_config
from archmon.paho import stop_network_loop
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.mosquitto

GARBAGE = [
    ("zigbee2mqtt/paper_th", b"\xff\xfe not json"),
    ("zigbee2mqtt/paper_th", b'{"temperature": "hot"}'),
    ("zigbee2mqtt/paper_th", b'{"temperature": 21.0, "humidity": 180}'),  # humidity quarantined, temperature kept
    ("zigbee2mqtt/paper_th", b"[1, 2, 3]"),
    ("tele/unknown_device/SENSOR", b'{"AM2301": {"Temperature": 20}}'),  # no sensor and no format for it
    ("zigbee2mqtt/paper_th", b"{" * 100_000),
]
CHATTER = [("tele/film_th/STATE", b'{"Time":"2026-01-05T08:00:00","Uptime":"0T01:00:00"}')]


def test_bad_input_is_quarantined_and_good_readings_still_land(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    path = tmp_path / "archmon.toml"
    path.write_text(
        f'[site]\nname = "t"\n[[rooms]]\nid = "paper"\n'
        f'[[mqtt]]\nid = "b"\nport = {mosquitto.port}\nclient_id = "svc-test"\n'
        f'[[mqtt.subscriptions]]\nfilter = "tele/#"\nformat = "json"\n'
        f'[[sensors]]\nid = "paper-th"\nroom = "paper"\nsource = "b"\ntopic = "zigbee2mqtt/paper_th"\n'
        f'format = "zigbee2mqtt"\n'
        f'[[sensors]]\nid = "film-th"\nroom = "paper"\nsource = "b"\ntopic = "tele/film_th"\nformat = "tasmota"\n',
        encoding="utf-8",
    )
    service = Service(load_config(path))
    service.start()
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="svc-test-pub")
    try:
        assert service.sources()["b"].wait_connected(15)
        publisher.connect("127.0.0.1", mosquitto.port)
        publisher.loop_start()
        for topic, payload in GARBAGE + CHATTER:
            publisher.publish(topic, payload, qos=1).wait_for_publish(10)
        publisher.publish("zigbee2mqtt/paper_th", b'{"temperature": 19.5, "humidity": 51}', qos=1).wait_for_publish(10)

        def stored(quantity: str) -> int:
            return service.store.count_readings("paper-th", quantity)

        wait_for(lambda: stored("humidity") == 1, "the good reading after the garbage")
        assert service.writer.flush(10)
        counters = service.store.counters()
        quarantine = service.store.quarantine(limit=50)
        temperatures = stored("temperature")
    finally:
        stop_network_loop(publisher)
        publisher.disconnect()
        service.stop()

    assert temperatures == 2  # 21.0 from the message whose humidity was impossible, then 19.5
    reasons = [q.reason for q in quarantine]
    assert len(quarantine) == len(GARBAGE), reasons
    assert all(q.reason and q.source == "b" for q in quarantine)
    assert any("humidity" in r and "180" in r for r in reasons)
    assert any(q.topic == "tele/unknown_device/SENSOR" for q in quarantine)
    assert {bytes(q.payload) for q in quarantine} >= {b"\xff\xfe not json", b"[1, 2, 3]"}
    assert counters["quarantined"] == len(GARBAGE)
    assert counters["ignored"] == 1  # the Tasmota STATE message is routine chatter, not an error
    with sqlite3.connect(service.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 3


def test_smoke_over_mqtt_raises_a_critical_alert_and_a_notification_request(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    """Live wiring: a smoke message through the broker, the pipeline and the store reaches the alert
    engine at once (no polling), which raises a critical alert and queues a notification request."""
    path = tmp_path / "archmon.toml"
    path.write_text(
        f'[site]\nname = "t"\n[[rooms]]\nid = "paper"\n'
        f'[[mqtt]]\nid = "b"\nport = {mosquitto.port}\nclient_id = "svc-smoke"\n'
        f'[[sensors]]\nid = "paper-smoke"\nroom = "paper"\nkind = "smoke"\nsource = "b"\n'
        f'topic = "zigbee2mqtt/paper_smoke"\nformat = "zigbee2mqtt"\n',
        encoding="utf-8",
    )
    service = Service(load_config(path))
    service.start()
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="svc-smoke-pub")
    db = service.db_path

    def smoke_alert() -> tuple[str, str, str] | None:
        with sqlite3.connect(db) as conn:
            return conn.execute(
                "SELECT a.severity, a.state, q.status FROM alert_alerts a JOIN notification_queue q "
                "ON q.alert_id = a.id WHERE a.rule = 'smoke' AND a.sensor = 'paper-smoke'"
            ).fetchone()

    try:
        assert service.sources()["b"].wait_connected(15)
        publisher.connect("127.0.0.1", mosquitto.port)
        publisher.loop_start()
        publisher.publish("zigbee2mqtt/paper_smoke", b'{"smoke": false, "battery": 90}', qos=1).wait_for_publish(10)
        publisher.publish("zigbee2mqtt/paper_smoke", b'{"smoke": true, "battery": 90}', qos=1).wait_for_publish(10)
        wait_for(lambda: smoke_alert() is not None, "the smoke alert and its notification request")
        severity, state, status = smoke_alert()  # type: ignore[misc]
    finally:
        stop_network_loop(publisher)
        publisher.disconnect()
        service.stop()
    assert (severity, state, status) == ("critical", "active", "pending")


def test_status_shows_source_states_while_running_and_after_stop(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    from dashboards.status import status_report

    path = tmp_path / "archmon.toml"
    path.write_text(
        f'[site]\nname = "t"\n[[rooms]]\nid = "paper"\n'
        f'[[mqtt]]\nid = "b"\nport = {mosquitto.port}\nclient_id = "svc-status"\n'
        f'[[serial]]\nid = "bus"\ndevice = "{tmp_path / "no-such-port"}"\nprotocol = "modbus"\n'
        f'[[sensors]]\nid = "th"\nroom = "paper"\nsource = "bus"\naddress = 1\npreset = "xy-md02"\n',
        encoding="utf-8",
    )
    config = load_config(path)
    service = Service(config)
    service.start()
    try:
        assert service.sources()["b"].wait_connected(15)
        service.report_stats()
        assert service.writer.flush(10)
        states = {s["source"]: s["state"] for s in status_report(config)["sources"]}
    finally:
        service.stop()
    assert states == {"b": "connected", "bus": "DISCONNECTED"}  # the Modbus port does not exist
    after = status_report(config)
    assert not after["service_running"]
    assert {s["state"] for s in after["sources"]} == {"archmon not running"}
