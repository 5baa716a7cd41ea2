"""Memory and start-up of the whole service with 10,000 sensors (DESIGN.md §10, "memory with 10,000 sensors").

Builds a config with ``--sensors`` Zigbee2MQTT temperature/humidity sensors spread over 100 paper-profile
rooms, starts the real ``archmon.app.Service`` (alert engine on) against a temporary Mosquitto, and
publishes ``--rounds`` rounds of one QoS 1 message per sensor (with a ``last_seen`` device time) from a
child process, so the publisher's memory is not counted. Prints the service's resident memory (after
start, after each round, peak), memory per sensor, start-up time by phase, ingest time per round and
database size per reading. Figures only: nothing is asserted.

Run: .venv/bin/python bench/bench_memory.py [--sensors 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import sqlite3
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_ingest import stored_bytes

ROOMS = 100
ROUND_STEP_MS = 60_000  # device time between rounds: one reading a minute per sensor
STORE_TIMEOUT_S = 600.0


def rss_kib() -> tuple[int, int]:
    """(current resident set, peak resident set) of this process in KiB, from /proc/self/status."""
    found: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                found[name] = int(value.split()[0])
    return found["VmRSS"], found["VmHWM"]


def write_config(folder: Path, port: int, sensors: int) -> Path:
    """An archmon.toml with ``sensors`` Zigbee2MQTT temperature/humidity sensors in ``ROOMS`` paper rooms."""
    # no calibration records here: the site-wide "uncalibrated" warning would be the one alert the data
    # does not cause (bench_windows counts every other alert as a wrong window)
    parts = ['[storage]\nsqlite_path = "bench.db"\n[alerts.calibration]\nuncalibrated = false\n']
    parts += [f'[[rooms]]\nid = "room{r:02d}"\nprofile = "paper"\n' for r in range(ROOMS)]
    parts.append(f'[[mqtt]]\nid = "z2m"\nport = {port}\nclient_id = "bench-memory"\n')
    parts += [
        f'[[sensors]]\nid = "th{i:05d}"\nroom = "room{i % ROOMS:02d}"\nkind = "temperature_humidity"\n'
        f'source = "z2m"\ntopic = "zigbee2mqtt/th{i:05d}"\nformat = "zigbee2mqtt"\n'
        for i in range(sensors)
    ]
    path = folder / "archmon.toml"
    path.write_text("".join(parts), encoding="utf-8")
    return path


def connect_publisher(port: int, client_id: str) -> Any:
    """A paho client on the local broker, its network thread running, 1,000 QoS 1 messages in flight."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publisher(port: int, sensors: int, commands: Connection) -> None:
    """Child process: for each round number received, publish one QoS 1 message per sensor and reply."""
    client = connect_publisher(port, "bench-memory-pub")
    commands.send("ready")
    while True:
        message = commands.recv()
        if message is None:
            break
        round_no, base_ms = message
        start = time.perf_counter()
        infos = []
        for i in range(sensors):
            payload = json.dumps({
                "temperature": round(20.0 + (i % 30) / 10 + round_no * 0.1, 2),
                "humidity": round(50.0 + (i % 20) / 10, 2),
                "last_seen": base_ms + round_no * ROUND_STEP_MS + i % 1000,
            })
            infos.append(client.publish(f"zigbee2mqtt/th{i:05d}", payload, qos=1))
        for info in infos:
            info.wait_for_publish(120)
        commands.send(time.perf_counter() - start)
    client.loop_stop()
    client.disconnect()


def stored_readings(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])


def wait_stored(db: Path, expected: int) -> None:
    deadline = time.monotonic() + STORE_TIMEOUT_S
    while stored_readings(db) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {stored_readings(db)} of {expected} readings stored after {STORE_TIMEOUT_S} s")
        time.sleep(0.05)


