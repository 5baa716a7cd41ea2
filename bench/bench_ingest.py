"""Ingest throughput of the whole pipeline vs a bare paho subscriber on the same Mosquitto.

DESIGN.md §10: archmon's ingest (MQTT → decode → validate → durable SQLite commit → ack) should reach
at least 50 % of a bare paho subscriber that only counts messages. Both consume the same number of
QoS 1 messages queued for a persistent session, so only consumption is timed.

Run: .venv/bin/python bench/bench_ingest.py [--messages 20000] [--inflight 1000]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archmon.config import load_config
from bench._suite import BenchResult, Scale, ratio_row
from bench.bench_mqtt_bare import measure_bare, prequeue
from tests.fixtures.mosquitto import MosquittoBroker

SENSORS = 20


def queue_messages(port: int, client_id: str, count: int, base_ms: int) -> None:
    """Create a persistent session for ``client_id`` and queue ``count`` messages for it."""
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    sub.connect("127.0.0.1", port)
    sub.subscribe("zigbee2mqtt/#", qos=1)
    sub.loop(1.0)
    sub.disconnect()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{client_id}-pub")
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    infos = []
    for n in range(count):
        payload = json.dumps({"temperature": 18 + (n % 50) / 10, "humidity": 50.0, "last_seen": base_ms + n * 1000})
        infos.append(pub.publish(f"zigbee2mqtt/th{n % SENSORS}", payload, qos=1))
    for info in infos:
        info.wait_for_publish(60)
    pub.loop_stop()
    pub.disconnect()


def bare(port: int, count: int, client_id: str = "bench-bare") -> float:
    """Seconds a bare paho subscriber (parses JSON, auto-acks) takes to receive ``count`` queued messages."""
    prequeue("127.0.0.1", port, client_id, count)
    return measure_bare("127.0.0.1", port, client_id, count).seconds


def pipeline(port: int, count: int, folder: Path) -> tuple[float, int]:
    """Seconds archmon's service takes until ``count`` queued messages are durable in SQLite."""
    from archmon.app import Service

    sensors = "".join(f'[[sensors]]\nid = "th{i}"\nroom = "r"\nsource = "b"\ntopic = "zigbee2mqtt/th{i}"\n'
                      f'format = "zigbee2mqtt"\n' for i in range(SENSORS))
    path = folder / "archmon.toml"
    path.write_text(f'[storage]\nsqlite_path = "bench.db"\n[[rooms]]\nid = "r"\n[[mqtt]]\nid = "b"\nport = {port}\n'
                    f'client_id = "bench-archmon"\n{sensors}', encoding="utf-8")
    queue_messages(port, "bench-archmon", count, int(time.time() * 1000) - 86_400_000)
    service = Service(load_config(path))
    start = time.perf_counter()
    service.start()
    db = folder / "bench.db"
    while True:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
        if rows >= 2 * count:  # temperature and humidity per message
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    service.stop()
    return elapsed, stored_bytes(db)


def stored_bytes(db: Path) -> int:
    """Size of the database after moving the WAL into it: the data, not the write-ahead log."""
    with sqlite3.connect(db) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        raise RuntimeError(f"{db}: WAL checkpoint blocked by another connection; size would include the WAL")
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


SIZES: dict[str, int] = {"toy": 300, "quick": 10_000, "full": 40_000}  # messages (2 readings each)


def suite(scale: Scale, folder: Path) -> BenchResult:
    """The suite's ingest figure: archmon's pipeline against the bare subscriber, run before and after it
    (their mean is the baseline, so a change of machine load during the run shows in both)."""
    messages = SIZES[scale]
    broker = MosquittoBroker(folder / "broker", max_inflight_messages=1000, max_queued_messages=1_000_000).start()
    try:
        before = bare(broker.port, messages, "bench-bare-1")
        t_pipe, db_bytes = pipeline(broker.port, messages, folder)
        after = bare(broker.port, messages, "bench-bare-2")
    finally:
        broker.close()
    r_bare = messages / ((before + after) / 2)
    r_pipe = messages / t_pipe
    return BenchResult("ingest", [ratio_row(
        "messages/s, MQTT QoS 1 → durable SQLite commit (2 readings each)", r_pipe, r_bare, "msg/s",
        "bare paho subscriber parsing the JSON", goal="ratio ≥ 0.5", at_least=0.5,
        note=f"bare runs {messages / before:,.0f} and {messages / after:,.0f} msg/s; "
             f"{db_bytes / (2 * messages):.1f} B/reading on disk")],
        sizes={"messages": messages, "sensors": SENSORS, "mosquitto_max_inflight": 1000})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--inflight", type=int, default=1000, help="mosquitto max_inflight_messages")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoBroker(Path(tmp) / "broker", max_inflight_messages=args.inflight).start()
        try:
            t_bare = bare(broker.port, args.messages)
            t_pipe, db_bytes = pipeline(broker.port, args.messages, Path(tmp))
        finally:
            broker.close()
    r_bare, r_pipe = args.messages / t_bare, args.messages / t_pipe
    print(f"messages: {args.messages} (2 readings each), mosquitto max_inflight_messages {args.inflight}")
    print(f"bare paho subscriber : {r_bare:10.0f} msg/s")
    print(f"archmon pipeline     : {r_pipe:10.0f} msg/s ({2 * r_pipe:.0f} readings/s, durable)")
    print(f"ratio                : {r_pipe / r_bare:10.1%} (goal >= 50 %)")
    print(f"database size        : {db_bytes / (2 * args.messages):10.1f} bytes per reading"
          " (incl. rollups, after a WAL checkpoint)")


if __name__ == "__main__":
    main()
