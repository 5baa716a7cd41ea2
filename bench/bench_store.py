"""Benchmark of the SQLite store: durable write throughput per batch size and bytes per stored reading.

Run: ``.venv/bin/python bench/bench_store.py [--dir DIR] [--baseline REV]``. Every commit is durable (WAL,
``synchronous=FULL``), so the batch-size-1 figure is bounded by the disk's fsync rate. The figures
printed come from one run on one machine; compare the ratios, not the absolute numbers.

``--baseline REV`` (default ``main``) also measures the write path of that git revision in the same run:
its ``archmon``, ``collector`` and ``devices`` are extracted (``git archive``) to a temporary folder and this
script's throughput step runs there in a child process, alternating with this tree's, so both see the same
machine load. The ratio printed is this tree's rate over the baseline's (below 1: this tree is slower).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from archmon.domain import Reading
from bench._sqlite_size import store_file_size
from collector.records import Batch
from collector.store import SqliteStore

TZ = ZoneInfo("Asia/Shanghai")
T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z
MINUTE = 60_000


def _readings(start: int, count: int, sensors: int) -> list[Reading]:
    """``count`` readings of ``sensors`` temperature sensors at one reading a minute each."""
    return [
        Reading(
            f"th{i % sensors:03d}", "temperature", 18.0 + (i % 97) / 10, T0 + ((start + i) // sensors) * MINUTE, "r1"
        )
        for i in range(count)
    ]


def _climate_readings(start: int, count: int, sensors: int) -> list[Reading]:
    """Like :func:`_readings`, but temperature and humidity pairs as a room's climate moves: slowly, a daily
    swing of ±1.5 ℃ / ±4 %RH with sensor noise, at the sensors' 0.1 resolution (a few histogram bins an hour;
    :func:`_readings` gives every reading a new bin, the worst case for the summaries)."""
    out = []
    for i in range(start, start + count):
        n = i // 2
        sensor, minute = n % sensors, n // sensors
        phase = math.sin(2 * math.pi * minute / 1440 + sensor)
        noise = ((n * 7919) % 11 - 5) / 100
        if i % 2 == 0:
            out.append(Reading(f"th{sensor:03d}", "temperature", round(20 + 1.5 * phase + noise, 1),
                               T0 + minute * MINUTE, "r1"))
        else:
            out.append(Reading(f"th{sensor:03d}", "humidity", round(52 + 4 * phase + 3 * noise, 1),
                               T0 + minute * MINUTE, "r1"))
    return out


DATA = {"bins-worst": _readings, "climate": _climate_readings}


def throughput(folder: Path, batch_size: int, seconds: float, tag: str = "", data: str = "bins-worst"
               ) -> tuple[float, int]:
    """Readings per second written in durable transactions of ``batch_size`` readings, for ~``seconds``."""
    store = SqliteStore(folder / f"throughput{tag}-{data}-{batch_size}.db", tz=TZ)
    make = DATA[data]
    written = 0
    try:
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            store.write(Batch(readings=make(written, batch_size, 50)))
            written += batch_size
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    return written / elapsed, written


def bytes_per_reading(folder: Path, count: int, sensors: int) -> tuple[float, float]:
    """File size per stored reading, with rollups, and after raw retention removed everything."""
    path = folder / "size.db"
    store = SqliteStore(path, tz=TZ)
    try:
        for start in range(0, count, 5000):
            store.write(Batch(readings=_readings(start, min(5000, count - start), sensors)))
    finally:
        store.close()
    size = store_file_size(path)
    return size.total / count, size.without_raw / count


def first_contact(folder: Path, sensors: int, batch_size: int) -> tuple[float, float]:
    """Readings/s storing the first reading of ``sensors`` new sensors, then a second round of the same sensors.

    Each sensor reports temperature and humidity in room ``r1``, in transactions of ``batch_size`` readings
    (what the writer merges), through ``SqliteStore.write_many``.
    """
    store = SqliteStore(folder / f"first-contact-{sensors}.db", tz=TZ)
    rates = []
    try:
        for round_no in range(2):
            readings = [
                Reading(f"s{i:05d}", quantity, 20.0 + i % 7, T0 + round_no * MINUTE, "r1")
                for i in range(sensors)
                for quantity in ("temperature", "humidity")
            ]
            started = time.perf_counter()
            for start in range(0, len(readings), batch_size):
                store.write_many([Batch(readings=readings[start : start + batch_size])])
            rates.append(len(readings) / (time.perf_counter() - started))
    finally:
        store.close()
    return rates[0], rates[1]


ROOT = Path(__file__).resolve().parents[1]


def extract_revision(rev: str, folder: Path) -> Path:
    """The packages of git revision ``rev`` in ``folder`` (for a baseline run); raises on an unknown revision."""
    data = subprocess.run(["git", "archive", "--format=tar", rev, "archmon", "collector", "devices"], cwd=ROOT,
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def throughput_elsewhere(code: Path, folder: Path, batch_size: int, seconds: float, data: str) -> float:
    """``throughput`` run by the packages in ``code`` (a child process with them first on its path)."""
    env = dict(os.environ, PYTHONPATH=str(code))
    out = subprocess.run([sys.executable, __file__, "--throughput", str(batch_size), "--seconds", str(seconds),
                          "--data", data, "--dir", str(folder)], env=env, check=True, capture_output=True,
                         text=True).stdout
    return float(json.loads(out)["rate"])


def compare(folder: Path, rev: str, seconds: float) -> None:
    """Throughput of this tree against revision ``rev``, batch sizes 1, 100 and 1000, alternating runs."""
    code = extract_revision(rev, folder / "baseline-code")
    import collector.store

    where = Path(collector.store.__file__).resolve().parents[2]
    print(f"write path of this tree ({where}) against {rev} ({code}), {seconds:g} s per run:")
    for data in DATA:
        for batch_size in (1, 100, 1000):
            base = throughput_elsewhere(code, folder, batch_size, seconds, data)
            mine = throughput(folder, batch_size, seconds, tag="mine", data=data)[0]
            print(f"  {data:>10}, batch size {batch_size:>5}: {mine:>10,.0f} readings/s, {rev}: {base:>10,.0f}"
                  f" readings/s (x{mine / base:.2f})")


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=None, help="folder for the database files (default: a tmp dir)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent per batch size")
    parser.add_argument("--size-readings", type=int, default=500_000, help="readings written for the size figure")
    parser.add_argument("--sensors", type=int, default=10_000, help="new sensors for the first-contact figure")
    parser.add_argument("--only-first-contact", action="store_true", help="print only the first-contact figure")
    parser.add_argument("--baseline", default="main", metavar="REV",
                        help="git revision whose write path is measured alongside (default main; 'none' skips it)")
    parser.add_argument("--throughput", type=int, metavar="BATCH", help=argparse.SUPPRESS)  # a baseline child
    parser.add_argument("--data", choices=sorted(DATA), default="bins-worst", help=argparse.SUPPRESS)
    parser.add_argument("--only-compare", action="store_true", help="print only the comparison with --baseline")
    args = parser.parse_args()
    if args.throughput:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            print(json.dumps({"rate": throughput(Path(tmp), args.throughput, args.seconds, data=args.data)[0]}))
        return
    if args.only_compare:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            compare(Path(tmp), args.baseline, args.seconds)
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        print(f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=FULL, files in {folder}")
        first, later = first_contact(folder, args.sensors, 500)
        print(f"first contact of {args.sensors:,} new sensors: {first:>10,.0f} readings/s;"
              f" next round {later:>10,.0f} readings/s (first/next x{first / later:.2f})")
        if args.only_first_contact:
            return
        base = None
        for batch_size in (1, 100, 1000):
            rate, written = throughput(folder, batch_size, args.seconds)
            base = base or rate
            print(
                f"batch size {batch_size:>5}: {rate:>10,.0f} readings/s durable"
                f"  ({written:,} readings, x{rate / base:,.1f} vs batch size 1)"
            )
        per_reading, rollups = bytes_per_reading(folder, args.size_readings, 50)
        print(
            f"bytes per stored reading: {per_reading:.1f} (raw + hour/day rollups + summaries + series;"
            f" {args.size_readings:,} readings of 50 sensors at 1/min); rollups and summaries alone: {rollups:.2f}"
        )
        if args.baseline != "none":
            compare(folder, args.baseline, args.seconds)


if __name__ == "__main__":
    main()
