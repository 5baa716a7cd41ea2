"""Benchmark of the live alert path: ``AlertService.on_readings`` as the store writer calls it.

Run: ``.venv/bin/python bench/bench_alerts.py [--dir DIR] [--seconds S] [--trials N] [--big-trials N]``.

Prints

- readings/s (and µs per reading) through ``on_readings`` for 50 temperature/humidity sensors in batches
  of 500 readings that cause no transition (values inside the band, steady enough for the stability,
  rate, stuck and mould rules);
- smoke-to-notification-request latency: from calling ``on_readings`` with a ``smoke = 1`` reading to its
  ``fired`` row in ``notification_queue`` being committed (it is committed when ``on_readings`` returns;
  a second connection checks it is visible), median and p99 over the trials, for the smoke reading alone,
  at the end of a 500-reading batch, and arriving (from another thread) while the engine judges a
  20,000-reading batch, with its ratio to the smoke reading alone;
- the same latency on the path ``archmon run`` takes (``archmon.app.feed.AlertFeed``, which the store
  writer's listener hands every commit to): from queueing the smoke reading's commit to its committed
  ``fired`` row, with the feed idle, and with 20,000 readings queued before it as 40 commits of 500 (the
  writer catching up after an outage), and the ratio of the two.

Every commit is durable (WAL, ``synchronous=FULL``), so the latency is bounded by the disk's fsync. The
figures come from one run on one machine; compare runs on the same machine, not absolute numbers.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

from alerts.service import AlertService
from alerts.store import AlertStore
from archmon.config import Config, parse_config
from archmon.domain import Reading

T0 = 1_735_704_000_000  # 2025-01-01T12:00:00+08:00
SENSORS = 50
BATCH = 500
STEP_MS = 200  # each sensor reports every 200 ms of simulated time (alternating T and RH)
ROOM = "r1"
SMOKE = "smoke1"


def _config(folder: Path) -> Config:
    sensors = [
        {"id": f"th{i:03d}", "room": ROOM, "source": "broker", "topic": f"zigbee2mqtt/th{i:03d}",
         "format": "zigbee2mqtt", "expected_interval_s": 60}
        for i in range(SENSORS)
    ]
    # a detector reports rarely: its stale timeout must not run out during the throughput phase
    sensors.append({"id": SMOKE, "room": ROOM, "source": "broker", "topic": f"zigbee2mqtt/{SMOKE}",
                    "format": "zigbee2mqtt", "expected_interval_s": 3600})
    return parse_config({
        "site": {"name": "bench", "timezone": "Asia/Shanghai"},
        "storage": {"sqlite_path": str(folder / "archmon.db")},
        "rooms": [{"id": ROOM, "profile": "paper"}],
        "mqtt": [{"id": "broker"}],
        "sensors": sensors,
        # a cleared smoke alert closes at once, so every trial opens a new alert
        "alerts": {"rules": {"smoke": {"close_after_s": 0}},
                   "calibration": {"uncalibrated": False}},  # no records here: not the alert measured
    })


class _Feed:
    """Quiet readings in time order: reading ``n`` is sensor ``n % 50``, round ``n // 50`` (T, RH, T...)."""

    def __init__(self) -> None:
        self.count = 0

    def batch(self, size: int = BATCH) -> list[Reading]:
        """The next ``size`` readings, all inside the paper band and steady (no transition)."""
        out = []
        for n in range(self.count, self.count + size):
            sensor, rounds = n % SENSORS, n // SENSORS
            if rounds % 2 == 0:
                value, quantity = 20.0 + 0.5 * math.sin(rounds / 7 + sensor), "temperature"
            else:
                value, quantity = 52.0 + 1.0 * math.sin(rounds / 5 + sensor), "humidity"
            out.append(Reading(f"th{sensor:03d}", quantity, value, T0 + rounds * STEP_MS, ROOM))
        self.count += size
        return out


def throughput(service: AlertService, feed: _Feed, seconds: float) -> tuple[float, int]:
    """Readings/s through ``on_readings`` (time spent inside the calls) for about ``seconds``."""
    for _ in range(4):  # warm-up: windows fill, every lifecycle key exists
        service.on_readings(feed.batch())
    fed, spent = 0, 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or fed < 20 * BATCH:
        batch = feed.batch()
        started = time.perf_counter()
        service.on_readings(batch)
        spent += time.perf_counter() - started
        fed += BATCH
    return fed / spent, fed


def latency(service: AlertService, feed: _Feed, db: Path, trials: int, *, in_batch: bool) -> list[float]:
    """Seconds from calling ``on_readings`` with smoke = 1 to its committed ``fired`` request.

    Between trials the 50 sensors keep reporting (so none goes stale) and the smoke clears (and closes).
    """
    reader = AlertStore(db)
    count = "SELECT COUNT(*) FROM notification_queue WHERE transition = 'fired'"
    out: list[float] = []
    try:
        for _ in range(trials):
            batch = feed.batch()
            if not in_batch:
                service.on_readings(batch)
                batch = batch[-1:]
            ts = batch[-1].ts_ms
            batch[-1] = Reading(SMOKE, "smoke", 1.0, ts, ROOM)
            fired_before = reader.conn.execute(count).fetchone()[0]
            started = time.perf_counter()
            service.on_readings(batch)
            out.append(time.perf_counter() - started)
            if reader.conn.execute(count).fetchone()[0] != fired_before + 1:
                raise RuntimeError("the smoke reading did not leave exactly one committed 'fired' request")
            service.on_readings([Reading(SMOKE, "smoke", 0.0, ts + 1, ROOM)])
    finally:
        reader.close()
    return out


