"""The load ``bench_windows.py`` puts on the service: the readings of ``sensors`` sensors for any minute, the
child process that seeds the store with hours of them, and the child process that publishes them over MQTT.

Every reading is a pure function of (sensor, minute, quantity) (:func:`value`): the seeded history, the live
rounds and the late rounds continue one another, and stay inside every limit of the paper profile unless a
round makes some sensors humid on purpose.
"""

from __future__ import annotations

import json
import math
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.bench_memory import ROOMS, connect_publisher

__all__ = ["MINUTE_MS", "minute_readings", "publisher", "seed", "value"]

MINUTE_MS = 60_000


def value(sensor: int, minute: int, quantity: str) -> float:
    """The reading of sensor ``sensor`` at absolute minute ``minute``: a slow daily wave plus noise,
    inside the paper band and every stability, rate, stuck and mould limit."""
    noise = ((minute * 7 + sensor) % 5) / 100
    if quantity == "temperature":
        return round(19.0 + (sensor % 30) / 10 + 0.4 * math.sin(minute / 229.18 + sensor) + noise, 2)
    return round(50.0 + (sensor % 20) / 10 + 1.5 * math.sin(minute / 229.18 + sensor / 3) + noise, 2)


def minute_readings(sensors: int, minute: int) -> list[Any]:
    """Every sensor's two readings of one minute (time in device ms, spread over the first second)."""
    from archmon.domain import Reading

    out = []
    ts = minute * MINUTE_MS
    for i in range(sensors):
        sensor, room = f"th{i:05d}", f"room{i % ROOMS:02d}"
        out.append(Reading(sensor, "temperature", value(i, minute, "temperature"), ts + i % 1000, room))
        out.append(Reading(sensor, "humidity", value(i, minute, "humidity"), ts + i % 1000, room))
    return out


def seed(db: Path, sensors: int, first_minute: int, minutes: int, tz_name: str, done: Connection) -> None:
    """Child process: write ``minutes`` of history through ``SqliteStore.write_many`` (rollups included)."""
    from zoneinfo import ZoneInfo

    from collector.records import Batch
    from collector.store import SqliteStore

    store = SqliteStore(db, tz=ZoneInfo(tz_name))
    started = time.perf_counter()
    try:
        for minute in range(first_minute, first_minute + minutes, 5):
            readings = [r for m in range(minute, min(minute + 5, first_minute + minutes))
                        for r in minute_readings(sensors, m)]
            store.write_many([Batch(readings=readings[k:k + 5000]) for k in range(0, len(readings), 5000)])
    finally:
        store.close()
    done.send(time.perf_counter() - started)


def publisher(port: int, sensors: int, commands: Connection) -> None:
    """Child process: for each ``(minute, humid)`` received, publish one QoS 1 message per sensor (the first
    ``humid`` of them at 70 %RH, out of the band) and reply."""
    client = connect_publisher(port, "bench-windows-pub")
    commands.send("ready")
    while True:
        message = commands.recv()
        if message is None:
            break
        minute, humid, offset_ms = message
        infos = []
        for i in range(sensors):
            payload = json.dumps({"temperature": value(i, minute, "temperature"),
                                  "humidity": 70.0 if i < humid else value(i, minute, "humidity"),
                                  "last_seen": minute * MINUTE_MS + offset_ms + i % 1000})
            infos.append(client.publish(f"zigbee2mqtt/th{i:05d}", payload, qos=1))
        for info in infos:
            info.wait_for_publish(120)
        commands.send("published")
    client.loop_stop()
    client.disconnect()
