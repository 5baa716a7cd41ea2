"""Storage: bytes per stored reading after N readings, against the raw payload, InfluxDB and VictoriaMetrics.

The same readings (temperature and humidity of ``--sensors`` sensors at one reading a minute, a room's
slow daily swing with sensor noise at 0.1 resolution: ``bench_store._climate_readings``) go

- into archmon's SQLite store through ``SqliteStore.write_many`` in transactions of 5,000 (raw table,
  hour/day rollups, the summaries kept forever, series); the file is measured after ``VACUUM`` and a WAL
  checkpoint, and again with the raw table emptied (what raw retention leaves);
- as InfluxDB line protocol (``temperature,room=r1,sensor=th001 value=20.1 <ms>``) into Debian's InfluxDB
  1.6 (TSM; snapshots and full compaction after 2 s / 5 s cold, the folder measured once its size stops
  changing) and into VictoriaMetrics (after a flush), each folder measured whole (data, index, WAL);
- the raw payload: the Zigbee2MQTT JSON message a sensor sends for one temperature/humidity pair, per
  reading, and the line protocol per reading.

Run: ``.venv/bin/python bench/bench_storage.py [--readings 10000000] [--sensors 100] [--no-servers]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._sqlite_size import store_file_size
from bench._suite import BenchResult, Scale, ratio_row
from bench.bench_store import _climate_readings
from collector.records import Batch
from collector.store import SqliteStore
from tests.fixtures.tsdb import InfluxServer, VictoriaServer

TZ = ZoneInfo("Asia/Shanghai")
CHUNK = 5000
GOAL_BYTES = 24.0


class StorageFigures(NamedTuple):
    """Bytes per reading of each."""

    readings: int
    sqlite: float  # the whole file: raw, rollups, summaries, series
    sqlite_summaries: float  # after raw retention: rollups and summaries alone
    write_s: float
    payload: float  # Zigbee2MQTT JSON per reading
    line_protocol: float
    influx: float | None
    victoria: float | None


def _folder_bytes(path: Path) -> int:
    """Bytes the files under ``path`` hold: a sparse file (InfluxDB preallocates its series file's segments,
    about 32 MB at once) counts the blocks written, not its length."""
    total = 0
    for item in path.rglob("*"):
        if item.is_file():
            st = item.stat()
            total += min(st.st_size, st.st_blocks * 512)
    return total


def _chunks(readings: int, sensors: int):
    for start in range(0, readings, CHUNK):
        yield _climate_readings(start, min(CHUNK, readings - start), sensors)


def sqlite_bytes(folder: Path, readings: int, sensors: int) -> tuple[float, float, float]:
    """(bytes per reading of the whole file, of the file after raw retention, seconds writing)."""
    path = folder / "storage.db"
    store = SqliteStore(path, tz=TZ)
    started = time.perf_counter()
    try:
        for chunk in _chunks(readings, sensors):
            store.write_many([Batch(readings=chunk)])
    finally:
        store.close()
    write_s = time.perf_counter() - started
    size = store_file_size(path)
    return size.total / readings, size.without_raw / readings, write_s


def _line(reading: object) -> str:
    r = reading  # a Reading
    return f"{r.quantity},room={r.room},sensor={r.sensor} value={r.value} {r.ts_ms}"  # type: ignore[attr-defined]


def payload_bytes(sensors: int) -> tuple[float, float]:
    """(Zigbee2MQTT JSON bytes per reading, line protocol bytes per reading), over one round of messages."""
    pairs = _climate_readings(0, 2 * sensors, sensors)
    json_bytes = sum(len(json.dumps({"temperature": t.value, "humidity": h.value, "last_seen": t.ts_ms,
                                     "battery": 97, "linkquality": 120}))
                     for t, h in zip(pairs[::2], pairs[1::2], strict=True))
    return json_bytes / len(pairs), sum(len(_line(r)) + 1 for r in pairs) / len(pairs)


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=120) as answer:
        if answer.status not in (200, 204):
            raise RuntimeError(f"{url}: {answer.status}")


class _ColdInflux(InfluxServer):
    """InfluxDB 1.6 that snapshots its cache and compacts soon after writes stop (so TSM is measured)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        text = self.conf.read_text(encoding="utf-8")
        self.conf.write_text(text.replace("[data]\n", '[data]\n  cache-snapshot-write-cold-duration = "2s"\n'
                                          '  compact-full-write-cold-duration = "5s"\n'), encoding="utf-8")


def _settled(folder: Path, timeout: float, quiet_s: float = 8.0) -> int:
    """The folder's size once it has not changed for ``quiet_s`` (or at ``timeout``)."""
    began = time.monotonic()
    size, since = _folder_bytes(folder), time.monotonic()
    while time.monotonic() - began < timeout:
        time.sleep(1.0)
        now = _folder_bytes(folder)
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return size