def run(sensors: int, rounds: int, inflight: int, folder: Path) -> None:
    from archmon.app import Service
    from archmon.config import load_config
    from tests.fixtures.mosquitto import MosquittoBroker

    gc.collect()
    rss_base, _ = rss_kib()
    broker = MosquittoBroker(folder / "broker", max_inflight_messages=inflight).start()
    service: Service | None = None
    child = None
    parent_end, child_end = mp.get_context("spawn").Pipe()
    try:
        child = mp.get_context("spawn").Process(target=publisher, args=(broker.port, sensors, child_end), daemon=True)
        child.start()
        if parent_end.recv() != "ready":
            raise RuntimeError("publisher did not start")
        path = write_config(folder, broker.port, sensors)

        t0 = time.perf_counter()
        config = load_config(path)
        t1 = time.perf_counter()
        service = Service(config)
        t2 = time.perf_counter()
        service.start()
        if not all(source.wait_connected(STORE_TIMEOUT_S) for source in service.sources().values()):
            raise RuntimeError("service did not connect and subscribe")
        t3 = time.perf_counter()
        gc.collect()
        rss_started, _ = rss_kib()

        print(f"sensors: {sensors} Zigbee2MQTT temperature/humidity in {ROOMS} paper rooms, alert engine "
              f"{'on' if service.alerts is not None else 'OFF (alerts not importable)'}, "
              f"mosquitto max_inflight_messages {inflight}")
        print(f"start-up             : {t3 - t0:8.2f} s  (load_config {t1 - t0:.2f} s, Service() {t2 - t1:.2f} s, "
              f"start + connect + subscribe {t3 - t2:.2f} s; {len(service.sources()['z2m'].topics)} topic filters)")
        db = service.db_path
        base_ms = int(time.time() * 1000) - 3_600_000
        rss_rounds = []
        for round_no in range(rounds):
            start = time.perf_counter()
            parent_end.send((round_no, base_ms))
            wait_stored(db, 2 * sensors * (round_no + 1))
            stored_s = time.perf_counter() - start
            publish_s = parent_end.recv()
            alerts_ok = service._alert_feed.join(STORE_TIMEOUT_S) if service.alerts is not None else True
            judged_s = time.perf_counter() - start
            rss_now, _ = rss_kib()
            rss_rounds.append(rss_now)
            print(f"round {round_no + 1:<3}            : {stored_s:8.2f} s to store {2 * sensors} readings "
                  f"({sensors / stored_s:.0f} msg/s; publishing took {publish_s:.2f} s; alert engine caught up "
                  f"after {judged_s:.2f} s{'' if alerts_ok else ' TIMED OUT'}); RSS {rss_now / 1024:.1f} MiB")
        _, peak = rss_kib()
        gc.collect()
        rss_end, _ = rss_kib()
        readings = stored_readings(db)
        service.stop()
        service = None
        db_bytes = stored_bytes(db)

        mib = 1024
        print(f"RSS before service   : {rss_base / mib:8.1f} MiB (interpreter and imports)")
        print(f"RSS after start      : {rss_started / mib:8.1f} MiB (+{(rss_started - rss_base) / mib:.1f} MiB, "
              f"{(rss_started - rss_base) / sensors:.2f} KiB per sensor)")
        print(f"RSS after ingest     : {rss_end / mib:8.1f} MiB (+{(rss_end - rss_base) / mib:.1f} MiB, "
              f"{(rss_end - rss_base) / sensors:.2f} KiB per sensor)")
        print(f"peak RSS (VmHWM)     : {peak / mib:8.1f} MiB ({(peak - rss_base) / sensors:.2f} KiB per sensor "
              "above the interpreter)")
        print(f"database size        : {db_bytes / readings:8.1f} bytes per reading ({readings} readings, "
              f"{db_bytes / 1e6:.1f} MB incl. rollups and alert tables, after a WAL checkpoint)")
    finally:
        if service is not None:
            service.stop()
        if child is not None:
            if child.is_alive():
                parent_end.send(None)
            child.join(10)
            if child.is_alive():
                child.kill()
                child.join()
        parent_end.close()
        broker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inflight", type=int, default=1000, help="mosquitto max_inflight_messages")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        run(args.sensors, args.rounds, args.inflight, Path(tmp))


if __name__ == "__main__":
    main()
