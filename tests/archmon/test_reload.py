"""What a reload applies and what waits for a restart (``archmon.reload.plan_reload``), and a reload of a
real Service: new Modbus devices are polled, new routes used, restart-only keys kept, bad files refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from archmon.app import Service
from archmon.config import Config, load_config, parse_config
from archmon.paho import stop_network_loop
from archmon.reload import plan_reload


def _config(**changes: Any) -> Config:
    data: dict[str, Any] = {
        "site": {"name": "t", "timezone": "Asia/Shanghai"},
        "storage": {"sqlite_path": "/tmp/x.db"},
        "rooms": [{"id": "paper"}],
        "mqtt": [{"id": "b", "port": 1883, "subscriptions": [{"filter": "tele/#", "format": "tasmota"}]}],
        "serial": [{"id": "bus", "device": "/dev/null-bus", "protocol": "modbus"}],
        "sensors": [{"id": "th", "room": "paper", "source": "b", "topic": "z/th", "format": "zigbee2mqtt"}],
    }
    for key, value in changes.items():
        data[key] = value
    return parse_config(data)


def test_live_sections_apply_and_restart_only_keys_keep_their_running_values() -> None:
    running = _config()
    new = _config(
        site={"name": "renamed", "timezone": "Europe/Berlin", "language": "en"},
        storage={"sqlite_path": "/tmp/other.db", "raw_retention_days": 30},
        rooms=[{"id": "paper", "overrides": {"humidity": {"high": 55}}}],
        mqtt=[{"id": "b", "port": 1884, "subscriptions": [{"filter": "shellies/#", "format": "shelly-gen1"}]}],
        sensors=[{"id": "th", "room": "paper", "source": "b", "topic": "z/th2", "format": "zigbee2mqtt"}],
    )
    plan = plan_reload(running, new)
    effective = plan.config
    assert sorted(plan.restart_needed) == ["mqtt (b): connection or port options", "site.name", "site.timezone",
                                           "storage.sqlite_path"]
    # the running values stay where a restart is needed ...
    assert (effective.site.name, effective.site.timezone) == ("t", "Asia/Shanghai")
    assert effective.storage.sqlite_path == Path("/tmp/x.db")
    assert effective.source("b").options["port"] == 1883
    # ... and everything else is the new file's
    assert effective.site.language == "en"
    assert effective.storage.raw_retention_days == 30
    assert effective.source("b").options["subscriptions"][0]["filter"] == "shellies/#"
    assert effective.rooms[0].overrides == {"humidity": {"high": 55}}
    assert effective.sensors[0].topic == "z/th2"
    assert {"site", "storage", "rooms", "sources", "sensors"} <= set(plan.changed)


def test_what_is_built_once_at_start_waits_for_a_restart() -> None:
    """The pipeline's quarantine keeper and the dashboard's socket are made at start: a reload that changes
    them says they wait, and the running values stay (they were reported as applied and never took effect)."""
    running = _config()
    new = _config(storage={"sqlite_path": "/tmp/x.db", "quarantine_per_source_per_minute": 5,
                           "quarantine_payload_max_bytes": 1024, "raw_retention_days": 30},
                  http={"port": 9090, "public_url": "https://archive.example.org"})
    plan = plan_reload(running, new)
    assert sorted(plan.restart_needed) == ["http.port", "http.public_url", "storage.quarantine_payload_max_bytes",
                                           "storage.quarantine_per_source_per_minute"]
    assert plan.config.storage.quarantine_per_source_per_minute == 60
    assert plan.config.storage.quarantine_payload_max_bytes == 65_536
    assert plan.config.http.port == 8080 and plan.config.http.public_url is None
    assert plan.config.storage.raw_retention_days == 30  # applied
    assert plan.changed == ["storage"]


def test_sensors_on_sources_that_do_not_run_yet_are_left_out() -> None:
    running = _config()
    new = _config(
        serial=[{"id": "bus", "device": "/dev/null-bus", "protocol": "modbus"},
                {"id": "bus2", "device": "/dev/null-bus2", "protocol": "modbus"}],
        sensors=[{"id": "th", "room": "paper", "source": "b", "topic": "z/th", "format": "zigbee2mqtt"},
                 {"id": "m1", "room": "paper", "source": "bus2", "address": 1, "preset": "xy-md02"}],
    )
    plan = plan_reload(running, new)
    assert plan.left_out == ["m1"]
    assert [s.id for s in plan.config.sensors] == ["th"]
    assert [t.id for t in plan.config.sources] == ["b", "bus"]
    assert plan.restart_needed == ["modbus (bus2): added"]


def test_an_unchanged_file_changes_nothing() -> None:
    plan = plan_reload(_config(), _config())
    assert plan.changed == [] and plan.restart_needed == [] and plan.left_out == []


def _write(path: Path, body: str) -> None:
    path.write_text(f'[site]\nname = "t"\n[storage]\nsqlite_path = "a.db"\n[[rooms]]\nid = "paper"\n'
                    f'[[serial]]\nid = "bus"\ndevice = "{path.parent / "no-port"}"\nprotocol = "modbus"\n' + body,
                    encoding="utf-8")


def _audit(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute(
            "SELECT json_extract(payload, '$.event') FROM audit_log WHERE subject = 'service' ORDER BY seq")]


def test_service_reload_polls_new_modbus_devices_routes_them_and_refuses_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "archmon.toml"
    sensor = '[[sensors]]\nid = "m{n}"\nroom = "paper"\nsource = "bus"\naddress = {n}\npreset = "xy-md02"\n'
    _write(path, sensor.format(n=1))
    service = Service(load_config(path))
    try:
        assert [d.address for d in service.sources()["bus"].devices] == [1]
        _write(path, sensor.format(n=1) + sensor.format(n=2) + '[site2]\n')
        refused = service.reload()
        assert not refused.applied and "site2" in refused.problems[0]
        assert [d.address for d in service.sources()["bus"].devices] == [1]  # the running configuration stays

        _write(path, sensor.format(n=1) + sensor.format(n=2))
        applied = service.reload()
        assert applied.applied and applied.plan is not None and applied.plan.changed == ["sensors"]
        assert [d.address for d in service.sources()["bus"].devices] == [1, 2]
        assert [s.id for s in service.pipeline.router.bus_sensors("bus", 2)] == ["m2"]
        assert service.alerts.config is service.config  # the alert rules know m2 too
        assert "m2" in service.alerts.engine.sensors
    finally:
        service.stop()
    assert _audit(service.db_path) == ["reload_refused", "reload"]


@pytest.mark.parametrize("broken", [
    '[[sensors]]\nid = "m1"\nroom = "nowhere"\nsource = "bus"\naddress = 1\npreset = "xy-md02"\n',
    '[[sensors]]\nid = "m1"\nroom = "paper"\nsource = "bus"\naddress = 1\npreset = "no-such-preset"\n',
    '[alerts.rules.smoke]\nenabled = false\n',
])
def test_every_kind_of_bad_file_is_refused_with_its_problem(tmp_path: Path, broken: str) -> None:
    path = tmp_path / "archmon.toml"
    _write(path, "")
    service = Service(load_config(path))
    try:
        _write(path, broken)
        outcome = service.reload()
    finally:
        service.stop()
    assert not outcome.applied and outcome.problems
    assert service.config.sensors == []
    assert _audit(service.db_path) == ["reload_refused"]


@pytest.mark.mosquitto
def test_a_reload_subscribes_new_sensor_topics_and_drops_removed_ones(tmp_path: Path, mosquitto: object) -> None:
    from tests.archmon.operations import publisher
    from tests.fixtures.waiting import wait_for

    port = mosquitto.port  # type: ignore[attr-defined]
    path = tmp_path / "archmon.toml"
    sensor = '[[sensors]]\nid = "{0}"\nroom = "paper"\nsource = "b"\ntopic = "zigbee2mqtt/{0}"\nformat = "zigbee2mqtt"'

    def write(*sensors: str) -> None:
        text = f'[site]\nname = "t"\n[[rooms]]\nid = "paper"\n[[mqtt]]\nid = "b"\nport = {port}\nclient_id = "reload"\n'
        path.write_text(text + "".join(sensor.format(s) + "\n" for s in sensors), encoding="utf-8")

    write("old")
    service = Service(load_config(path))
    service.start()
    pub = publisher(port, "svc-reload-pub")
    try:
        assert service.sources()["b"].wait_connected(15)
        write("new")
        outcome = service.reload()
        assert outcome.applied
        assert service.sources()["b"].topics == ("zigbee2mqtt/new/#",)
        assert service.sources()["b"].stats()["subscribe_failures"] == 0  # (the reload waited for the broker's answer)
        for topic in ("zigbee2mqtt/old", "zigbee2mqtt/new"):
            pub.publish(topic, b'{"temperature": 20.5}', qos=1).wait_for_publish(10)
        wait_for(lambda: service.store.count_readings("new", "temperature") == 1, "the new sensor's reading")
        assert service.writer.flush(10)
        received = service.sources()["b"].stats()["received"]
        quarantined = service.store.quarantine_count()
    finally:
        stop_network_loop(pub)
        pub.disconnect()
        service.stop()
    assert received == 1  # the removed sensor's topic is no longer subscribed
    assert quarantined == 0