def _vm_count(victoria: VictoriaServer) -> int:
    query = urllib.parse.urlencode({"query": 'sum(count_over_time({db="archmon"}[3650d]))',
                                    "time": str(int(time.time()))})
    with urllib.request.urlopen(f"{victoria.url}/api/v1/query?{query}", timeout=120) as answer:
        return int(json.loads(answer.read())["data"]["result"][0]["value"][1])


def server_bytes(folder: Path, readings: int, sensors: int) -> tuple[float, float]:
    """(InfluxDB 1.6 bytes per reading, VictoriaMetrics bytes per reading) for the same readings."""
    influx = _ColdInflux(folder / "influx")
    victoria = VictoriaServer(folder / "victoria")
    try:
        influx.start()
        influx.create_database()
        victoria.start()
        for chunk in _chunks(readings, sensors):
            body = ("\n".join(_line(r) for r in chunk) + "\n").encode()
            _post(f"{influx.url}/write?db=archmon&precision=ms", body)
            _post(f"{victoria.url}/write?db=archmon&precision=ms", body)
        urllib.request.urlopen(f"{victoria.url}/internal/force_flush", timeout=60).read()
        vm = _settled(victoria.workdir / "data", timeout=60)
        _settled(influx.workdir, timeout=120)  # snapshots and compactions done
        influx_total = sum(_folder_bytes(influx.workdir / name) for name in ("data", "wal", "meta"))
        assert _vm_count(victoria) == readings, "VictoriaMetrics does not hold every reading"
    finally:
        influx.close()
        victoria.close()
    return influx_total / readings, vm / readings


def measure(folder: Path, readings: int, sensors: int, servers: bool = True) -> StorageFigures:
    """Every figure for ``readings`` readings of ``sensors`` sensors."""
    total, summaries, write_s = sqlite_bytes(folder, readings, sensors)
    payload, lines = payload_bytes(sensors)
    influx = victoria = None
    if servers:
        influx, victoria = server_bytes(folder, readings, sensors)
    return StorageFigures(readings, total, summaries, write_s, payload, lines, influx, victoria)


SIZES: dict[str, int] = {"toy": 5000, "quick": 500_000, "full": 10_000_000}
SENSORS = 100


def suite(scale: Scale, folder: Path) -> BenchResult:
    """archmon's bytes per reading against each baseline (toy: no servers)."""
    readings = SIZES[scale]
    f = measure(folder, readings, SENSORS, servers=scale != "toy")
    what = f"bytes per stored reading after {readings:,} readings"
    rows = [ratio_row(what, f.sqlite, f.payload, "B", "raw Zigbee2MQTT JSON payload", goal="≤ 24 B",
                      value_at_most=GOAL_BYTES, note="incl. raw, rollups, summaries, series; VACUUMed")]
    if f.influx is not None:
        rows.append(ratio_row(what, f.sqlite, f.influx, "B", "InfluxDB 1.6 (TSM, compacted)"))
    if f.victoria is not None:
        rows.append(ratio_row(what, f.sqlite, f.victoria, "B", "VictoriaMetrics"))
    rows.append(ratio_row("bytes per reading kept after raw retention (summaries)", f.sqlite_summaries, f.sqlite,
                          "B", "the whole file with raw readings"))
    notes = [f"SQLite writes {readings / f.write_s:,.0f} readings/s (transactions of {CHUNK:,}); line protocol "
             f"{f.line_protocol:.1f} B/reading"]
    if scale != "full":
        notes.append(f"{scale}: {readings:,} readings, not 10 million (the fixed costs weigh more per reading)")
    return BenchResult("storage", rows, sizes={"readings": readings, "sensors": SENSORS,
                                               "days_at_1_per_min": round(readings / 2 / SENSORS / 1440, 1)},
                       notes=notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=10_000_000)
    parser.add_argument("--sensors", type=int, default=SENSORS)
    parser.add_argument("--no-servers", dest="servers", action="store_false", help="skip InfluxDB and VictoriaMetrics")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        f = measure(Path(tmp), args.readings, args.sensors, args.servers)
    print(f"{f.readings:,} readings of {args.sensors} sensors at 1/min, SQLite written at "
          f"{f.readings / f.write_s:,.0f} readings/s")
    print(f"archmon SQLite: {f.sqlite:.1f} B/reading (raw + rollups + summaries); after raw retention "
          f"{f.sqlite_summaries:.2f} B/reading")
    print(f"raw payload: {f.payload:.1f} B/reading (Zigbee2MQTT JSON), line protocol {f.line_protocol:.1f} B/reading")
    if f.influx is not None and f.victoria is not None:
        print(f"InfluxDB 1.6: {f.influx:.1f} B/reading; VictoriaMetrics: {f.victoria:.2f} B/reading")


if __name__ == "__main__":
    main()
