"""Nothing lost: QoS 1 readings through a broker restart and collector SIGKILLs, stored exactly once.

The second test sends payloads without device time (stamped with the receive time) and kills the
collector while messages whose readings are committed still wait for their PUBACK: the broker sends
them again (same packet id, DUP), and the collector's receipts must stamp them with the same time.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from archmon.domain import RawMessage
from archmon.paho import stop_network_loop
from collector.store import value_sql
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.waiting import wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow]

TOTAL = 5_000
SENSORS = 10
ROOT = Path(__file__).resolve().parents[2]


def write_config(folder: Path, port: int, *, sensors_n: int = SENSORS, storage: str = "") -> Path:
    sensors = "\n".join(
        f'[[sensors]]\nid = "th{i}"\nroom = "paper"\nsource = "broker"\n'
        f'topic = "zigbee2mqtt/th{i}"\nformat = "zigbee2mqtt"\n'
        for i in range(sensors_n)
    )
    path = folder / "archmon.toml"
    path.write_text(
        f'[site]\nname = "noloss"\n[storage]\nsqlite_path = "{folder / "archmon.db"}"\n{storage}'
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
        # a generous bound, not a speed: after a kill the service first judges what it stored unjudged
        assert status.online.wait(120), f"collector did not come online:\n{self.log.read_text()[-3000:]}"

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
        stop_network_loop(self.client)
        self.client.disconnect()


class Publisher:
    """A persistent-session QoS 1 publisher that waits for every PUBACK.

    paho keeps QoS 1 messages published while disconnected and sends them after it reconnects, so
    a message counts as delivered only when its PUBACK arrives (``on_publish``).
    """

    def __init__(self, port: int, base_ms: int, *, max_inflight: int = 20) -> None:
        self.base_ms = base_ms
        self.acked: set[int] = set()
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="noloss-publisher",
                                  clean_session=False)
        self.client.on_connect = lambda *_: self.connected.set()
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.on_publish = self._on_publish
        self.client.max_inflight_messages_set(max_inflight)  # paho's own limit (0: none)
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
        stop_network_loop(self.client)
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
            f"SELECT s.sensor, r.ts, {value_sql('r.value')} FROM readings r JOIN series s ON s.id = r.series_id"
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


# -- redelivered messages without device time ---------------------------------------------------------

BARE_TOTAL = 4_000
BARE_SENSORS = 100  # a sensor's messages are 100 apart, so two never share a receive millisecond


class BarePublisher(Publisher):
    """Payloads without device time, as Zigbee2MQTT sends them by default; the value identifies the message.

    It does not limit its own messages in flight (paho's default is 20), so it publishes faster than the
    collector stores and the broker builds up a backlog for the collector.
    """

    def __init__(self, port: int) -> None:
        super().__init__(port, 0, max_inflight=0)

    def payload(self, n: int) -> tuple[str, bytes]:
        return f"zigbee2mqtt/th{n % BARE_SENSORS}", json.dumps({"temperature": bare_value(n)}).encode()


def bare_value(n: int) -> float:
    return round(20.0 + n / 10_000, 4)  # distinct, and too steady per sensor to raise alerts


def mqtt_packets(buffer: bytearray) -> list[bytes]:
    """Take the complete MQTT control packets off the front of ``buffer`` (a TCP stream cut anywhere)."""
    packets = []
    while len(buffer) >= 2:
        length, multiplier, i = 0, 1, 1
        while True:  # the remaining length: a variable-length integer after the first byte
            if i >= len(buffer):
                return packets
            byte = buffer[i]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            i += 1
            if not byte & 0x80:
                break
        if len(buffer) < i + length:
            return packets
        packets.append(bytes(buffer[:i + length]))
        del buffer[:i + length]
    return packets


class AckDropProxy:
    """A TCP relay from the collector to the broker that can drop what the collector sends.

    While ``dropping`` is set the collector still receives and stores messages, but its PUBACKs never
    reach the broker: the crash window between commit and acknowledgement, held open on demand. The
    relay reads the collector's stream packet by packet, so it knows which acknowledgements it dropped
    (``dropped_acks``: packet ids), each one of a reading the collector had committed.
    """

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.dropping = threading.Event()
        self._lock = threading.Lock()
        self._dropped_acks: set[int] = set()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def dropped_acks(self) -> set[int]:
        """Packet ids of the PUBACKs dropped so far."""
        with self._lock:
            return set(self._dropped_acks)

    def _accept(self) -> None:
        while True:
            try:
                collector, _ = self._listener.accept()
            except OSError:
                return
            try:
                broker = socket.create_connection(("127.0.0.1", self.broker_port))
            except OSError:
                collector.close()
                continue
            with self._lock:
                self._pairs.append((collector, broker))
            threading.Thread(target=self._pump, args=(collector, broker, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(broker, collector, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_collector: bool) -> None:
        pending = bytearray()
        try:
            while data := src.recv(65536):
                if not from_collector:
                    dst.sendall(data)
                    continue
                pending.extend(data)
                relayed = bytearray()
                for packet in mqtt_packets(pending):
                    if not self.dropping.is_set():
                        relayed += packet
                    elif packet[0] >> 4 == 4:  # PUBACK: its packet id follows the 2-byte fixed header
                        with self._lock:
                            self._dropped_acks.add(int.from_bytes(packet[2:4], "big"))
                if relayed:
                    dst.sendall(relayed)
        except OSError:
            pass
        finally:
            for sock in (src, dst):  # one side gone: the other sees the connection end too
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Close every relayed connection; nothing read from the collector before is forwarded."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self._listener.close()
        self.cut()


def test_redelivery_without_device_time_after_a_kill_is_stored_once(tmp_path: Path) -> None:
    broker = MosquittoBroker(tmp_path / "broker").start()  # Mosquitto's default max_inflight_messages (20)
    proxy = AckDropProxy(broker.port)
    config = write_config(tmp_path, proxy.port, sensors_n=BARE_SENSORS, storage="flush_interval_ms = 20\n")
    db = tmp_path / "archmon.db"
    collector = Collector(config, tmp_path / "collector.log")
    status = StatusWatcher(broker.port)
    publisher = BarePublisher(broker.port)
    try:
        collector.start(status)  # "online" comes before the subscription: start again on the stored session
        collector.signal(signal.SIGTERM)
        collector.start(status)
        publishing = concurrent.futures.ThreadPoolExecutor(1).submit(publisher.publish, range(BARE_TOTAL))
        wait_for(lambda: count(db) >= 200, "first readings")  # the broker holds the rest as a backlog
        proxy.dropping.set()  # from now on readings are committed but their PUBACKs vanish
        # An acknowledgement dropped, not "a reading stored after the drop": the broker sends no more than its
        # in-flight window (20) unacknowledged, so if every reading of that window was committed before the
        # drop but acknowledged after it (a loaded machine), no further reading ever comes.
        wait_for(lambda: bool(proxy.dropped_acks), "an acknowledgement of a stored reading dropped")
        collector.signal(signal.SIGKILL)
        proxy.cut()
        proxy.dropping.clear()
        killed_at = count(db)
        stored_unacked = len(proxy.dropped_acks)  # stored, acknowledgement never at the broker
        assert stored_unacked > 0
        assert BARE_TOTAL - killed_at >= 1000, f"backlog too small at the kill ({killed_at} stored)"
        publishing.result(timeout=60)  # every message reached the broker
        collector.start(status)
        wait_for(lambda: count(db) >= BARE_TOTAL, f"all {BARE_TOTAL} readings")
        collector.signal(signal.SIGTERM)
        assert collector.proc is not None and collector.proc.returncode == 0
    finally:
        publisher.close()
        status.close()
        if collector.proc and collector.proc.poll() is None:
            collector.proc.kill()
        proxy.close()
        broker.close()

    with sqlite3.connect(db) as conn:
        per_value = dict(conn.execute(_PER_VALUE))
        counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
    assert per_value == {bare_value(n): 1 for n in range(BARE_TOTAL)}  # every message exactly once
    restamped = counters.get("redelivered_restamped", 0)
    # each message stored before the kill but never acknowledged came back (DUP) and hit its receipt;
    # more may have: acknowledgements still on their way when the proxy started dropping
    assert restamped >= stored_unacked > 0, counters
    assert counters.get("redelivered", 0) >= restamped
    assert counters["duplicates"] == restamped  # nothing else collided
    assert counters.get("quarantined", 0) == 0


# -- in-process service: a copy sent again before the first copy's commit, a stalled store, replays ------


class RunningService:
    """``archmon.app.Service`` in this process (the production wiring of source, pipeline, writer and store)."""

    def __init__(self, folder: Path, port: int, *, keepalive_s: int = 30) -> None:
        from archmon.app import Service
        from archmon.config import load_config

        config_path = write_config(folder, port, sensors_n=BARE_SENSORS, storage="flush_interval_ms = 20\n")
        text = config_path.read_text(encoding="utf-8").replace(
            'client_id = "archmon-noloss"', f'client_id = "archmon-noloss"\nkeepalive_s = {keepalive_s}')
        config_path.write_text(text, encoding="utf-8")
        self.service = Service(load_config(config_path))
        self.db = folder / "archmon.db"
        self.source = self.service.sources()["broker"]

    def __enter__(self) -> RunningService:
        self.service.start()
        assert self.source.wait_connected(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.service.stop()

    def counters(self) -> dict[str, int]:
        return self.service.store.counters()


_PER_VALUE = f"SELECT round({value_sql()}, 4) AS v, count(*) FROM readings GROUP BY v"


def values_stored(db: Path) -> dict[float, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return dict(conn.execute(_PER_VALUE))


def write_lock(db: Path) -> sqlite3.Connection:
    """Another connection holding the write lock: every commit of the service waits and is retried."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_copy_sent_again_before_the_first_copys_commit_is_stored_once(tmp_path: Path) -> None:
    broker = MosquittoBroker(tmp_path / "broker").start()
    proxy = AckDropProxy(broker.port)
    publisher = BarePublisher(broker.port)
    try:
        with RunningService(tmp_path, proxy.port) as running:
            lock = write_lock(running.db)
            try:
                publisher.publish(range(1))  # no device time: stamped with its receive time
                wait_for(lambda: running.service.writer.stats().failures >= 1, "the first copy's commit held back")
                proxy.cut()  # the connection drops while the commit waits; the broker sends the copy again
                wait_for(lambda: running.source.stats()["received"] >= 2, "the copy sent again (DUP)")
                assert running.source.stats()["acked"] == 0
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            wait_for(lambda: running.source.stats()["acked"] == 1, "the copy's acknowledgement")
            assert running.service.writer.flush(10)
            counters = running.counters()
        assert values_stored(tmp_path / "archmon.db") == {bare_value(0): 1}
        assert counters["redelivered"] == 1 and counters["redelivered_restamped"] == 1
        assert counters["stored"] == 1 and counters["duplicates"] == 1
    finally:
        publisher.close()
        proxy.close()
        broker.close()


def test_a_stalled_store_holds_messages_unacknowledged_and_keeps_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="collector.mqtt.paho")
    broker = MosquittoBroker(tmp_path / "broker").start()  # in flight: 20 unacknowledged messages at most
    publisher = BarePublisher(broker.port)
    total = 60
    try:
        with RunningService(tmp_path, broker.port, keepalive_s=5) as running:
            running.service.writer._max_queued = 5  # a small writer queue: full after a few messages
            lock = write_lock(running.db)
            try:
                publisher.publish(range(total))
                wait_for(lambda: running.source.stats()["held"] >= 1, "the source holding messages")

                def pongs() -> int:
                    return sum("Received PINGRESP" in r.getMessage() for r in caplog.records)

                # two keepalive rounds (10 s) with the store stalled: longer than the broker's 1.5 x keepalive
                wait_for(lambda: pongs() >= 2, "two keepalive round trips while the store is stalled", timeout=30)
                stats = running.source.stats()
                assert stats["disconnects"] == 0 and stats["connects"] == 1
                assert stats["acked"] == 0 and stats["received"] >= 20  # nothing unstored is acknowledged
                assert running.service.store.count_readings() == 0
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            wait_for(lambda: running.source.stats()["acked"] == total, f"all {total} acknowledged", timeout=60)
        assert values_stored(tmp_path / "archmon.db") == {bare_value(n): 1 for n in range(total)}
        assert "exceeded timeout" not in broker.log_tail(200)
    finally:
        publisher.close()
        broker.close()


