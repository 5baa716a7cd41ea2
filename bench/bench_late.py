"""Late readings and the catch-up at start: what they cost under the engine lock, against in-order readings.

Two measurements on a real SQLite store through ``AlertService`` (the review of fix 6, findings 3 and 4):

- ``lookups``: SENSORS series above the band for 3 days, then LATE readings of each (30 s after each of the
  last minutes, inside the 24 h window), judged while a smoke reading is submitted 1 s in; baseline: as many
  in-order readings. Prints the total time, the longest hold of the engine lock and the smoke's wait.
- ``catchup``: SERIES series judged at minute 0 and stopped cleanly, then MINUTES more minutes committed that
  no engine judged (what a SIGKILL leaves); the start judges them (``caught_up``) in steps. Prints the time,
  readings/s, peak RSS and the longest hold of the lock; baseline: the same number of readings judged live
  by ``on_readings`` in the same run.

Usage: ``python bench/bench_late.py [lookups|catchup|all] [--sensors 4] [--late 250] [--series 10000]
[--minutes 30] [--dir DIR]``. A test runs it at a small size (``tests/archmon/test_benches.py``).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.service import AlertService
from archmon.domain import Reading
from archmon.timeutil import now_ms
from collector.records import Batch
from collector.store import SqliteStore
from tests.alerts.helpers import site_config

MIN = 60_000


def lookups(sensors: int, late_each: int) -> None:
    """Late readings inside an excursion three days long (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        names = tuple(f"T{i}" for i in range(sensors))
        config = site_config(Path(tmp), sensors=(*names, "S1"), overrides={"temperature": {"low": 14, "high": 24}})
        db = config.resolve(config.storage.sqlite_path)
        store = SqliteStore(db, tz=config.site.tz)
        t_end = (now_ms() // MIN) * MIN
        t0 = t_end - 3 * 1440 * MIN
        rows = [Reading(s, "temperature", 30.0, t0 + m * MIN, "A1") for m in range(3 * 1440) for s in names]
        for i in range(0, len(rows), 5000):
            store.write_many([Batch(readings=rows[i:i + 5000])])
        service = AlertService(config, db)
        late = [Reading(s, "temperature", 30.0, t_end - (m + 2) * MIN + 30_000, "A1")
                for m in range(late_each) for s in names]
        store.write_many([Batch(readings=late)])
        service._lock.longest_hold_us = 0
        started = time.perf_counter()
        worker = threading.Thread(target=service.on_readings, args=(late,))
        worker.start()
        time.sleep(1.0)
        smoke = [Reading("S1", "smoke", 1.0, now_ms(), "A1")]
        store.write_many([Batch(readings=smoke)])
        waited = time.perf_counter()
        service.on_readings(smoke)
        waited = time.perf_counter() - waited
        worker.join()
        took, hold = time.perf_counter() - started, service.stats()["lock_hold_max_us"] / 1e6
        newer = [Reading(s, "temperature", 30.0, t_end + (m + 1) * MIN, "A1") for m in range(late_each) for s in names]
        store.write_many([Batch(readings=newer)])
        service._lock.longest_hold_us = 0
        base = time.perf_counter()
        service.on_readings(newer)
        base, base_hold = time.perf_counter() - base, service.stats()["lock_hold_max_us"] / 1e6
        print(f"lookups: {len(late)} late readings of {sensors} series above the band for 3 days: {took:.2f} s, "
              f"longest lock hold {hold:.3f} s, smoke submitted 1 s in judged {waited:.3f} s later")
        print(f"lookups: baseline {len(newer)} in-order readings: {base:.2f} s, longest lock hold {base_hold:.3f} s; "
              f"ratio late/in-order {took / base:.1f}x (time), {hold / base_hold:.2f}x (longest hold)")
        service.stop()
        store.close()


def catchup(series: int, minutes: int) -> None:
    """The catch-up at start of MINUTES unjudged minutes of SERIES series (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        names = tuple(f"T{i:05d}" for i in range(series))
        config = site_config(folder, sensors=(*names, "S1"))
        db = folder / "archmon.db"
        t0 = (now_ms() // MIN - minutes - 1) * MIN
        store = SqliteStore(db, tz=config.site.tz)
        first = [Reading(s, "temperature", 20.0, t0, "A1") for s in names]
        store.write_many([Batch(readings=first)])
        service = AlertService(config, db)
        service.on_readings(first)
        service.stop()  # clean: every watermark at t0
        for m in range(1, minutes + 1):
            store.write_many([Batch(readings=[Reading(s, "temperature", 20.0 + (m % 7) * 0.1, t0 + m * MIN, "A1")
                                              for s in names])])
        started = time.perf_counter()
        again = AlertService(config, db)
        took = time.perf_counter() - started
        stats = again.stats()
        judged = stats["caught_up"]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # baseline: as many readings judged live (one commit a minute, as the store writer hands them over)
        t1 = t0 + (minutes + 1) * MIN
        live = [[Reading(s, "temperature", 20.0 + (m % 7) * 0.1, t1 + m * MIN, "A1") for s in names]
                for m in range(minutes)]
        for commit in live:
            store.write_many([Batch(readings=commit)])
        base = time.perf_counter()
        for commit in live:
            again.on_readings(commit)
        base = time.perf_counter() - base
        print(f"catchup: {judged} readings of {series} series unjudged at the stop: AlertService() {took:.2f} s "
              f"(rebuild {stats['rebuild_ms'] / 1000:.2f} s), {judged / max(took, 1e-9):.0f} readings/s; peak RSS "
              f"{rss:.0f} MiB; longest lock hold {stats['lock_hold_max_us'] / 1e6:.3f} s")
        print(f"catchup: baseline {sum(map(len, live))} readings judged live: {base:.2f} s; ratio catch-up/live "
              f"{(took - stats['rebuild_ms'] / 1000) / base:.2f}x")
        again.stop()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="all", choices=("lookups", "catchup", "all"))
    parser.add_argument("--sensors", type=int, default=4)
    parser.add_argument("--late", type=int, default=250)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary files go")
    args = parser.parse_args()
    if args.dir is not None:
        tempfile.tempdir = str(args.dir)
    if args.what in ("lookups", "all"):
        lookups(args.sensors, args.late)
    if args.what in ("catchup", "all"):
        catchup(args.series, args.minutes)


if __name__ == "__main__":
    main()
