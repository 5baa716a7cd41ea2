"""Export of stored readings to CSV and JSON Lines from a real SqliteStore."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from archmon.domain import Reading
from collector.export import COLUMNS, export
from collector.records import Batch
from collector.store import SqliteStore

T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "e.db", tz=ZoneInfo("Asia/Shanghai"))
    s.write(
        Batch(
            readings=[
                Reading("th1", "temperature", 21.5, T0 + 1, "库房1"),
                Reading("th1", "humidity", 52.1, T0 + 1, "库房1"),
                Reading("th2", "temperature", 0.1 + 0.2, T0 + 60_000, "film"),
                Reading("door1", "door", 1.0, T0 + 120_000, "film"),
                Reading("th1", "temperature", 22.0, T0 + 3_600_000, "库房1"),
            ]
        )
    )
    yield s
    s.close()


def test_csv_has_exact_columns_iso_times_and_clean_values(store: SqliteStore) -> None:
    out = io.StringIO()
    n = export(store, out, start_ms=T0, end_ms=T0 + 3_600_000, site="Site A", rooms=None, sensors=None, fmt="csv")
    assert n == 4
    assert out.getvalue().splitlines() == [
        "ts,site,room,sensor,quantity,value",
        "2025-01-01T00:00:00.001Z,Site A,库房1,th1,humidity,52.1",
        "2025-01-01T00:00:00.001Z,Site A,库房1,th1,temperature,21.5",
        "2025-01-01T00:01:00.000Z,Site A,film,th2,temperature,0.30000000000000004",
        "2025-01-01T00:02:00.000Z,Site A,film,door1,door,1.0",
    ]
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert float(rows[2]["value"]) == 0.1 + 0.2  # round-trips exactly


def test_filters_by_room_and_sensor(store: SqliteStore) -> None:
    out = io.StringIO()
    n = export(store, out, start_ms=0, end_ms=T0 * 2, site="s", rooms=["film"], sensors=None, fmt="csv")
    assert n == 2 and {row["sensor"] for row in csv.DictReader(io.StringIO(out.getvalue()))} == {"th2", "door1"}
    out = io.StringIO()
    n = export(store, out, start_ms=0, end_ms=T0 * 2, site="s", rooms=["库房1", "film"], sensors={"th1"}, fmt="csv")
    assert n == 3 and {row["sensor"] for row in csv.DictReader(io.StringIO(out.getvalue()))} == {"th1"}
    out = io.StringIO()
    assert export(store, out, start_ms=0, end_ms=T0 * 2, site="s", rooms=[], sensors=None, fmt="csv") == 0
    assert out.getvalue() == "ts,site,room,sensor,quantity,value\n"


def test_jsonl_objects_have_the_same_keys(store: SqliteStore) -> None:
    out = io.StringIO()
    n = export(store, out, start_ms=T0, end_ms=T0 + 4_000_000, site="站点", rooms=None, sensors=None, fmt="jsonl")
    lines = out.getvalue().splitlines()
    assert n == len(lines) == 5
    objects = [json.loads(line) for line in lines]
    assert all(tuple(obj) == COLUMNS for obj in objects)
    assert objects[0] == {
        "ts": "2025-01-01T00:00:00.001Z",
        "site": "站点",
        "room": "库房1",
        "sensor": "th1",
        "quantity": "humidity",
        "value": 52.1,
    }
    assert '"value": 52.1}' in lines[0] and "库房1" in lines[0]
    assert objects[-1]["ts"] == "2025-01-01T01:00:00.000Z"


def test_rejects_bad_arguments(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="format"):
        export(store, io.StringIO(), start_ms=0, end_ms=1, site="s", rooms=None, sensors=None, fmt="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="before it starts"):
        export(store, io.StringIO(), start_ms=5, end_ms=1, site="s", rooms=None, sensors=None, fmt="csv")


class _CountingSink(io.TextIOBase):
    def __init__(self) -> None:
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)


def test_export_streams_in_constant_memory(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "big.db", tz=ZoneInfo("UTC"))
    try:
        n = 30_000
        s.write(Batch(readings=[Reading(f"s{i % 4}", "temperature", 20.25, T0 + i, "r") for i in range(n)]))
        for fmt in ("csv", "jsonl"):
            sink = _CountingSink()
            tracemalloc.start()
            try:
                written = export(s, sink, start_ms=T0, end_ms=T0 + n, site="x", rooms=None, sensors=None, fmt=fmt)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert written == n
            assert sink.lines == n + (1 if fmt == "csv" else 0)
            assert peak < 500_000  # 30k formatted rows held at once would be several MB
    finally:
        s.close()


def test_sensor_moved_mid_range_is_exported_in_the_room_of_each_reading(tmp_path: Path) -> None:
    """th1 moves from 库房1 to film at 00:30; an export by room over the whole period splits it there."""
    s = SqliteStore(tmp_path / "moved.db", tz=ZoneInfo("Asia/Shanghai"))
    minute = 60_000
    try:
        s.write(
            Batch(readings=[Reading("th1", "temperature", 20.0 + i, T0 + i * 10 * minute, "库房1") for i in range(3)])
        )
        s.write(Batch(readings=[Reading("th2", "temperature", 18.0, T0 + 15 * minute, "film")]))
        s.write(
            Batch(
                readings=[
                    Reading("th1", "temperature", 30.0 + i, T0 + (30 + i * 10) * minute, "film") for i in range(3)
                ]
            )
        )

        def rows(rooms: list[str] | None, start: int = T0, end: int = T0 + 3_600_000) -> list[tuple[str, str, str]]:
            out = io.StringIO()
            export(s, out, start_ms=start, end_ms=end, site="s", rooms=rooms, sensors=None, fmt="csv")
            return [(r["ts"][11:16], r["room"], r["sensor"]) for r in csv.DictReader(io.StringIO(out.getvalue()))]

        assert rows(["库房1"]) == [("00:00", "库房1", "th1"), ("00:10", "库房1", "th1"), ("00:20", "库房1", "th1")]
        assert rows(["film"]) == [
            ("00:15", "film", "th2"),
            ("00:30", "film", "th1"),
            ("00:40", "film", "th1"),
            ("00:50", "film", "th1"),
        ]
        assert [room for _, room, _ in rows(None)] == ["库房1", "库房1", "film", "库房1", "film", "film", "film"]
        # a period that starts in one assignment and ends in the next
        assert rows(["库房1"], T0 + 15 * minute, T0 + 45 * minute) == [("00:20", "库房1", "th1")]
        assert rows(["film"], T0 + 15 * minute, T0 + 45 * minute) == [
            ("00:15", "film", "th2"),
            ("00:30", "film", "th1"),
            ("00:40", "film", "th1"),
        ]
    finally:
        s.close()
