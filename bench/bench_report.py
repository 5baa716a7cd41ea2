"""Benchmark of the compliance report: one year, 50 temperature/humidity sensors at one reading a minute.

Run: ``.venv/bin/python bench/bench_report.py [--days 365] [--sensors 50] [--dir DIR]``.

Two files are generated from one value formula (integer tenths, so SQL and Python agree exactly):

- ``summaries.db``: the store's tables with the summaries kept forever written directly (what the write path
  would have left: per local hour min/max/sum/count, slot bitmaps, first/last reading, value histograms
  with their minutes) and an EMPTY raw
  readings table, as after raw retention. The report runs on it: it cannot scan raw readings, there are
  none, and every table its statements read is printed (an SQLite authorizer on its connections).
- ``raw.db``: the same readings as raw rows (generated in SQLite itself), for the baselines: one plain
  ``SELECT count(*), min(value), max(value), sum(value) FROM readings`` scan (all in SQLite), and the same
  rows handed to Python one by one, the least a report computed from raw rows would cost.

Printed: the time of each, their ratio, and a check that the report's readings count and extremes equal the
raw table's. Figures come from one run on one (shared) machine; compare the ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import archmon.sqlite as archmon_sqlite
from archmon.config import Config, load_config
from bench._suite import BenchResult, Scale, ratio_row
from collector.store import SqliteStore, value_bin, value_sql
from collector.store._summary import slot_words
from dashboards.reports import ReportRequest, build_report
from dashboards.reports.json_format import write_json
from dashboards.reports.pdf_report import render_report_pdf

TZ = ZoneInfo("Asia/Shanghai")
START = dt.date(2025, 1, 1)
T0 = round(dt.datetime.combine(START, dt.time(0), tzinfo=TZ).timestamp() * 1000)
MINUTE, HOUR = 60_000, 3_600_000
QUANTITIES = {"temperature": 200, "humidity": 500}  # base value in tenths


def tenths(base: int, sensor: int, minute: int) -> int:
    """The value (tenths) of minute ``minute`` since T0: a daily swing of 3 units, a weekly step, a sensor offset.
    ``raw_sql`` computes the same in SQLite."""
    return base + sensor % 5 + abs(minute % 1440 - 720) // 24 + (minute // 1440) % 7


def raw_sql(sid: int, base: int, sensor: int, minutes: int) -> str:
    """One series' raw readings generated in SQLite (same values as :func:`tenths`)."""
    return (f"WITH RECURSIVE m(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM m WHERE i < {minutes - 1}) "
            f"INSERT INTO readings (series_id, ts, value) SELECT {sid}, {T0} + i * {MINUTE}, "
            f"({base} + {sensor % 5} + abs(i % 1440 - 720) / 24 + (i / 1440) % 7) * 10 FROM m")  # hundredths, as
    # the store keeps an exact decimal (collector.store._values)


def config(folder: Path, sensors: int) -> Config:
    """A site of 10 rooms sharing the sensors."""
    path = folder / "archmon.toml"
    path.write_text(
        f'[site]\nname = "bench"\ntimezone = "{TZ.key}"\n'
        + "".join(f'[[rooms]]\nid = "r{i:02d}"\n' for i in range(10))
        + '[[serial]]\nid = "bus"\ndevice = "/dev/null"\nprotocol = "line"\nline_pattern = "(?P<sensor>x)"\n'
        + "".join(f'[[sensors]]\nid = "th{i:03d}"\nroom = "r{i % 10:02d}"\nsource = "bus"\nexpected_interval_s = 60\n'
                  for i in range(sensors)), encoding="utf-8")
    return load_config(path)


def _hour_rows(sid: int, base: int, sensor: int, days: int) -> Iterator[tuple[tuple, list[tuple]]]:
    """Per hour, the ``summary_hour`` row and its ``summary_hour_bins`` rows (one reading a minute)."""
    present = sum(1 << (m * 6) for m in range(60))  # a reading every minute: every 6th 10-second slot
    words = slot_words(present)
    room = f"r{sensor % 10:02d}"
    for hour in range(days * 24):
        start = T0 + hour * HOUR
        values = [tenths(base, sensor, hour * 60 + m) for m in range(60)]
        bins: dict[int, list[int]] = {}
        for m, v in enumerate(values):
            cell = bins.setdefault(v, [0, m * MINUTE, m * MINUTE, 0])
            cell[0] += 1
            cell[2] = m * MINUTE
            cell[3] |= 1 << m
        row = (sid, room, start, min(values) / 10, max(values) / 10, sum(values) / 10, 60, *words, *(0,) * 6,
               0, values[0] / 10, 59 * MINUTE, values[-1] / 10)
        yield row, [(sid, room, start, value_bin(b / 10), c, f, la, minutes)
                    for b, (c, f, la, minutes) in bins.items()]