class StablePublisher(BarePublisher):
    """Messages 0..4 distinct; from 5 on sensor th0 reports the same ``21.0`` every time (a stable room: ESPHome and
    Shelly send plain numbers, Zigbee2MQTT without ``last_seen`` the same JSON)."""

    def payload(self, n: int) -> tuple[str, bytes]:
        if n < 5:
            return super().payload(n)
        return "zigbee2mqtt/th0", json.dumps({"temperature": 21.0}).encode()


def test_after_a_broker_crash_no_acknowledged_reading_is_lost_and_possible_copies_are_counted(tmp_path: Path) -> None:
    """Mosquitto restarted from persisted state older than its last sends resends them WITHOUT the DUP flag, and
    gives new messages the packet ids of messages it lost. A new reading of a stable room is byte-identical to the
    lost one under the same packet id: nothing tells it from a resend. Both are stored (a resend perhaps twice,
    counted), so no new reading is dropped as a duplicate."""
    broker = MosquittoBroker(tmp_path / "broker", extra_conf=("autosave_interval 0",)).start()  # saves on SIGUSR1
    publisher = StablePublisher(broker.port)
    try:
        with RunningService(tmp_path, broker.port) as running:  # creates the persistent session
            pass
        publisher.publish(range(5))  # queued for the stopped collector
        saves = broker.log_tail(400).count("Saving in-memory database")
        os.kill(broker.pid or 0, signal.SIGUSR1)  # the broker's last save: these 5 queued, never sent
        wait_for(lambda: broker.log_tail(400).count("Saving in-memory database") > saves, "the broker's save")
        with RunningService(tmp_path, broker.port) as running:
            wait_for(lambda: running.source.stats()["acked"] == 5, "the queued messages stored and acknowledged")
            for n in range(5, 8):  # sent after the save: lost by the broker's crash
                publisher.publish(range(n, n + 1))
            wait_for(lambda: running.source.stats()["acked"] == 8, "three more stored and acknowledged")
            broker.kill()
            broker.start()  # restores the save: the 5 come again, without DUP, under their packet ids
            wait_for(lambda: running.source.stats()["received"] >= 13, "the replayed messages")
            for n in range(8, 11):  # new readings, the same value, under the packet ids of the 3 lost ones
                publisher.publish(range(n, n + 1))
            wait_for(lambda: running.source.stats()["acked"] >= 16, "everything acknowledged")
            assert running.service.writer.flush(10)
            counters = running.counters()
            stats = running.source.stats()
        stored = values_stored(tmp_path / "archmon.db")
        assert stored[21.0] == 6  # three readings before the crash, three after: none taken for a resend
        assert {n: stored[bare_value(n)] for n in range(5)} == dict.fromkeys(range(5), 2)  # the resends, again
        assert counters.get("redelivered", 0) == 0 and counters.get("duplicates", 0) == 0  # no DUP anywhere
        assert counters["replayed_possible_duplicates"] == 8  # 5 resends and 3 new readings that look like them
        assert counters["source.broker.replayed_possible_duplicates"] == 8 and stats["replayed"] >= 8
    finally:
        publisher.close()
        broker.close()


