"""Dashboard benchmark: time to first byte of the room chart for one year of one-minute data, and of the
overview of a 200-room site with several sensors per room.

1. One room, one sensor, 525,600 one-minute readings of temperature and of humidity (written through the
   real store, so the rollups are the real ones). The chart API for ``range=1y`` reads the hour rollups;
   the baseline, measured in the same run, is the raw scan a naive chart would do (every raw reading of
   the year through the store's read API, downsampled in Python to the same width).
2. 200 rooms with five sensors each (two T/RH, door, smoke, leak) and a day of 5-minute data: the
   overview page, ``/api/rooms`` and the cards computed in process; the baseline, in the same run and on
   the same file, is the same site configured with one T/RH sensor per room. The cards' time must grow no
   faster than the sensors (the reading of the snapshot dominates); cards that compare every room with
   every series grow with rooms × series.

Run: ``.venv/bin/python bench/bench_web.py [--days 365] [--rooms 200]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archmon.config import parse_config
from archmon.domain import Reading
from archmon.timeutil import now_ms
from bench._suite import BenchResult, Scale, ratio_row
from collector.records import Batch
from collector.store import SqliteStore
from dashboards.web import WebServer, build_app
from dashboards.web.overview import room_cards, snapshot

DAY = 86_400_000
MINUTE = 60_000
KINDS = ("temperature_humidity", "temperature_humidity", "door", "smoke", "leak")


def _sensor(room: int, j: int) -> str:
    return f"S{room:03d}_{j}"


def _config(folder: Path, rooms: int, per_room: int) -> object:
    return parse_config({
        "site": {"name": "bench", "timezone": "Asia/Shanghai"},
        "storage": {"sqlite_path": str(folder / "archmon.db")},
        "rooms": [{"id": f"R{i:03d}", "name_zh": f"{i}号库房", "name_en": f"Store {i}"} for i in range(rooms)],
        "mqtt": [{"id": "broker", "port": 1}],
        "sensors": [{"id": _sensor(i, j), "room": f"R{i:03d}", "kind": KINDS[j], "source": "broker",
                     "topic": f"z/{_sensor(i, j)}", "format": "zigbee2mqtt", "expected_interval_s": 60}
                    for i in range(rooms) for j in range(per_room)],
    })


def _fill(store: SqliteStore, sensor: str, room: str, start: int, count: int, step_ms: int) -> None:
    batches: list[Batch] = []
    for block in range(0, count, 1440):
        rows = []
        for i in range(block, min(block + 1440, count)):
            ts = start + i * step_ms
            rows += [Reading(sensor, "temperature", 19 + (i % 1440) / 720, ts, room),
                     Reading(sensor, "humidity", 50 + (i % 720) / 144, ts, room)]
        batches.append(Batch(readings=rows))
        if len(batches) == 30:
            store.write_many(batches)
            batches = []
    if batches:
        store.write_many(batches)


def _ttfb(client: httpx.Client, url: str, repeat: int) -> tuple[float, int]:
    """Median seconds to the first body byte, and the body size."""
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        with client.stream("GET", url) as response:
            response.raise_for_status()
            chunks = response.iter_bytes()
            first = next(chunks)
            times.append(time.perf_counter() - start)
            size = len(first) + sum(len(c) for c in chunks)
    return statistics.median(times), size


def _raw_scan(store: SqliteStore, sensor: str, start: int, end: int, width: int) -> int:
    """The baseline: every raw reading of the range, downsampled to ``width`` slots in Python."""
    rows = store.series(sensor, "temperature", start, end)
    step = max(1, (end - start) // width)
    slots: dict[int, list[float]] = {}
    for ts, value in rows:
        slots.setdefault((ts - start) // step, []).append(value)
    return len([(min(v), max(v), sum(v) / len(v)) for v in slots.values()])


def _fill_states(store: SqliteStore, rooms: int, end: int) -> None:
    """The door, smoke and leak sensors of every room: one reading each (closed, clear, dry)."""
    rows = [Reading(_sensor(i, j), ("door", "smoke", "leak")[j - 2], 0.0, end - MINUTE, f"R{i:03d}")
            for i in range(rooms) for j in (2, 3, 4)]
    store.write_many([Batch(readings=rows)])


def _cards_ms(app: object, repeat: int) -> float:
    """Median milliseconds to read the snapshot and compute every card, in process."""
    ctx = app.state.ctx  # type: ignore[attr-defined]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        room_cards(ctx, snapshot(ctx))
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _overview(app: object, token: str, repeat: int) -> tuple[float, int, float]:
    """Median TTFB of ``/`` (and its size) and of ``/api/rooms``, in seconds, over HTTP."""
    server = WebServer(app, "127.0.0.1", 0)  # type: ignore[arg-type]
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
            page_s, page_bytes = _ttfb(c, "/", repeat)
            api_s, _ = _ttfb(c, "/api/rooms", repeat)
    finally:
        server.stop()
    return page_s, page_bytes, api_s


def _load(urls: list[str], token: str, clients: int, seconds: float, answer: Any) -> None:
    """Child process: for each URL in turn, ``clients`` threads GET it in a loop for ``seconds``; sends a list
    of (ok, errors, seconds)."""
    import threading

    out = []
    for url in urls:
        sessions = [httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) for _ in range(clients)]
        for session in sessions:  # connected before the clock starts
            session.get(url)
        counts = [[0, 0] for _ in range(clients)]
        start = threading.Barrier(clients + 1)
        stop = [0.0]

        def loop(session: httpx.Client, slot: list[int], start: threading.Barrier = start,
                 stop: list[float] = stop, url: str = url) -> None:
            start.wait()
            while time.perf_counter() < stop[0]:
                slot[0 if session.get(url).status_code == 200 else 1] += 1

        threads = [threading.Thread(target=loop, args=(s, c)) for s, c in zip(sessions, counts, strict=True)]
        for t in threads:
            t.start()
        began = time.perf_counter()
        stop[0] = began + seconds
        start.wait()
        for t in threads:
            t.join()
        out.append((sum(c[0] for c in counts), sum(c[1] for c in counts), time.perf_counter() - began))
        for session in sessions:
            session.close()
    answer.send(out)


def requests_per_s(urls: list[str], token: str, clients: int, seconds: float) -> list[float]:
    """Requests/s answered 200 for each URL with ``clients`` concurrent clients, from a child process (the
    load generator must not share the server's interpreter lock)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_load, args=(urls, token, clients, seconds, child))
    proc.start()
    got = parent.recv()
    proc.join()
    for url, (_, errors, _) in zip(urls, got, strict=True):
        if errors:
            raise RuntimeError(f"{url}: {errors} requests not answered 200")
    return [ok / elapsed for ok, _, elapsed in got]


class PageFigures(NamedTuple):
    """One URL: median time to first byte (ms), its size, requests/s with concurrent clients."""

    ttfb_ms: float
    size: int
    rps: float


# rooms, days of one-minute data for the chart's room, TTFB repeats, concurrent clients, seconds of load per URL
SIZES: dict[str, tuple[int, int, int, int, float]] = {
    "toy": (3, 2, 2, 2, 0.3), "quick": (200, 60, 5, 8, 3.0), "full": (200, 365, 20, 8, 10.0)}


def suite(scale: Scale, folder: Path) -> BenchResult:
    """The overview of ``rooms`` rooms and a one-year room chart against ``/static/app.css`` from the same
    server: TTFB (one client) and requests/s (concurrent clients)."""
    rooms, days, repeat, clients, seconds = SIZES[scale]
    config = _config(folder, rooms, len(KINDS))
    db = folder / "archmon.db"
    store = SqliteStore(db, tz=config.site.tz)
    end = now_ms()
    minutes = days * 1440
    _fill(store, _sensor(0, 0), "R000", end - minutes * MINUTE, minutes, MINUTE)
    for i in range(rooms):
        for j in (0, 1):
            if (i, j) != (0, 0):
                _fill(store, _sensor(i, j), f"R{i:03d}", end - DAY, 288, 5 * MINUTE)
    _fill_states(store, rooms, end)
    readings = store.count_readings()
    store.close()
    app = build_app(config, hub=None, db_path=db)
    ctx = app.state.ctx
    ctx.users.add("bench", "viewer", "bench-password-1", by="bench")
    token = ctx.users.create_token("bench", "bench", by="bench")
    server = WebServer(app, "127.0.0.1", 0)
    server.start()
    urls = {"overview": "/", "chart": "/api/rooms/R000/series?quantity=temperature&range=1y&width=1500",
            "static": "/static/app.css"}
    got: dict[str, PageFigures] = {}
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
            for name, url in urls.items():
                ttfb, size = _ttfb(c, url, repeat)
                got[name] = PageFigures(ttfb * 1000, size, 0.0)
        rates = requests_per_s([server.url + url for url in urls.values()], token, clients, seconds)
        for name, rate in zip(urls, rates, strict=True):
            got[name] = got[name]._replace(rps=rate)
    finally:
        server.stop()
        ctx.close()
    static = got["static"]
    label = f"static file ({static.size / 1024:.0f} KiB) from the same server"
    rows = []
    for name, what in (("overview", f"overview of {rooms} rooms ({len(KINDS)} sensors each)"),
                       ("chart", f"room chart, range 1 y ({days} days of 1-minute data)")):
        f = got[name]
        rows.append(ratio_row(f"{what}: TTFB, 1 client", f.ttfb_ms, static.ttfb_ms, "ms", label,
                              note=f"{f.size / 1024:.0f} KiB"))
        rows.append(ratio_row(f"{what}: requests/s, {clients} concurrent clients", f.rps, static.rps, "req/s",
                              label))
    notes = [f"{readings:,} readings in the store; load from a child process ({clients} httpx clients), "
             f"{seconds:g} s per URL"]
    if days != 365:
        notes.append(f"{scale}: the chart's room holds {days} days, not a year")
    return BenchResult("dashboard", rows, sizes={"rooms": rooms, "sensors_per_room": len(KINDS), "chart_days": days,
                                                 "clients": clients, "seconds_per_url": seconds,
                                                 "ttfb_repeats": repeat}, notes=notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = _config(folder, args.rooms, len(KINDS))
        single = _config(folder, args.rooms, 1)  # the baseline: one T/RH sensor per room, same file
        db = folder / "archmon.db"
        store = SqliteStore(db, tz=config.site.tz)
        end = now_ms()
        minutes = args.days * 1440
        t0 = time.perf_counter()
        year_sensor = _sensor(0, 0)
        _fill(store, year_sensor, "R000", end - minutes * MINUTE, minutes, MINUTE)
        for i in range(args.rooms):
            for j in (0, 1):
                if (i, j) != (0, 0):
                    _fill(store, _sensor(i, j), f"R{i:03d}", end - DAY, 288, 5 * MINUTE)
        _fill_states(store, args.rooms, end)
        print(f"wrote {store.count_readings():,} readings ({minutes:,} a minute for one sensor's year, "
              f"{args.rooms} rooms × {len(KINDS)} sensors with a day) in {time.perf_counter() - t0:.1f} s")
        app = build_app(config, hub=None, db_path=db)
        ctx = app.state.ctx
        ctx.users.add("bench", "viewer", "bench-password-1", by="bench")
        token = ctx.users.create_token("bench", "bench", by="bench")
        server = WebServer(app, "127.0.0.1", 0)
        server.start()
        try:
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
                width = 1500
                chart_s, chart_bytes = _ttfb(c, f"/api/rooms/R000/series?quantity=temperature&range=1y&width={width}",
                                             args.repeat)
                points = c.get(f"/api/rooms/R000/series?quantity=temperature&range=1y&width={width}").json()["points"]
                raw_times = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    slots = _raw_scan(store, year_sensor, end - 365 * DAY, end, width)
                    raw_times.append(time.perf_counter() - start)
                raw_s = statistics.median(raw_times)
                print(f"room chart, 1 year of one-minute data: TTFB {chart_s * 1000:.1f} ms over HTTP "
                      f"({points} points, {chart_bytes / 1024:.0f} KiB); raw-scan baseline {raw_s * 1000:.1f} ms "
                      f"in process ({slots} slots from {minutes:,} readings); ratio baseline/chart "
                      f"{raw_s / chart_s:.1f}x")
                day_s, _ = _ttfb(c, "/api/rooms/R000/series?quantity=temperature&range=24h&width=1500", args.repeat)
                page_s, page_bytes = _ttfb(c, "/rooms/R000?range=1y", args.repeat)
                print(f"room chart 24 h (raw): TTFB {day_s * 1000:.1f} ms; room page 1 y (cards, table of 365 days): "
                      f"TTFB {page_s * 1000:.1f} ms ({page_bytes / 1024:.0f} KiB)")
        finally:
            server.stop()
        multi = _overview(app, token, args.repeat), _cards_ms(app, args.repeat)
        base_app = build_app(single, hub=None, db_path=db)
        try:
            base = _overview(base_app, token, args.repeat), _cards_ms(base_app, args.repeat)
        finally:
            base_app.state.ctx.close()
        for label, ((over_s, over_bytes, rooms_s), cards_ms) in (
                (f"{len(KINDS)} sensors per room", multi), ("1 sensor per room (baseline)", base)):
            print(f"overview of {args.rooms} rooms, {label}: TTFB {over_s * 1000:.1f} ms "
                  f"({over_bytes / 1024:.0f} KiB); /api/rooms {rooms_s * 1000:.1f} ms; "
                  f"cards in process {cards_ms:.1f} ms")
        print(f"ratio {len(KINDS)} sensors/1 sensor per room: cards {multi[1] / base[1]:.1f}x, "
              f"page {multi[0][0] / base[0][0]:.1f}x (7 series per room against 2)")
        ctx.close()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
