"""What recorded calibrations cost the ingest pipeline, against the same pipeline without them.

10,000 temperature/humidity sensors (the scale DESIGN.md §10 names), a history of three records for every
other sensor (on a real SQLite file, followed by ``RecordedCorrections``), and batches of 500 Zigbee2MQTT
messages handed to ``Pipeline.handle_many`` (decode, route, validate, stamp, correct; no store). The
baseline is the same pipeline without a correction source (config corrections only). Both run in this one
process, interleaved in alternating order, best of ``--repeat``, timed in CPU seconds of the process (the
work is single-threaded; wall-clock time on a shared machine measures the neighbours).

Run: .venv/bin/python bench/bench_calibration.py [--sensors 10000] [--messages 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.calibration import RecordedCorrections
from alerts.store import AlertStore
from archmon.config import Config, parse_config
from archmon.domain import RawMessage
from collector.calibration import applies_from_ms
from collector.pipeline import Pipeline
from collector.records import Batch, WriteResult

NOW = 1_764_000_000_000  # 2025-11-24T16:00:00Z
BATCH = 500


def _config(folder: Path, sensors: int) -> Config:
    return parse_config({
        "site": {"name": "bench", "timezone": "Asia/Shanghai"},
        "storage": {"sqlite_path": str(folder / "archmon.db")},
        "rooms": [{"id": "paper"}],
        "mqtt": [{"id": "b"}],
        "sensors": [{"id": f"th{i}", "room": "paper", "source": "b", "topic": f"zigbee2mqtt/th{i}",
                     "format": "zigbee2mqtt", "calibration": {"temperature": {"offset": -0.1}}}
                    for i in range(sensors)],
    })


def _history(config: Config, sensors: int, *, year: int | None = None) -> int:
    """Three records (2023, 2024, 2025; or one of ``year``) for every other sensor, in one transaction."""
    store = AlertStore(config.storage.sqlite_path)
    tz = config.site.tz
    count = 0
    try:
        with store.tx():
            for i in range(0, sensors, 2):
                for made in (2023, 2024, 2025) if year is None else (year,):
                    day = dt.date(made, 3, 1)
                    recorded = int(dt.datetime(made, 3, 1, 9, tzinfo=tz).timestamp() * 1000)
                    store.add_calibration(f"th{i}", day, f"JL-{made}-{i}", offset_temperature=0.3,
                                          offset_humidity=-1.0, by="bench", recorded_ms=recorded,
                                          applies_from_ms=applies_from_ms(day, tz, recorded))
                    count += 1
    finally:
        store.close()
    return count


def _submit(batch: Batch) -> Future[WriteResult]:
    future: Future[WriteResult] = Future()
    future.set_result(WriteResult())
    return future


def _messages(sensors: int, count: int) -> list[list[RawMessage]]:
    out = []
    for start in range(0, count, BATCH):
        out.append([RawMessage("b", f"zigbee2mqtt/th{n % sensors}",
                               b'{"temperature": 20.5, "humidity": 51.0, "last_seen": %d}' % (NOW - count + n),
                               NOW) for n in range(start, min(count, start + BATCH))])
    return out


def _run(pipeline: Pipeline, batches: list[list[RawMessage]]) -> tuple[float, int]:
    """CPU seconds of this process (single-threaded work: the machine's other load does not count), readings."""
    began = time.process_time()
    readings = 0
    for messages in batches:
        readings += len(pipeline.handle_many(messages).readings)
    return time.process_time() - began, readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp), args.sensors)
        records = _history(config, args.sensors)
        corrections = RecordedCorrections(config.storage.sqlite_path, look_every_s=0)
        began = time.perf_counter()
        book = corrections.book()
        read_s = time.perf_counter() - began
        _history(config, 1, year=2026)  # one more record: what a running pipeline pays to take it
        began = time.perf_counter()
        assert len(corrections.book()) == records + 1
        take_s = time.perf_counter() - began
        baseline = Pipeline(config, _submit, clock=lambda: NOW)
        recorded = Pipeline(config, _submit, clock=lambda: NOW, corrections=corrections)
        batches = _messages(args.sensors, args.messages)
        best = {"baseline": float("inf"), "recorded": float("inf")}
        counts = {}
        pair = [("baseline", baseline), ("recorded", recorded)]
        for turn in range(args.repeat):  # ABBA...: neither goes first every time (other load on the machine)
            for name, pipeline in (pair if turn % 2 == 0 else pair[::-1]):
                seconds, counts[name] = _run(pipeline, batches)
                best[name] = min(best[name], seconds)
        corrections.close()
    assert counts["baseline"] == counts["recorded"] == 2 * args.messages
    print(f"sensors {args.sensors}, records {records} ({len(book)} in the book), messages {args.messages} "
          f"in batches of {BATCH}, best of {args.repeat}")
    print(f"history read at the first batch: {read_s * 1000:.1f} ms; one record added later taken in "
          f"{take_s * 1000:.2f} ms")
    for name in ("baseline", "recorded"):
        print(f"{name:9s} {best[name]:.3f} s CPU  {args.messages / best[name]:,.0f} messages/s")
    print(f"ratio recorded / baseline (CPU time): {best['recorded'] / best['baseline']:.3f}")


if __name__ == "__main__":
    main()
