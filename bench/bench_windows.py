"""``archmon run`` with 10,000 sensors and full 24 h alert windows: memory, start-up, state writes.

The process measured is the real ``archmon.app.Service`` (collector, store writer, alert engine) in this
process; the MQTT publisher runs in a child process, so its memory is not counted. ``--sensors``
Zigbee2MQTT temperature/humidity sensors (two series each) in 100 paper rooms report once a minute.

Filling the windows (``--feed``):

- ``store`` (default): a child process seeds the SQLite file with ``--hours`` of history through
  ``collector.store.SqliteStore.write_many`` (with rollups); the Service then starts on that file and the
  alert engine rebuilds its windows from the store (counted in the start-up time);
- ``inprocess``: the Service starts on an empty file and the same history is fed to
  ``AlertService.on_readings`` in batches of 500, as the store writer would (the only way for an engine
  that cannot rebuild, e.g. the code before the windows were bucketed).

Then ``--rounds`` live rounds go over MQTT (one QoS 1 message per sensor with ``last_seen`` device time,
continuing the history), then two late rounds (every sensor again, 2 h and 25 h in the past: a
redelivered backlog, inside and outside the 24 h window). Printed: resident memory (after start, after the
rounds, peak) against the 200 MB goal, start-up time, time per round, the largest single write of
alert-engine state (the old engine: its minute checkpoint, measured by calling it), ticks skipped by the
scheduler, and alerts raised (the data stays inside every limit except ``--violations`` sensors made humid
in the last live round, so any other alert means a wrong window or a starved engine). ``--json FILE`` writes the
figures; ``--compare FILE`` prints this run's ratios to another run's figures (e.g. the code before).
The load (the readings, the seeding and the publishing child processes) is in ``bench/_windows_load.py``.

Run: .venv/bin/python bench/bench_windows.py [--sensors 10000] [--hours 24] [--rounds 3] [--feed store]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import multiprocessing as mp
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._suite import BenchResult, Scale, ratio_row
from bench._windows_load import MINUTE_MS, minute_readings, publisher, seed
from bench.bench_memory import ROOMS, rss_kib, write_config

GOAL_MB = 200.0  # "at most 200 MB resident" (DESIGN.md §10), MB = 10^6 bytes
FEED_BATCH = 500  # the store writer's default batch size
STORE_TIMEOUT_S = 900.0


def stored_readings(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])


def wait_stored(db: Path, expected: int) -> None:
    deadline = time.monotonic() + STORE_TIMEOUT_S
    while stored_readings(db) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {stored_readings(db)} of {expected} readings stored after {STORE_TIMEOUT_S} s")
        time.sleep(0.1)


class _Skipped(logging.Handler):
    """Counts APScheduler's "skipped: maximum number of running instances reached" (a starved tick)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "maximum number of running instances" in record.getMessage():
            self.count += 1


def state_write(service: Any) -> tuple[int, float | None]:
    """(largest single write of alert-engine state in bytes, seconds that write took).

    The engine reports it in ``stats()`` (the write's own time, inside the transaction of the batch or tick
    that made it; the longest hold of the engine lock is ``lock_hold_max_us``); an engine without ``stats()``
    (the code before) writes a full checkpoint of every rule's memory each minute under the engine lock: it
    is measured by making one.
    """
    alerts = service.alerts
    if hasattr(alerts, "stats"):
        stats = alerts.stats()
        return int(stats.get("state_write_max_bytes", 0)), stats.get("state_write_max_us", 0) / 1e6
    size = sum(len(json.dumps(rule.snapshot())) for rule in alerts.engine.rules)
    started = time.perf_counter()
    alerts.checkpoint()
    return size, time.perf_counter() - started


def restart_alerts(config: Any) -> float:
    """Seconds to build the alert service again on the same file, windows full (a restart)."""
    from alerts.service import AlertService

    gc.collect()
    started = time.perf_counter()
    alerts = AlertService(config, config.resolve(config.storage.sqlite_path))
    seconds = time.perf_counter() - started
    alerts.stop()
    return seconds


