"""Faults, over the real broker and the pty relay in simulated time: a plug that stops answering (an alert,
bounded repeats, recovery), sensors that go stale (the safe state within the stale timeout), archmon killed
while devices run (the plugs' own auto-off holds; after a restart the state is read back and the loop goes
on, its minimum times counted from the switch log)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from alerts.audit import verify_audit
from archmon.paho import stop_network_loop
from devices.simulators.pty_pair import PtyPair
from devices.simulators.room_physics import RoomDevice
from tests.alerts.control.closed_loop import ClosedLoopRoom
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.serial]

STALE_S = 3 * 60  # alerts.stale factor 3 × the sensors' 60 s interval


class TopicCounter:
    """Counts what is published under a topic filter on the broker (a plain subscriber)."""

    def __init__(self, broker: MosquittoBroker, topic_filter: str) -> None:
        self.counts: Counter[str] = Counter()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="counter")
        client.on_connect = lambda c, *a: c.subscribe(topic_filter, 1)
        client.on_subscribe = lambda *a: self._ready.set()
        client.on_message = self._count
        client.connect(broker.host, broker.port)
        client.loop_start()
        assert self._ready.wait(10), "counter not subscribed"
        self.client = client

    def _count(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.counts[message.topic] += 1

    def __getitem__(self, topic: str) -> int:
        with self._lock:
            return self.counts[topic]

    def stop(self) -> None:
        stop_network_loop(self.client)
        self.client.disconnect()


@pytest.fixture
def make_room(mosquitto: MosquittoBroker, pty_pair: PtyPair, tmp_path: Path) -> Iterator:
    rooms: list[ClosedLoopRoom] = []

    def build(**options: object) -> ClosedLoopRoom:
        room = ClosedLoopRoom(tmp_path, host=mosquitto.host, port=mosquitto.port, relay_port=pty_pair.a,
                              module_port=pty_pair.b, **options)  # type: ignore[arg-type]
        rooms.append(room)
        return room.start()

    yield build
    for room in rooms:
        room.stop()


def control_events(room: ClosedLoopRoom, actuator: str) -> list[dict[str, object]]:
    with sqlite3.connect(room.config.storage.sqlite_path) as conn:
        rows = conn.execute("SELECT ts_ms, actor, payload FROM audit_log WHERE kind = 'control' AND subject = ? "
                            "ORDER BY seq", (f"actuator:{actuator}",)).fetchall()
    return [{"ts_ms": ts, "actor": actor, **json.loads(payload)} for ts, actor, payload in rows]


def alert_state(room: ClosedLoopRoom, ident: str) -> str | None:
    with sqlite3.connect(room.config.storage.sqlite_path) as conn:
        row = conn.execute("SELECT state FROM alert_alerts WHERE ident = ? ORDER BY id DESC LIMIT 1",
                           (ident,)).fetchone()
    return None if row is None else row[0]


def test_a_plug_that_stops_answering_raises_an_alert_after_bounded_repeats(make_room, mosquitto) -> None:
    counter = TopicCounter(mosquitto, "zigbee2mqtt/plug-dehum1/+")
    try:
        # no idle polls (they would find the dead plug before it is needed: test_driver.py): the command finds it
        room = make_room(rh=55.5, overrides={"dehum1": {"poll_interval_s": 86_400}})
        driver = room.controller.driver("dehum1")
        room.zigbee.stop_answering()
        room.until(lambda: driver.commands_sent >= 1, limit_min=30, wait_s=1.0)
        first = room.now
        room.until(lambda: driver.down, limit_min=5, wait_s=1.0)
        down_at = room.now  # probes follow every probe interval from here
        assert "no report of ON after 3 attempt(s), 10 s each" in driver.down_detail
        for _ in range(120):
            room.step(wait_s=1.0)
        sets = counter["zigbee2mqtt/plug-dehum1/set"]
        assert sets == 3  # one command and two repeats in two hours: no endless retries
        assert counter["zigbee2mqtt/plug-dehum1/get"] <= 1 + 120 // 10 + 1  # the read-back, then probes
        assert alert_state(room, "actuator:dehum1/not_responding") == "active"
        assert room.relay.is_on(0) or room.room.rh < 57.5  # the second dehumidifier takes over on its set-point
        events = [e["event"] for e in control_events(room, "dehum1") if e["ts_ms"] >= first]
        assert events[:4] == ["command", "retry", "retry", "failed"]

        room.zigbee.answer_again()
        # The next probe finds it. A probe (a state query while down) has no deadline, so the harness does not
        # hold simulated time for its answer: step to the probe, then wait in real time for the answer the
        # broker carries (on a loaded machine it may take longer than a dozen simulated minutes take to step).
        probe_ms = driver.timing.probe_ms
        assert probe_ms % 60_000 == 0
        next_probe = down_at + -(-(room.now + 60_000 - down_at) // probe_ms) * probe_ms
        room.until(lambda: room.now >= next_probe, limit_min=probe_ms // 60_000)
        wait_for(lambda: not driver.down, "the plug's answer to the probe", timeout=60)
        room.until(lambda: room.zigbee.on, limit_min=5)  # the loop still wants it on: it is switched on now
        room.step()
        assert alert_state(room, "actuator:dehum1/not_responding") == "cleared"
        assert "recovered" in [e["event"] for e in control_events(room, "dehum1")]
    finally:
        counter.stop()


def test_stale_sensors_put_devices_in_their_safe_state_within_the_stale_timeout(make_room) -> None:
    room = make_room(rh=58.5)
    room.until(lambda: room.zigbee.on and room.relay.is_on(0), limit_min=30)
    for _ in range(15):  # past the minimum on time
        room.step()
    last_reading = room.now
    room.until(lambda: not room.zigbee.on and not room.relay.is_on(0), limit_min=10, sensors=False)
    for name in ("dehum1", "dehum2"):
        off = room.histories()[name][-1]
        assert not off.on and off.why == "command"
        assert last_reading + STALE_S * 1000 < off.ts_ms <= last_reading + (STALE_S + 60) * 1000, name
        assert control_events(room, name)[-2]["reason"] == "stale"


def test_killed_archmon_plugs_switch_themselves_off_and_a_restart_resumes(make_room) -> None:
    room = make_room(rh=58.5)
    room.until(lambda: room.zigbee.on, limit_min=30)
    for _ in range(25):  # runs a while: its ON has been renewed (every 10 min for a 30 min auto-off)
        room.step()
    assert room.zigbee.on and room.zigbee.last_on_ms is not None and room.zigbee.last_on_ms > room.histories()[
        "dehum1"][-1].ts_ms
    relay_before = room.relay.is_on(0)
    room.kill_archmon()
    renewed = room.zigbee.last_on_ms
    room.until(lambda: not room.zigbee.on, limit_min=40)
    off = room.histories()["dehum1"][-1]
    assert off.why == "timer" and off.ts_ms <= renewed + 1800 * 1000 + 60_000  # its own on_time fail-safe
    assert room.relay.is_on(0) == relay_before  # a plain coil has none: documented in docs/control.md

    restart = room.now
    room.start_archmon()
    after = [e for e in control_events(room, "dehum1") if e["ts_ms"] >= restart]
    assert [(e["event"], e["state"]) for e in after] == [("readback", "off")]
    room.until(lambda: room.zigbee.on, limit_min=10)  # RH is still high: the loop switches it on again...
    assert room.histories()["dehum1"][-1].ts_ms >= restart + 300_000  # ...after the minimum off time
    with sqlite3.connect(room.config.storage.sqlite_path) as conn:
        assert verify_audit(conn).ok


def test_a_restart_while_on_keeps_the_switch_time_for_the_minimum_times(make_room) -> None:
    room = make_room(rh=58.5)
    room.until(lambda: room.zigbee.on, limit_min=30)
    switched_on = room.histories()["dehum1"][-1].ts_ms
    room.step(2)
    room.kill_archmon()
    room.step(3)
    room.start_archmon()
    [status] = [s for s in room.controller.status() if s.actuator == "dehum1"]
    assert status.on is True and status.since_ms == switched_on
    commands = [e for e in control_events(room, "dehum1") if e["event"] == "command"]
    room.step(2)
    assert [e for e in control_events(room, "dehum1") if e["event"] == "command"] == commands  # nothing re-sent


def test_a_device_that_runs_without_effect_raises_an_alert(make_room) -> None:
    room = make_room(rh=56.0, overrides={"ac1": {"enabled": False}, "dehum2": {"enabled": False}})
    room.room.devices["dehum1"] = RoomDevice("dehumidifier", rate_g_h=0.0)  # on, but its tank is full
    room.until(lambda: room.zigbee.on, limit_min=30)
    minutes = room.until(lambda: alert_state(room, "actuator:dehum1/no_effect") == "active", limit_min=90)
    assert 55 <= minutes <= 75  # one effect window (1 h) of running with RH not falling
    assert room.zigbee.on  # an alert for people, not a switch-off: the loop still wants it on