class RefusedEveryOther(BarePublisher):
    """Even messages carry a value the test's store refuses for good (a constraint), each on its own sensor."""

    def payload(self, n: int) -> tuple[str, bytes]:
        if n % 2:
            return super().payload(n)
        return f"zigbee2mqtt/th{n % BARE_SENSORS}", json.dumps({"temperature": REFUSED}).encode()


REFUSED = 77.7


def test_messages_the_store_refuses_for_good_are_quarantined_and_acknowledged(tmp_path: Path) -> None:
    """Unacknowledged, each would keep one of the broker's 20 in-flight places and come back on every reconnect:
    20 of them stopped all ingestion from the broker."""
    from tests.fixtures.store_stall import refuse_value

    broker = MosquittoBroker(tmp_path / "broker").start()  # Mosquitto's default window: 20 in flight
    publisher = RefusedEveryOther(broker.port)
    total = 60
    try:
        with RunningService(tmp_path, broker.port) as running:
            refuse_value(running.db, REFUSED)
            publisher.publish(range(total))  # 30 refused: more than the in-flight window
            wait_for(lambda: running.source.stats()["acked"] == total, "every message acknowledged", timeout=60)
            assert running.service.writer.flush(10)
            counters = running.counters()
            kept = [q for q in running.service.store.quarantine(limit=100) if q.stage == "store"]
            assert running.source.stats()["pending"] == 0
        assert values_stored(tmp_path / "archmon.db") == {bare_value(n): 1 for n in range(1, total, 2)}
        assert counters["store_refused"] == counters["source.broker.store_refused"] == 30
        assert len(kept) == 30 and all("reading refused by the test" in q.reason for q in kept)
        assert {q.topic for q in kept} == {f"zigbee2mqtt/th{n}" for n in range(0, total, 2)}
        with RunningService(tmp_path, broker.port) as running:  # nothing comes back on the next connection
            publisher.publish(range(total + 1, total + 2))
            wait_for(lambda: running.source.stats()["acked"] == 1, "the next message")
            assert running.source.stats()["received"] == 1
    finally:
        publisher.close()
        broker.close()