def trace_top(snapshot: Any, limit: int = 12) -> None:
    """Traced memory by package, then the largest allocation sites."""
    import tracemalloc

    stats = snapshot.statistics("filename")
    by_package: dict[str, int] = {}
    for stat in stats:
        name = stat.traceback[0].filename
        package = next((p for p in ("alerts", "collector", "archmon", "devices", "dashboards", "paho", "pydantic",
                                    "apscheduler", "sqlite3", "tracemalloc") if f"/{p}/" in name), "other")
        by_package[package] = by_package.get(package, 0) + stat.size
    print("traced memory by package: " + ", ".join(
        f"{name} {size / 2**20:.1f} MiB" for name, size in sorted(by_package.items(), key=lambda kv: -kv[1])))
    for stat in snapshot.statistics("lineno")[:limit]:
        frame = stat.traceback[0]
        print(f"  {stat.size / 2**20:7.2f} MiB {stat.count:>9} blocks  {frame.filename}:{frame.lineno}")
    del tracemalloc


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from archmon.app import Service
    from archmon.config import load_config
    from tests.fixtures.mosquitto import MosquittoBroker

    sensors, minutes = args.sensors, int(args.hours * 60)
    now_minute = int(time.time() * 1000) // MINUTE_MS
    first = now_minute - minutes  # the history ends one minute ago; live rounds go on from now
    figures: dict[str, Any] = {"sensors": sensors, "series": 2 * sensors, "hours": args.hours, "feed": args.feed}
    spawn = mp.get_context("spawn")
    skipped = _Skipped()
    logging.getLogger("apscheduler").addHandler(skipped)
    broker = MosquittoBroker(folder / "broker", max_inflight_messages=1000).start()
    service: Any = None
    child = None
    parent_end, child_end = spawn.Pipe()
    try:
        path = write_config(folder, broker.port, sensors)
        db = folder / "bench.db"
        if args.feed == "store":
            seed_end, seed_child = spawn.Pipe()
            seeder = spawn.Process(target=seed, args=(db, sensors, first, minutes, "Asia/Shanghai", seed_child))
            seeder.start()
            seconds = seed_end.recv()
            seeder.join()
            figures["seed_s"] = seconds
            print(f"seeded {2 * sensors * minutes:,} readings ({args.hours:g} h) through SqliteStore.write_many "
                  f"in {seconds:.0f} s ({2 * sensors * minutes / seconds:,.0f} readings/s), in a child process")
        child = spawn.Process(target=publisher, args=(broker.port, sensors, child_end), daemon=True)
        child.start()
        if parent_end.recv() != "ready":
            raise RuntimeError("publisher did not start")
        if args.trace:
            import tracemalloc

            tracemalloc.start(1)
        gc.collect()
        rss_base, _ = rss_kib()
        t0 = time.perf_counter()
        config = load_config(path)
        service = Service(config)
        t1 = time.perf_counter()
        if args.feed == "inprocess":
            for minute in range(first, first + minutes):
                readings = minute_readings(sensors, minute)
                for k in range(0, len(readings), FEED_BATCH):
                    service.alerts.on_readings(readings[k:k + FEED_BATCH])
                if (minute - first) % 60 == 59:
                    rss, _ = rss_kib()
                    print(f"  fed {(minute - first + 1) / 60:.0f} h in {time.perf_counter() - t1:.0f} s, "
                          f"RSS {rss / 1024:.0f} MiB", flush=True)
            figures["feed_s"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        service.start()
        if args.dashboard:  # as archmon run serves it by default
            service.serve_dashboard("127.0.0.1:0")
        if not all(source.wait_connected(STORE_TIMEOUT_S) for source in service.sources().values()):
            raise RuntimeError("service did not connect and subscribe")
        t3 = time.perf_counter()
        figures["startup_s"] = (t1 - t0) + (t3 - t2)
        figures["service_init_s"] = t1 - t0
        gc.collect()
        rss_started, peak_started = rss_kib()
        figures["rss_started_mib"] = rss_started / 1024
        figures["peak_started_mib"] = peak_started / 1024
        print(f"sensors: {sensors} ({2 * sensors} series) in {ROOMS} paper rooms; windows filled by "
              f"{'rebuilding from the store' if args.feed == 'store' else 'feeding on_readings in-process'}")
        how = "incl. rebuilding the alert windows from the store" if args.feed == "store" else (
            f"plus {figures['feed_s']:.0f} s feeding {args.hours:g} h in-process")
        print(f"start-up             : {figures['startup_s']:8.2f} s (Service() {t1 - t0:.2f} s {how}; "
              f"start + connect {t3 - t2:.2f} s)")
        before = stored_readings(db)
        round_s = []
        for round_no in range(args.rounds):
            start = time.perf_counter()
            last = round_no == args.rounds - 1
            parent_end.send((now_minute + round_no, args.violations if last else 0, 0))
            wait_stored(db, before + 2 * sensors * (round_no + 1))
            parent_end.recv()
            caught_up = service._alert_feed.join(STORE_TIMEOUT_S)
            round_s.append(time.perf_counter() - start)
            rss_now, _ = rss_kib()
            print(f"live round {round_no + 1:<2}        : {round_s[-1]:8.2f} s to store and judge {2 * sensors} "
                  f"readings{'' if caught_up else ' (alert engine TIMED OUT)'}; RSS {rss_now / 1024:.1f} MiB",
                  flush=True)
        figures["round_s"] = round_s
        if args.late:
            # a redelivered backlog: every sensor again, 2 h late (inside the 24 h window), then 25 h late
            # (older than it); 30 s off the history's timestamps, so the store takes them as new readings
            stored = before + 2 * sensors * args.rounds
            for label, back in (("2 h late", 120), ("25 h late", 25 * 60)):
                start = time.perf_counter()
                parent_end.send((now_minute - back, 0, 30_000))
                stored += 2 * sensors
                wait_stored(db, stored)
                parent_end.recv()
                service._alert_feed.join(STORE_TIMEOUT_S)
                seconds = time.perf_counter() - start
                figures[f"late_round_{back}_s"] = seconds
                rss_now, _ = rss_kib()
                print(f"late round ({label:9}): {seconds:8.2f} s to store and judge {2 * sensors} readings; "
                      f"RSS {rss_now / 1024:.1f} MiB", flush=True)
        gc.collect()
        rss_end, peak = rss_kib()
        figures["rss_mib"] = rss_end / 1024
        figures["peak_mib"] = peak / 1024
        figures["rss_base_mib"] = rss_base / 1024
        if args.trace:
            import tracemalloc

            trace_top(tracemalloc.take_snapshot())
            tracemalloc.stop()
        size, held = state_write(service)
        figures["state_write_bytes"] = size
        figures["state_write_lock_s"] = held
        with sqlite3.connect(db) as conn:
            # (calibration_due: the site-wide "no calibration on record" warning of a bench site, not counted)
            alerts = conn.execute("SELECT rule, COUNT(*) FROM alert_alerts WHERE rule != 'calibration_due' "
                                  "GROUP BY rule").fetchall()
        figures["alerts"] = dict(alerts)
        figures["ticks_skipped"] = skipped.count
        if hasattr(service.alerts, "stats"):
            figures["alert_stats"] = service.alerts.stats()
        started = time.perf_counter()
        service.stop()
        figures["stop_s"] = time.perf_counter() - started
        service = None
        figures["restart_s"] = restart_alerts(config)
        mib = 1024
        print(f"RSS before service   : {rss_base / mib:8.1f} MiB (interpreter and imports)")
        print(f"RSS after start      : {rss_started / mib:8.1f} MiB (peak so far {peak_started / mib:.1f} MiB)")
        mb = rss_end * 1024 / 1e6
        figures["rss_mb"], figures["peak_mb"] = mb, peak * 1024 / 1e6
        per_sensor = (rss_end - rss_base) / sensors
        print(f"RSS after live rounds: {rss_end / mib:8.1f} MiB = {mb:.1f} MB ({per_sensor:.2f} KiB per sensor above "
              f"the interpreter; goal {GOAL_MB:.0f} MB: x{mb / GOAL_MB:.2f} of it)")
        print(f"peak RSS (VmHWM)     : {peak / mib:8.1f} MiB = {figures['peak_mb']:.1f} MB")
        took = "" if held is None else f", the write itself {held * 1000:.2f} ms"
        print(f"largest state write  : {size:,} bytes{took}")
        stats = figures.get("alert_stats", {})
        if "lock_hold_max_us" in stats:
            figures["lock_hold_max_ms"] = stats["lock_hold_max_us"] / 1000
            print(f"engine lock          : longest single hold {figures['lock_hold_max_ms']:.1f} ms (a slice, a tick's "
                  "step or a reload: the most smoke and leak waited)")
        print(f"stop                 : {figures['stop_s']:8.2f} s (the code before: a final checkpoint)")
        print(f"alert engine restart : {figures['restart_s']:8.2f} s with full windows (the code before: loading its "
              "checkpoint; now: rebuilding from the store)")
        print(f"ticks skipped        : {skipped.count}")
        print(f"alerts raised        : {dict(alerts) or 'none'} (expected: band, mould, rate, stability_24h for the "
              f"{args.violations} sensor(s) made humid in the last round, nothing else)")
        if "alert_stats" in figures:
            stats = figures["alert_stats"]
            print(f"alert engine         : {stats['series']} series, windows {stats['window_bytes'] / 1e6:.1f} MB, "
                  f"rebuilt {stats['rebuilt_series']} series in {stats['rebuild_ms'] / 1000:.2f} s; "
                  f"{stats['late_readings']} late readings placed in their buckets, "
                  f"{stats['late_for_alerts']} late for alerts (older than the window), "
                  f"{stats['ticks_overlapped']} ticks overlapped")
        return figures
    finally:
        logging.getLogger("apscheduler").removeHandler(skipped)
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


def compare(figures: dict[str, Any], other: dict[str, Any], label: str) -> None:
    """Print this run's figures as ratios of another run's."""
    print(f"ratios to {label} ({other.get('sensors')} sensors, {other.get('hours')} h, feed {other.get('feed')}):")
    for key, name in (("rss_mb", "RSS after live rounds MB"), ("peak_mb", "peak RSS MB"), ("startup_s", "start-up"),
                      ("restart_s", "alert engine restart"), ("stop_s", "stop"),
                      ("state_write_bytes", "largest state write")):
        mine, theirs = figures.get(key), other.get(key)
        if mine and theirs:
            print(f"  {name:22}: {mine:12,.1f} vs {theirs:12,.1f}  (x{mine / theirs:.3f})")
    if figures.get("round_s") and other.get("round_s"):
        mine, theirs = figures["round_s"][-1], other["round_s"][-1]
        print(f"  {'last live round (s)':22}: {mine:12,.2f} vs {theirs:12,.2f}  (x{mine / theirs:.3f})")


SIZES: dict[str, tuple[int, float, int]] = {"toy": (3, 0.2, 1), "quick": (1000, 2.0, 2), "full": (10_000, 24.0, 3)}


def suite(scale: Scale, folder: Path) -> BenchResult:
    """The service's resident memory after the live rounds, in a child process of its own (so the suite's own
    memory is not counted), against the same interpreter with archmon's packages imported."""
    sensors, hours, rounds = SIZES[scale]
    out = folder / "windows.json"
    done = subprocess.run([sys.executable, __file__, "--sensors", str(sensors), "--hours", str(hours), "--rounds",
                           str(rounds), "--dashboard", "--json", str(out), "--dir", str(folder)],
                          capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"bench_windows.py failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    f = json.loads(out.read_text(encoding="utf-8"))
    base_mb = f["rss_base_mib"] * 1024 * 1024 / 1e6
    full = scale == "full"
    goal = "≤ 200 MB" if full else "≤ 200 MB at 10,000 sensors (not this size)"
    label = "the interpreter with archmon imported, before the Service"
    rows = [ratio_row(f"resident memory, {sensors:,} sensors, {hours:g} h windows + {rounds} live rounds",
                      f["rss_mb"], base_mb, "MB", label, goal=goal, value_at_most=GOAL_MB if full else None),
            ratio_row("peak resident memory (VmHWM)", f["peak_mb"], base_mb, "MB", label, goal=goal,
                      value_at_most=GOAL_MB if full else None)]
    notes = [f"start-up {f['startup_s']:.1f} s (windows rebuilt from the store), live rounds "
             f"{', '.join(f'{s:.2f}' for s in f['round_s'])} s, alerts {f.get('alerts')}, ticks skipped "
             f"{f.get('ticks_skipped')}"]
    if not full:
        notes.append(f"{scale}: {sensors:,} sensors and {hours:g} h of history, not 10,000 and 24 h")
    return BenchResult("memory", rows, sizes={"sensors": sensors, "series": 2 * sensors, "hours": hours,
                                              "live_rounds": rounds}, notes=notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=10_000)
    parser.add_argument("--hours", type=float, default=24.0, help="history before the live rounds")
    parser.add_argument("--rounds", type=int, default=3, help="live rounds over MQTT after the history")
    parser.add_argument("--feed", choices=("store", "inprocess"), default="store",
                        help="fill the windows by rebuilding from a seeded store, or by feeding on_readings")
    parser.add_argument("--violations", type=int, default=1,
                        help="sensors reporting 70 %%RH in the last round (alerts, hence state writes)")
    parser.add_argument("--no-late", dest="late", action="store_false",
                        help="skip the two late rounds (every sensor again 2 h and 25 h in the past)")
    parser.add_argument("--dashboard", action="store_true", help="serve the web dashboard too, as archmon run does")
    parser.add_argument("--trace", action="store_true", help="tracemalloc the service (slow): memory by package")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--compare", type=Path, help="figures of another run (--json) to print ratios to")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the temporary files")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-windows-", dir=args.dir) as tmp:
        figures = run(args, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    if args.compare:
        compare(figures, json.loads(args.compare.read_text(encoding="utf-8")), str(args.compare))


if __name__ == "__main__":
    main()
