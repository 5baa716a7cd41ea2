"""Nothing lost: 5,000 QoS 1 readings through a broker restart and a collector SIGKILL, stored exactly once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.fixtures.mosquitto import MosquittoBroker

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

TOTAL = 5_000
SENSORS = 10
ROOT = Path(__file__).resolve().parents[2]


def write_config(folder: Path, port: int) -> Path:
    sensors = "\n".join(
        f'[[sensors]]\nid = "th{i}"\nroom = "paper"\nsource = "broker"\n'
        f'topic = "zigbee2mqtt/th{i}"\nformat = "zigbee2mqtt"\n'
        for i in range(SENSORS)
    )
    path = folder / "archmon.toml"
    path.write_text(
        f'[site]\nname = "noloss"\n[storage]\nsqlite_path = "{folder / "archmon.db"}"\n'
        f'[[rooms]]\nid = "paper"\n'
        f'[[mqtt]]\nid = "broker"\nport = {port}\nclient_id = "archmon-noloss"\nreconnect_max_s = 2\n'
        f"{sensors}",
        encoding="utf-8",
    )
    return path


def count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Collector:
    """``archmon run`` as a real child process, so that SIGKILL is a real crash."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, status: StatusWatcher) -> None:
        status.online.clear()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "archmon", "run", "--config", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        assert status.online.wait(30), f"collector did not come online:\n{self.log.read_text()[-3000:]}"

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)
        self.proc.wait(timeout=30)


class StatusWatcher:
    """Follows the collector's retained birth/LWT topic."""

    def __init__(self, port: int) -> None:
        self.online = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="status-watcher")
        self.client.on_connect = lambda c, *_: c.subscribe("archmon/noloss/status/#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.payload == b"online":
            self.online.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Publisher:
    """A persistent-session QoS 1 publisher that waits for every PUBACK.

    paho keeps QoS 1 messages published while disconnected and sends them after it reconnects, so
    a message counts as delivered only when its PUBACK arrives (``on_publish``).
    """

    def __init__(self, port: int, base_ms: int) -> None:
        self.base_ms = base_ms
        self.acked: set[int] = set()
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="noloss-publisher",
                                  clean_session=False)
        self.client.on_connect = lambda *_: self.connected.set()
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.on_publish = self._on_publish
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, _client: mqtt.Client, _userdata: object, mid: int, *_: object) -> None:
        with self.cond:
            self.acked.add(mid)
            self.cond.notify_all()

    def payload(self, n: int) -> tuple[str, bytes]:
        value = round(15.0 + (n % 1000) / 100, 2)
        return f"zigbee2mqtt/th{n % SENSORS}", json.dumps({"temperature": value,
                                                           "last_seen": self.base_ms + n * 1000}).encode()

    def publish(self, numbers: range) -> None:
        assert self.connected.wait(30), "publisher not connected"
        mids = set()
        for n in numbers:
            topic, payload = self.payload(n)
            info = self.client.publish(topic, payload, qos=1)
            assert info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN), mqtt.error_string(info.rc)
            mids.add(info.mid)
        with self.cond:
            assert self.cond.wait_for(lambda: mids <= self.acked, timeout=120), "broker never acknowledged"
            self.acked -= mids

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_broker_restart_and_collector_kill_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    broker = MosquittoBroker(tmp_path / "broker", max_inflight_messages=100).start()
    config = write_config(tmp_path, broker.port)
    db = tmp_path / "archmon.db"
    collector = Collector(config, tmp_path / "collector.log")
    status = StatusWatcher(broker.port)
    base_ms = int(time.time() * 1000) - 3 * 86_400_000
    publisher = Publisher(broker.port, base_ms)
    try:
        collector.start(status)
        publisher.publish(range(0, 2000))
        wait_for(lambda: count(db) >= 500, "first readings")
        broker.restart()  # the collector and publisher reconnect by themselves; queued messages persist
        publisher.publish(range(2000, 3500))
        wait_for(lambda: count(db) >= 3000, "readings after the broker restart")
        collector.signal(signal.SIGKILL)  # a crash: unacknowledged messages stay with the broker
        publisher.publish(range(3500, TOTAL))  # published while the collector is down
        collector.start(status)
        wait_for(lambda: count(db) >= TOTAL, f"all {TOTAL} readings")
        collector.signal(signal.SIGTERM)
        assert collector.proc is not None and collector.proc.returncode == 0
    finally:
        publisher.close()
        status.close()
        if collector.proc and collector.proc.poll() is None:
            collector.proc.kill()
        broker.close()

    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT s.sensor, r.ts, r.value FROM readings r JOIN series s ON s.id = r.series_id"
        ).fetchall()
        counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    expected = {}
    for n in range(TOTAL):
        topic, payload = publisher.payload(n)
        expected[(topic.rsplit("/", 1)[1], base_ms + n * 1000)] = json.loads(payload)["temperature"]
    got = {(sensor, ts): value for sensor, ts, value in rows}
    assert len(rows) == TOTAL, f"{len(rows)} rows stored"
    assert got == expected
    assert counters.get("quarantined", 0) == 0
    assert counters["received"] >= TOTAL  # redeliveries are received again and stored once
