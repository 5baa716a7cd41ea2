"""Benchmark of forwarding: outbox drain rate to real servers, and what forwarding costs ingest.

Run: ``.venv/bin/python bench/bench_forward.py [--readings N] [--batch-size B]``. Starts Debian's
VictoriaMetrics and InfluxDB 1.6 on loopback (``tests/fixtures/tsdb.py``), so it needs the packages
``victoria-metrics`` and ``influxdb``. Prints:

1. forwarding throughput (readings/s) from a full outbox to VictoriaMetrics (v2 write API) and to InfluxDB
   1.6 (``/write``), ``batch_size`` lines per request, each request acknowledged by a durable delete;
2. the durable ingest rate of the store (transactions of 500 readings, as the store writer makes them) with
   forwarding off, and with forwarding on (the outbox written in the same transactions and the forwarder
   draining it to VictoriaMetrics at the same time), and their ratio.

The figures come from one run on one machine; compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from archmon.domain import Reading
from archmon.forward_config import InfluxForwardConfig
from collector.forward import Forwarder, InfluxClient, Outbox, OutboxLimits
from collector.records import Batch
from collector.store import SqliteStore
from tests.fixtures.tsdb import InfluxServer, VictoriaServer

TZ = ZoneInfo("Asia/Shanghai")
MINUTE = 60_000
T0 = (int(time.time() * 1000) // MINUTE - 30 * 24 * 60) * MINUTE  # a month ago
LIMITS = OutboxLimits(10**8, 10**11, 10**7, 10**10)
TX = 500


def _readings(start: int, count: int, sensors: int = 200) -> list[Reading]:
    return [Reading(f"th{i % sensors:03d}", "temperature", 18.0 + (i % 97) / 10,
                    T0 + ((start + i) // sensors) * MINUTE, "paper" if i % 2 else "film")
            for i in range(start, start + count)]


def _store(path: Path, outbox: bool) -> tuple[SqliteStore, Outbox | None]:
    store = SqliteStore(path, tz=TZ)
    box = None
    if outbox:
        box = Outbox(path, site="bench", limits=LIMITS).open()
        store.add_write_hook(box.enqueue)
    return store, box


def _write(store: SqliteStore, start: int, count: int) -> float:
    """Seconds to write ``count`` readings in transactions of :data:`TX`."""
    began = time.perf_counter()
    for offset in range(start, start + count, TX):
        store.write_many([Batch(readings=_readings(offset, min(TX, start + count - offset)))])
    return time.perf_counter() - began


def drain_rate(folder: Path, name: str, target: InfluxForwardConfig, count: int) -> float:
    """Readings per second from a full outbox of ``count`` readings to ``target``."""
    store, box = _store(folder / f"drain-{name}.db", outbox=True)
    assert box is not None
    try:
        _write(store, 0, count)
        client = InfluxClient(target)
        forwarder = Forwarder(box, lambda: client, batch_size=target.batch_size, retry_min_s=0.05)
        began = time.perf_counter()
        forwarder.start()
        while box.totals().rows:
            time.sleep(0.01)
        elapsed = time.perf_counter() - began
        forwarder.stop(10)
        assert box.totals().forwarded == count, box.totals()
        return count / elapsed
    finally:
        box.close()
        store.close()


def ingest_rate(folder: Path, count: int, victoria: VictoriaServer | None) -> float:
    """Durable ingest readings/s, with the outbox and a forwarder draining it to ``victoria`` (None: off)."""
    name = "on" if victoria else "off"
    store, box = _store(folder / f"ingest-{name}.db", outbox=victoria is not None)
    forwarder = None
    try:
        if box is not None and victoria is not None:
            client = InfluxClient(InfluxForwardConfig(url=victoria.url, batch_size=5000))
            forwarder = Forwarder(box, lambda: client, batch_size=5000, retry_min_s=0.05)
            forwarder.start()
        elapsed = _write(store, 0, count)
        return count / elapsed
    finally:
        if forwarder is not None:
            forwarder.stop(10)
        if box is not None:
            box.close()
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=100_000, help="readings per measurement (default 100,000)")
    parser.add_argument("--batch-size", type=int, default=5000, help="lines per request (default 5000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="archmon-bench-forward-") as tmp:
        folder = Path(tmp)
        victoria = VictoriaServer(folder / "victoria")
        influx = InfluxServer(folder / "influx")
        try:
            victoria.start()
            influx.start()
            influx.create_database()
            print(f"{args.readings:,} readings, {args.batch_size} lines per request; SQLite WAL, synchronous=FULL")
            vm = drain_rate(folder, "vm", InfluxForwardConfig(url=victoria.url, batch_size=args.batch_size),
                            args.readings)
            print(f"forwarding to VictoriaMetrics (v2 write API): {vm:>10,.0f} readings/s")
            flux = drain_rate(folder, "influx", InfluxForwardConfig(url=influx.url, api="v1",
                                                                     batch_size=args.batch_size), args.readings)
            print(f"forwarding to InfluxDB 1.6 (/write):          {flux:>10,.0f} readings/s")
            off = ingest_rate(folder, args.readings, None)
            on = ingest_rate(folder, args.readings, victoria)
            print(f"ingest, forwarding off:                       {off:>10,.0f} readings/s")
            print(f"ingest, forwarding on (outbox + forwarder):   {on:>10,.0f} readings/s  "
                  f"(ratio on/off {on / off:.2f})")
        finally:
            influx.close()
            victoria.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