def generate(folder: Path, sensors: int, days: int) -> tuple[Path, Path, float]:
    """Both files; returns their paths and the seconds generation took."""
    started = time.perf_counter()
    paths = folder / "summaries.db", folder / "raw.db"
    for path in paths:
        SqliteStore(path, tz=TZ).close()  # the store's schema, migrated
    series = [(i * 2 + j + 1, f"th{i:03d}", q, base) for i in range(sensors) for j, (q, base) in
              enumerate(QUANTITIES.items())]
    for path in paths:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO series (id, sensor, quantity, room) VALUES (?, ?, ?, ?)",
                         [(sid, name, q, f"r{int(name[2:]) % 10:02d}") for sid, name, q, _ in series])
        conn.executemany("INSERT INTO sensor_rooms (sensor, from_ms, room) VALUES (?, ?, ?)",
                         [(f"th{i:03d}", T0, f"r{i % 10:02d}") for i in range(sensors)])
        conn.execute("COMMIT")
        conn.close()
    conn = sqlite3.connect(paths[0], isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    head = ("INSERT INTO summary_hour (series_id, room, start_ms, min, max, sum, count, p0, p1, p2, p3, p4, p5,"
            " h0, h1, h2, h3, h4, h5, first_ms, first_value, last_ms, last_value) VALUES (" + ", ".join("?" * 23) + ")")
    for sid, name, _, base in series:
        hours, bins = [], []
        for row, cells in _hour_rows(sid, base, int(name[2:]), days):
            hours.append(row)
            bins += cells
        conn.executemany(head, hours)
        conn.executemany("INSERT INTO summary_hour_bins VALUES (" + ", ".join("?" * 8) + ")", bins)
    conn.execute("COMMIT")
    conn.close()
    conn = sqlite3.connect(paths[1], isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    for sid, name, _, base in series:
        conn.execute(raw_sql(sid, base, int(name[2:]), days * 1440))
    conn.execute("COMMIT")
    conn.close()
    return paths[0], paths[1], time.perf_counter() - started


def _watch_tables(seen: set[str]) -> None:
    """Record every table any archmon connection's statements read (the report's, here)."""
    original = archmon_sqlite.connect

    def connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = original(*args, **kwargs)  # type: ignore[arg-type]

        def authorize(action: int, table: str | None, *_: object) -> int:
            if action == sqlite3.SQLITE_READ and table:
                seen.add(table)
            return sqlite3.SQLITE_OK

        conn.set_authorizer(authorize)
        return conn

    archmon_sqlite.connect = connect  # type: ignore[assignment]


class ReportFigures(NamedTuple):
    """Seconds of each, in one run on the same data."""

    readings: int
    generate_s: float
    scan_s: float  # SELECT count/min/max/sum over the raw table (all in SQLite)
    daily_s: float  # the plain per-day scan: min/max/mean per series and local day over the raw table
    fetch_s: float  # every raw row handed to Python
    json_s: float  # build_report + write_json
    pdf_s: float | None  # build_report + render_report_pdf (None: not measured)
    pdf_pages: int | None
    rooms: int
    tables: tuple[str, ...]


def measure(folder: Path, sensors: int, days: int, *, pdf: bool = True) -> ReportFigures:
    """Generate both files, time the baselines and the report (JSON, then PDF), check they agree."""
    summaries, raw, took = generate(folder, sensors, days)
    readings = 2 * sensors * days * 1440
    conn = sqlite3.connect(raw)
    started = time.perf_counter()
    value = value_sql()  # the stored layout: hundredths where exact (store migration 7)
    scan = f"SELECT count(*), min({value}), max({value}), sum({value}) FROM readings"
    count, low, high, _ = conn.execute(scan).fetchone()
    scan_s = time.perf_counter() - started
    offset = round(TZ.utcoffset(dt.datetime(2025, 1, 1)).total_seconds() * 1000)
    started = time.perf_counter()
    daily = conn.execute(f"SELECT series_id, (ts + {offset}) / 86400000 AS day, min({value}), max({value}),"
                         f" avg({value}),"
                         " count(*) FROM readings GROUP BY series_id, day").fetchall()
    daily_s = time.perf_counter() - started
    assert len(daily) == 2 * sensors * days, len(daily)
    started = time.perf_counter()
    for _ in conn.execute(f"SELECT series_id, ts, {value} FROM readings"):
        pass
    fetch_s = time.perf_counter() - started
    conn.close()
    seen: set[str] = set()
    _watch_tables(seen)
    site = config(folder, sensors)
    store = SqliteStore(summaries, tz=TZ, readonly=True)
    request = ReportRequest(START, START + dt.timedelta(days=days - 1), lang="en",
                            now_ms=T0 + (days + 1) * 86_400_000)
    pdf_s = pages = None
    try:
        assert store.count_readings() == 0, "the report's file must hold no raw readings"
        seen.clear()
        started = time.perf_counter()
        report = build_report(site, store, request)
        write_json(report, io.StringIO())
        json_s = time.perf_counter() - started
        if pdf:
            started = time.perf_counter()
            rendered = render_report_pdf(site, store, build_report(site, store, request))
            pdf_s, pages = time.perf_counter() - started, rendered.pages
    finally:
        store.close()
    stats = [q for room in report.rooms for q in room.quantities.values()]
    total = sum(q.readings for q in stats)
    extremes = (min(q.min for q in stats if q.min is not None), max(q.max for q in stats if q.max is not None))
    assert total == count == readings, (total, count, readings)
    assert extremes == (low, high), (extremes, low, high)
    assert "readings" not in seen, seen
    return ReportFigures(readings, took, scan_s, daily_s, fetch_s, json_s, pdf_s, pages, len(report.rooms),
                         tuple(sorted(seen)))


SIZES: dict[str, tuple[int, int]] = {"toy": (2, 2), "quick": (50, 30), "full": (50, 365)}  # sensors, days


def suite(scale: Scale, folder: Path) -> BenchResult:
    """The report (JSON and PDF) against the plain per-day SQL scan of the raw table."""
    sensors, days = SIZES[scale]
    f = measure(folder, sensors, days, pdf=scale != "toy")  # WeasyPrint needs ~10 s even for 2 days
    base = "plain SQL: min/max/mean per series and day over the raw table"
    rows = [ratio_row(f"{days}-day report, JSON ({sensors} sensors at 1/min)", f.json_s, f.daily_s, "s", base,
                      goal="ratio < 1", at_most=1.0)]
    if f.pdf_s is not None:
        rows.append(ratio_row(f"{days}-day report, PDF ({f.pdf_pages} pages)", f.pdf_s, f.daily_s, "s", base,
                              goal="ratio < 1", at_most=1.0))
    notes = [f"{f.readings:,} readings generated in {f.generate_s:.0f} s; whole-table scan {f.scan_s:.2f} s, every raw "
             f"row handed to Python {f.fetch_s:.2f} s; the report read only {', '.join(f.tables)} (raw table empty)"]
    if f.pdf_s is None:
        notes.append("toy: no PDF")
    if scale == "quick":
        notes.append(f"quick: {days} days, not 365 (the report's time grows with the days, as the scan's)")
    return BenchResult("report", rows, sizes={"sensors": sensors, "days": days, "readings": f.readings}, notes=notes)


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--sensors", type=int, default=50, help="temperature/humidity sensors (two series each)")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the files (default: a tmp dir)")
    parser.add_argument("--no-pdf", dest="pdf", action="store_false", help="time the JSON report only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        f = measure(Path(tmp), args.sensors, args.days, pdf=args.pdf)
        print(f"generated {f.readings:,} readings ({args.sensors} sensors x 2 quantities, {args.days} days at 1/min) "
              f"in {f.generate_s:.0f} s")
        print(f"plain SQL scan of the raw table: {f.scan_s:.2f} s; min/max/mean per series and day: {f.daily_s:.2f} s; "
              f"handing every raw row to Python (the least a report from raw rows costs): {f.fetch_s:.2f} s")
        print(f"{args.days}-day report of {f.rooms} rooms from the summaries alone (raw table empty): JSON "
              f"{f.json_s:.2f} s (x{f.json_s / f.daily_s:.2f} of the per-day scan)"
              + (f", PDF {f.pdf_s:.2f} s, {f.pdf_pages} pages (x{f.pdf_s / f.daily_s:.2f})" if f.pdf_s else ""))
        print(f"tables the report's statements read: {', '.join(f.tables)}")
        print(f"check: the report counts {f.readings:,} readings, extremes equal the raw table's")


if __name__ == "__main__":
    main()