def test_a_held_chunk_offered_again_keeps_its_receive_times(tmp_path: Path) -> None:
    """While the writer is full the source offers its chunk again on every loop pass, through the whole pipeline:
    the stamps must stay the receive times (they drifted by 1 ms per sensor and offer)."""
    broker = MosquittoBroker(tmp_path / "broker").start()
    publisher = BarePublisher(broker.port)  # 20 messages, 20 sensors: each stamp is its message's receive time
    total = 20
    try:
        with RunningService(tmp_path, broker.port) as running:
            first_seen: dict[float, int] = {}
            handle = running.service.pipeline.process_many

            def watched(messages: Sequence[RawMessage], **kwargs: Any) -> Future[Any]:
                for message in messages:
                    first_seen.setdefault(json.loads(message.payload)["temperature"], message.received_ms)
                return handle(messages, **kwargs)

            running.service.pipeline.process_many = watched  # type: ignore[method-assign]
            running.service.writer._max_queued = 5  # a small writer queue: full after a few messages
            lock = write_lock(running.db)
            try:
                publisher.publish(range(total))
                wait_for(lambda: running.source.stats()["held"] >= 4, "the chunk held and offered again")
            finally:
                lock.execute("ROLLBACK")
                lock.close()
            wait_for(lambda: running.source.stats()["acked"] == total, f"all {total} acknowledged", timeout=60)
        with sqlite3.connect(tmp_path / "archmon.db") as conn:
            stamps = {round(value, 4): ts for value, ts in conn.execute(f"SELECT {value_sql()}, ts FROM readings")}
        assert stamps == {round(value, 4): ts for value, ts in first_seen.items()}
    finally:
        publisher.close()
        broker.close()
