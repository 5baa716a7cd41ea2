"""Helpers for the forwarding fault tests: a site forwarding to a real server, a QoS 1 stream with device time,
and the exact comparison of what the site and the server hold."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from archmon.paho import stop_network_loop
from collector.store import value_sql
from tests.archmon.operations import ArchmonProcess, query
from tests.fixtures.tsdb import ExportedPoint
from tests.fixtures.waiting import wait_for

SITE = "fwd"
SENSORS = 10
SENSOR = ('[[sensors]]\nid = "th{i}"\nroom = "{room}"\nsource = "b"\ntopic = "zigbee2mqtt/th{i}"\n'
          'format = "zigbee2mqtt"\n')


def write_site(folder: Path, broker_port: int, forward: str) -> Path:
    """``archmon.toml`` of a site with 10 sensors in two rooms and ``forward`` as its ``[forward.influxdb]``."""
    path = folder / "archmon.toml"
    sensors = "".join(SENSOR.format(i=i, room="paper" if i % 2 == 0 else "film") for i in range(SENSORS))
    path.write_text(
        f'[site]\nname = "{SITE}"\n[service]\nstop_timeout_s = 10\n[http]\nenabled = false\n'
        '[[rooms]]\nid = "paper"\n[[rooms]]\nid = "film"\n'
        f'[[mqtt]]\nid = "b"\nport = {broker_port}\nclient_id = "archmon-fwd-test"\nreconnect_max_s = 1\n'
        f"{sensors}[forward.influxdb]\nretry_min_s = 0.1\nretry_max_s = 1\ntimeout_s = 2\n{forward}\n",
        encoding="utf-8")
    return path


class Stream:
    """A persistent-session QoS 1 publisher: reading ``n`` is ``th{n % 10}`` at ``base + n s``, value from ``n``."""

    def __init__(self, port: int, base_ms: int) -> None:
        self.base_ms = base_ms
        self._acked: set[int] = set()
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fwd-stream", clean_session=False)
        self.client.on_connect = lambda *_: self._connected.set()
        self.client.on_publish = self._on_publish
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, _client: mqtt.Client, _userdata: object, mid: int, *_: object) -> None:
        with self._cond:
            self._acked.add(mid)
            self._cond.notify_all()

    def value(self, n: int) -> float:
        return round(18.0 + (n % 500) / 100, 2)

    def publish(self, numbers: range, *, pace_s: float = 0.0, hold_at: int | None = None,
                until: threading.Event | None = None) -> None:
        """Publish and wait until the broker has every message (PUBACK); before reading ``hold_at``, wait for
        ``until`` (so a fault the test injects falls inside the stream however fast or slow the machine is)."""
        assert self._connected.wait(30), "publisher not connected"
        mids = set()
        for n in numbers:
            if n == hold_at and until is not None:
                assert until.wait(180), "the test never released the stream"
            payload = json.dumps({"temperature": self.value(n), "last_seen": self.base_ms + n * 1000})
            mids.add(self.client.publish(f"zigbee2mqtt/th{n % SENSORS}", payload, qos=1).mid)
            if pace_s:
                time.sleep(pace_s)  # a stream over time, not one burst (the fault must fall inside it)
        with self._cond:
            assert self._cond.wait_for(lambda: mids <= self._acked, timeout=120), "broker never acknowledged"

    def expected(self, total: int) -> list[ExportedPoint]:
        """What the server must hold after ``range(total)`` was published."""
        return sorted(ExportedPoint("temperature", (("room", "paper" if n % SENSORS % 2 == 0 else "film"),
                                                    ("sensor", f"th{n % SENSORS}"), ("site", SITE)),
                                    self.value(n), self.base_ms + n * 1000) for n in range(total))

    def expected_local(self, total: int) -> list[tuple[str, int, float]]:
        return sorted((f"th{n % SENSORS}", self.base_ms + n * 1000, self.value(n)) for n in range(total))

    def close(self) -> None:
        stop_network_loop(self.client)
        self.client.disconnect()


def local(db: Path) -> list[tuple[str, int, float]]:
    """Every stored temperature reading as ``(sensor, ts, value)``."""
    rows = query(db, f"SELECT s.sensor, r.ts, {value_sql('r.value')} FROM readings r"
                     " JOIN series s ON s.id = r.series_id WHERE s.quantity = 'temperature'")
    return sorted((str(a), int(b), float(c)) for a, b, c in rows)


def outbox_rows(db: Path) -> int:
    rows = query(db, "SELECT rows FROM forward_totals")
    return int(rows[0][0]) if rows else -1


def forwarded(db: Path) -> int:
    rows = query(db, "SELECT forwarded FROM forward_totals")
    return int(rows[0][0]) if rows else 0


def forwarding_alerts(db: Path) -> list[tuple[str, str]]:
    return [(str(a), str(b)) for a, b in query(db, "SELECT state, sensor FROM alert_alerts WHERE rule = 'forwarding'"
                                                    " ORDER BY id")]


def start(config: Path, log: Path) -> ArchmonProcess:
    """``archmon run`` with its own log, once it has subscribed."""
    process = ArchmonProcess(config, log)
    process.wait_log("mqtt[b]: subscribed", "the MQTT subscription")
    return process


def wait_drained(db: Path, total: int, timeout: float = 120) -> None:
    """Until every reading is stored and the outbox is empty."""
    wait_for(lambda: len(local(db)) >= total and outbox_rows(db) == 0, f"{total} readings stored and forwarded",
             timeout)
