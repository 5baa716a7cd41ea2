"""Splitting a large site among instances (``[service] partition = "K/N"``): a stable partition of sensor ids,
each instance subscribing to its own sensors' topics; MQTT v5 shared subscriptions only for store-only
instances. Two real ``archmon run`` instances on one real broker store disjoint sets whose union is all."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from archmon.config import parse_config
from archmon.errors import ConfigError
from archmon.partition import Partition, parse_partition
from collector.sources import source_problems
from tests.archmon.forwarding import SENSOR, SENSORS, Stream, local
from tests.archmon.operations import ArchmonProcess, query
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.waiting import wait_for


def _site(partition: str, *, sensors: int = 30, modbus: int = 4, extra: dict | None = None) -> dict:
    return {
        "service": {"partition": partition, **(extra or {})},
        "rooms": [{"id": "p"}],
        "mqtt": [{"id": "b", "subscriptions": [{"filter": "zigbee2mqtt/+", "format": "zigbee2mqtt"}]}],
        "serial": [{"id": f"bus{i}", "device": f"/dev/ttyUSB{i}", "protocol": "modbus"} for i in range(modbus)],
        "sensors": [{"id": f"th{i}", "room": "p", "source": "b", "topic": f"zigbee2mqtt/th{i}", "format": "zigbee2mqtt"}
                    for i in range(sensors)]
        + [{"id": f"m{i}", "room": "p", "source": f"bus{i % modbus}", "address": 1 + i // modbus, "preset": "xy-md02"}
           for i in range(3 * modbus)],
    }


def test_partition_form_is_checked() -> None:
    assert parse_partition(" 2 / 3 ") == Partition(2, 3)
    for bad in ("0/3", "4/3", "3", "a/b", "1/257"):
        with pytest.raises(ValueError, match="K/N"):
            parse_partition(bad)
    with pytest.raises(ConfigError, match=r"service\.partition"):
        parse_config(_site("3/2"))


def test_ownership_is_balanced_stable_and_moves_only_to_a_new_instance() -> None:
    ids = [f"sensor-{i}" for i in range(9000)]
    three = {key: Partition(1, 3).owner(key) for key in ids}
    assert all(abs(n - 3000) < 200 for n in Counter(three.values()).values())  # about a third each
    assert all(Partition(k, 3).owns(key) == (owner == k) for key, owner in list(three.items())[:300] for k in (1, 2, 3))
    four = {key: Partition(1, 4).owner(key) for key in ids}
    moved = [key for key in ids if four[key] != three[key]]
    assert {four[key] for key in moved} == {4}  # a fourth instance takes sensors; none move between the others
    assert abs(len(moved) - len(ids) / 4) < 300


def test_each_instance_sees_its_own_sensors_and_whole_buses_and_the_union_is_the_site() -> None:
    whole = parse_config(_site("1/1"))
    parts = [parse_config(_site(f"{k}/3")) for k in (1, 2, 3)]
    owned = [{s.id for s in part.sensors} for part in parts]
    assert set().union(*owned) == {s.id for s in whole.sensors} and sum(map(len, owned)) == len(whole.sensors)
    for part in parts:
        assert {s.id for s in part.sensors} | {s.id for s in part.foreign_sensors} == {s.id for s in whole.sensors}
        buses = {t.id for t in part.sources if t.kind == "modbus"}
        assert {s.source for s in part.sensors if s.source.startswith("bus")} == buses  # a bus goes with its sensors
        assert "b" in {t.id for t in part.sources}  # every instance connects to the broker
    more = parse_config(_site("2/3", sensors=60))  # adding sensors moves none of the others
    assert {s.id for s in more.sensors} & {s.id for s in whole.sensors} == {s.id for s in parts[1].sensors}


def test_shared_subscriptions_are_only_for_store_only_instances_on_mqtt_5() -> None:
    def problems(service: dict, protocol: str = "5", group: str = "store") -> list[str]:
        data = _site("1/2", modbus=0, extra=service)
        data["mqtt"][0].update({"protocol": protocol, **({"share_group": group} if group else {})})
        return source_problems(parse_config(data))

    assert any("only for [service] store_only = true" in p for p in problems({}))
    assert any('set protocol = "5"' in p for p in problems({"store_only": True}, protocol="3.1.1"))
    assert any("every instance would store every message" in p for p in problems({"store_only": True}, group=""))
    assert problems({"store_only": True}) == []
    store_only = parse_config(_site("2/2", extra={"store_only": True}))
    assert len([s for s in store_only.sensors if s.source == "b"]) == 30  # the broker splits their messages


# -- two instances on one broker -------------------------------------------------------------------------------

def _instance(folder: Path, port: int, partition: str, extra_service: str = "", extra_mqtt: str = "") -> Path:
    """The same file for every instance but ``partition``; each in its own folder (its own database)."""
    folder.mkdir()
    path = folder / "archmon.toml"
    sensors = "".join(SENSOR.format(i=i, room="paper") for i in range(SENSORS))
    path.write_text(
        f'[site]\nname = "big"\n[service]\nstop_timeout_s = 10\npartition = "{partition}"\n{extra_service}'
        '[http]\nenabled = false\n[[rooms]]\nid = "paper"\noverrides = { temperature = { high = 20, delay_s = 0 } }\n'
        f'[[mqtt]]\nid = "b"\nport = {port}\nreconnect_max_s = 1\n{extra_mqtt}'
        '[[mqtt.subscriptions]]\nfilter = "zigbee2mqtt/+"\nformat = "zigbee2mqtt"\n' + sensors
        + '[alerts.calibration]\nuncalibrated = false\n', encoding="utf-8")  # sensor alerts only
    return path


def _counters(db: Path) -> dict[str, int]:
    return {str(k): int(v) for k, v in query(db, "SELECT name, value FROM counters")}


def _stop(processes: list[ArchmonProcess]) -> None:
    for process in processes:
        process.signal(signal.SIGTERM)
    for process in processes:
        assert process.wait(30) == 0


@pytest.mark.mosquitto
@pytest.mark.slow
def test_two_partitioned_instances_store_disjoint_sensor_sets_whose_union_is_every_reading(
        tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    configs = [_instance(tmp_path / f"i{k}", mosquitto.port, f"{k}/2") for k in (1, 2)]
    dbs = [config.parent / "archmon.db" for config in configs]
    owned = [{f"th{i}" for i in range(SENSORS) if Partition(k, 2).owns(f"th{i}")} for k in (1, 2)]
    assert owned[0] and owned[1]
    processes = [ArchmonProcess(config, config.parent / "run.log") for config in configs]
    stream = Stream(mosquitto.port, (int(time.time()) - 3600) * 1000)
    total = 600
    try:
        for process in processes:
            process.wait_log("mqtt[b]: subscribed", "the MQTT subscription")
        stream.publish(range(total))
        newcomer = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="newcomer")
        newcomer.connect("127.0.0.1", mosquitto.port)
        newcomer.publish("zigbee2mqtt/newdev", '{"temperature": 20.0}', qos=1).wait_for_publish(10)
        newcomer.disconnect()
        expected = stream.expected_local(total)
        wait_for(lambda: sum(len(local(db)) for db in dbs) >= total, "every reading stored by one instance or other")
        wait_for(lambda: all(("active" in {str(r[0]) for r in query(db, "SELECT state FROM alert_alerts")})
                             for db in dbs), "each instance judging its own sensors")
        wait_for(lambda: _counters(dbs[0]).get("unassigned", 0) >= 1, "the unknown device listed once", 20)
        _stop(processes)
    finally:
        for process in processes:
            process.kill()
        stream.close()
    stored = [local(db) for db in dbs]
    assert sorted(stored[0] + stored[1]) == expected  # the union is everything, each reading once
    for k in (0, 1):
        assert {sensor for sensor, _ts, _v in stored[k]} == owned[k]
        alerted = {str(r[0]) for r in query(dbs[k], "SELECT sensor FROM alert_alerts")}
        assert alerted and alerted <= owned[k]  # alert state of a sensor lives in its owner only
        log = processes[k].log()
        assert f"archmon-big-b-{k + 1}of2" in log  # one broker session per instance
    first, second = _counters(dbs[0]), _counters(dbs[1])
    # instance 1 also holds the site's wildcard for devices not adopted yet: instance 2's sensors arrive there and
    # are counted, not listed as unknown; instance 2 subscribes to its own sensors' topics only
    assert first["other_partition"] == sum(1 for n in range(total) if f"th{n % SENSORS}" in owned[1])
    assert first["unassigned"] == 1 and second.get("unassigned", 0) == 0
    assert second["received"] == len(stored[1]) and second.get("other_partition", 0) == 0


@pytest.mark.mosquitto
@pytest.mark.slow
def test_store_only_instances_share_the_messages_through_an_mqtt5_shared_subscription(
        tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    configs = [_instance(tmp_path / f"s{k}", mosquitto.port, f"{k}/2", "store_only = true\n",
                         'protocol = "5"\nshare_group = "store"\n') for k in (1, 2)]
    dbs = [config.parent / "archmon.db" for config in configs]
    processes = [ArchmonProcess(config, config.parent / "run.log") for config in configs]
    stream = Stream(mosquitto.port, (int(time.time()) - 3600) * 1000)
    total = 600
    try:
        for process in processes:
            process.wait_log("mqtt[b]: subscribed", "the MQTT subscription")
        stream.publish(range(total))
        wait_for(lambda: sum(len(local(db)) for db in dbs) >= total, "every reading stored by one instance or other")
        _stop(processes)
    finally:
        for process in processes:
            process.kill()
        stream.close()
    stored = [local(db) for db in dbs]
    assert sorted(stored[0] + stored[1]) == stream.expected_local(total)  # each message to one member only
    assert stored[0] and stored[1]
    assert all(query(db, "SELECT count(*) FROM alert_alerts") in ([(0,)], []) for db in dbs)  # nothing judged


def test_a_reload_keeps_the_running_instances_share_until_the_restart() -> None:
    from archmon.reload import plan_reload

    running = parse_config(_site("1/2", modbus=0))
    plan = plan_reload(running, parse_config(_site("2/2", sensors=31, modbus=0)))
    assert plan.restart_needed == ["service.partition"] and plan.config.service.partition == "1/2"
    assert {s.id for s in plan.config.sensors} == {s.id for s in parse_config(_site("1/2", sensors=31,
                                                                                    modbus=0)).sensors}