def behind_a_batch(service: AlertService, feed: _Feed, db: Path, trials: int, size: int) -> list[float]:
    """Seconds from a smoke reading to its committed request while another thread judges ``size`` readings."""
    import threading

    reader = AlertStore(db)
    count = "SELECT COUNT(*) FROM notification_queue WHERE transition = 'fired'"
    out: list[float] = []
    try:
        for _ in range(trials):
            batch = feed.batch(size)
            lock = getattr(service._lock, "_lock", service._lock)  # the engine's lock, before and after slices
            worker = threading.Thread(target=service.on_readings, args=(batch,))
            worker.start()
            while not lock.locked() and worker.is_alive():  # until the big batch is being judged
                time.sleep(0.0002)
            ts = batch[-1].ts_ms
            fired_before = reader.conn.execute(count).fetchone()[0]
            started = time.perf_counter()
            service.on_readings([Reading(SMOKE, "smoke", 1.0, ts, ROOM)])
            out.append(time.perf_counter() - started)
            if reader.conn.execute(count).fetchone()[0] != fired_before + 1:
                raise RuntimeError("the smoke reading did not leave exactly one committed 'fired' request")
            worker.join()
            service.on_readings([Reading(SMOKE, "smoke", 0.0, ts + 1, ROOM)])
    finally:
        reader.close()
    return out


def through_feed(service: AlertService, feed: _Feed, db: Path, trials: int, size: int,
                 commits: int) -> list[float]:
    """Seconds from queueing a smoke commit on an ``AlertFeed`` (what the store writer's listener does) to its
    committed ``fired`` request, with ``size`` readings queued before it as ``commits`` commits (0: idle)."""
    from archmon.app.feed import AlertFeed

    reader = AlertStore(db)
    count = "SELECT COUNT(*) FROM notification_queue WHERE transition = 'fired'"
    alert_feed = AlertFeed(service, on_backlog=lambda backlog: None)
    alert_feed.start()
    out: list[float] = []
    try:
        for _ in range(trials):
            batches = [feed.batch(size // commits) for _ in range(commits)] if size else []
            ts = batches[-1][-1].ts_ms if batches else feed.batch(1)[0].ts_ms
            for batch in batches:
                alert_feed.readings(batch)
            fired_before = reader.conn.execute(count).fetchone()[0]
            started = time.perf_counter()
            alert_feed.readings([Reading(SMOKE, "smoke", 1.0, ts, ROOM)])
            deadline = started + 120
            while reader.conn.execute(count).fetchone()[0] < fired_before + 1:
                if time.perf_counter() > deadline:
                    raise RuntimeError("no committed 'fired' request for the smoke reading")
                time.sleep(0.0002)
            out.append(time.perf_counter() - started)
            if not alert_feed.join(300):
                raise RuntimeError("the alert feed did not catch up")
            service.on_readings([Reading(SMOKE, "smoke", 0.0, ts + 1, ROOM)])
    finally:
        alert_feed.stop(60)
        reader.close()
    return out


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="folder for the database (default: a temp dir)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the throughput run")
    parser.add_argument("--trials", type=int, default=200, help="smoke latency trials")
    parser.add_argument("--big-batch", type=int, default=20_000, help="readings in the batch smoke arrives behind")
    parser.add_argument("--big-trials", type=int, default=10, help="trials behind the big batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        db = folder / "archmon.db"
        service = AlertService(_config(folder), db)
        try:
            feed = _Feed()
            rate, fed = throughput(service, feed, args.seconds)
            transitions = service.store.conn.execute("SELECT COUNT(*) FROM alert_transitions").fetchone()[0]
            print(f"on_readings, {SENSORS} sensors, batches of {BATCH}, no transition: "
                  f"{rate:,.0f} readings/s ({1e6 / rate:.2f} µs/reading; {fed:,} readings; "
                  f"transitions recorded: {transitions})")
            alone = 0.0
            for in_batch in (False, True):
                times = latency(service, feed, db, args.trials, in_batch=in_batch)
                label = f"smoke at the end of a {BATCH}-reading batch" if in_batch else "smoke reading alone"
                alone = alone or statistics.median(times)
                print(f"smoke → committed notification request ({label}), {len(times)} trials: "
                      f"median {statistics.median(times) * 1000:.2f} ms, p99 {_p(times, 0.99) * 1000:.2f} ms")
            times = behind_a_batch(service, feed, db, args.big_trials, args.big_batch)
            print(f"smoke → committed notification request while another thread judges a {args.big_batch:,}-reading "
                  f"batch, {len(times)} trials: median {statistics.median(times) * 1000:.2f} ms "
                  f"(x{statistics.median(times) / alone:.1f} the smoke reading alone), "
                  f"max {max(times) * 1000:.2f} ms")
            idle = through_feed(service, feed, db, args.big_trials, 0, 1)
            queued = through_feed(service, feed, db, args.big_trials, args.big_batch, args.big_batch // BATCH)
            print(f"smoke → committed notification request through the AlertFeed (archmon run's path), "
                  f"{len(idle)} trials: idle feed median {statistics.median(idle) * 1000:.2f} ms; behind "
                  f"{args.big_batch:,} readings queued as {args.big_batch // BATCH} commits: median "
                  f"{statistics.median(queued) * 1000:.2f} ms "
                  f"(x{statistics.median(queued) / statistics.median(idle):.1f}"
                  f" the idle feed), max {max(queued) * 1000:.2f} ms")
            others = service.store.conn.execute("SELECT COUNT(*) FROM alert_alerts WHERE rule != 'smoke'")
            print(f"alerts other than smoke in the whole run (expected 0): {others.fetchone()[0]}")
        finally:
            service.stop()


if __name__ == "__main__":
    main()
