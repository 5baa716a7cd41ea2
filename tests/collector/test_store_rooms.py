"""Room-assignment history of SqliteStore: a reading stays in the room its sensor was in when it was taken."""

from __future__ import annotations

import itertools
import math
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archmon.domain import Reading
from collector.records import Batch
from collector.store import RoomAssignment, SqliteStore

UTC_TZ = ZoneInfo("UTC")
HOUR = 3_600_000
DAY = 86_400_000


def rd(ts: int, room: str, sensor: str = "th1", quantity: str = "temperature", value: float = 20.0) -> Reading:
    return Reading(sensor=sensor, quantity=quantity, value=value, ts_ms=ts, room=room)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "rooms.db", tz=UTC_TZ)
    yield s
    s.close()


def rooms_of(store: SqliteStore, sensor: str = "th1") -> dict[tuple[str, int], str]:
    """``(quantity, ts) -> room`` of every stored reading of ``sensor``."""
    return {(q, ts): room for ts, room, s, q, _ in store.readings(-(2**62), 2**62, {sensor})}


def test_move_starts_at_the_earliest_reading_with_the_new_room_in_the_batch(store: SqliteStore) -> None:
    store.write(Batch(readings=[rd(1000, "A"), rd(2000, "A")]))
    assert store.room_assignments("th1") == [RoomAssignment("A", 1000, None)]
    # readings of a batch need not be in time order
    store.write(Batch(readings=[rd(5000, "B"), rd(3000, "B"), rd(4000, "B", quantity="humidity")]))
    assert store.room_assignments("th1") == [("A", 1000, 3000), ("B", 3000, None)]
    assert rooms_of(store) == {
        ("temperature", 1000): "A",
        ("temperature", 2000): "A",
        ("temperature", 3000): "B",
        ("humidity", 4000): "B",
        ("temperature", 5000): "B",
    }
    # moving back is a third assignment, not a return to the first
    store.write(Batch(readings=[rd(6000, "A")]))
    assert [a.room for a in store.room_assignments("th1")] == ["A", "B", "A"]
    assert rooms_of(store)[("temperature", 5000)] == "B"


def test_readings_without_a_room_never_move_the_sensor(store: SqliteStore) -> None:
    store.write(Batch(readings=[rd(1000, "A"), rd(2000, "")]))
    assert store.room_assignments("th1") == [("A", 1000, None)]
    assert set(rooms_of(store).values()) == {"A"}


def test_late_reading_after_a_move_stays_in_the_room_of_its_time(store: SqliteStore) -> None:
    """The choice for late data: a reading is placed by its timestamp, never by the room it arrives with.

    A move is only known from readings carrying the new room. A reading no newer than the sensor's newest
    stored reading (buffered by the device, redelivered, replayed from the spool after a config change)
    is "late": it never moves the sensor and counts in the room assigned at its timestamp. A move starts
    at the earliest non-late reading with the new room, so stored history never moves.
    """
    store.write(Batch(readings=[rd(1000, "A"), rd(5000, "A")]))
    # after the move the device delivers a buffered reading from before 5000, then current ones
    store.write(Batch(readings=[rd(4000, "B"), rd(7000, "B"), rd(6500, "B", quantity="humidity")]))
    assert store.room_assignments("th1") == [("A", 1000, 6500), ("B", 6500, None)]
    assert rooms_of(store) == {
        ("temperature", 1000): "A",
        ("temperature", 4000): "A",
        ("temperature", 5000): "A",
        ("humidity", 6500): "B",
        ("temperature", 7000): "B",
    }
    # late readings arriving later still go by their timestamp
    store.write(Batch(readings=[rd(3000, "B"), rd(6000, "B")]))
    assert rooms_of(store)[("temperature", 3000)] == "A"
    assert rooms_of(store)[("temperature", 6000)] == "A"
    # a late reading with another room (spool replay of data tagged before a config change) moves nothing
    store.write(Batch(readings=[rd(2000, "A"), rd(6800, "C")]))
    assert store.room_assignments("th1") == [("A", 1000, 6500), ("B", 6500, None)]
    assert rooms_of(store)[("temperature", 6800)] == "B"
    assert store.latest()[0].room == "B"
    # the first newer reading with another room moves the sensor
    store.write(Batch(readings=[rd(9000, "C"), rd(5500, "C", quantity="humidity")]))
    assert store.room_assignments("th1")[-1] == ("C", 9000, None)
    assert rooms_of(store)[("humidity", 5500)] == "A"


def test_reading_older_than_the_first_assignment_extends_it(store: SqliteStore) -> None:
    store.write(Batch(readings=[rd(5000, "A")]))
    store.write(Batch(readings=[rd(8000, "B")]))
    store.write(Batch(readings=[rd(1000, "B", quantity="humidity")]))
    assert store.room_assignments("th1") == [("A", 1000, 8000), ("B", 8000, None)]
    assert rooms_of(store)[("humidity", 1000)] == "A"


def test_failed_write_leaves_no_assignment(store: SqliteStore) -> None:
    store.write(Batch(readings=[rd(1000, "A")]))
    with pytest.raises(ValueError, match="not a finite number"):
        store.write(Batch(readings=[rd(2000, "B"), rd(3000, "B", value=math.nan)]))
    assert store.room_assignments("th1") == [("A", 1000, None)]
    store.write(Batch(readings=[rd(500, "A"), rd(4000, "C")]))
    assert store.room_assignments("th1") == [("A", 500, 4000), ("C", 4000, None)]


def test_history_survives_reopen_and_moves_of_other_sensors(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    s = SqliteStore(path, tz=UTC_TZ)
    s.write(Batch(readings=[rd(1000, "A"), rd(1000, "A", sensor="th2")]))
    s.write(Batch(readings=[rd(2000, "B")]))
    s.close()
    s = SqliteStore(path, tz=UTC_TZ)
    try:
        s.write(Batch(readings=[rd(3000, "B"), rd(3000, "A", sensor="th2")]))
        assert s.room_assignments("th1") == [("A", 1000, 2000), ("B", 2000, None)]
        assert s.room_assignments("th2") == [("A", 1000, None)]
    finally:
        s.close()


def _old_file(path: Path) -> None:
    """Make ``path`` look like a store written before room history existed."""
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE sensor_rooms")
        conn.execute("DROP TABLE schema_migrations")  # written before archmon recorded migrations


def test_old_database_is_seeded_from_series_rooms(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    s = SqliteStore(path, tz=UTC_TZ)
    s.write(
        Batch(
            readings=[
                rd(10 * HOUR + 5, "A"),
                rd(11 * HOUR, "A"),
                rd(9 * HOUR, "A", quantity="humidity"),
                rd(12 * HOUR, "B", sensor="th2"),
                rd(12 * HOUR, "", sensor="nowhere"),
            ]
        )
    )
    s.close()
    _old_file(path)
    with sqlite3.connect(path) as conn:
        # what the old code left after th1 was moved while its humidity had stopped reporting
        conn.execute("UPDATE series SET room = 'C' WHERE sensor = 'th1' AND quantity = 'temperature'")

    # a read-only open (archmon export) of the old file works and changes nothing
    ro = SqliteStore(path, tz=UTC_TZ, readonly=True)
    try:
        assert ro.room_assignments("th1") == [("C", 9 * HOUR, None)]
        assert {r[1] for r in ro.readings(0, DAY, {"th1"})} == {"C"}
    finally:
        ro.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'sensor_rooms'").fetchone() is None

    for _ in range(2):  # seeding is idempotent
        s = SqliteStore(path, tz=UTC_TZ)
        try:
            # the room of the series with the newest reading, from the sensor's first reading
            assert s.room_assignments("th1") == [("C", 9 * HOUR, None)]
            assert s.room_assignments("th2") == [("B", 12 * HOUR, None)]
            assert s.room_assignments("nowhere") == []
            assert [r[1] for r in s.readings(0, DAY, rooms=["C"])] == ["C"] * 3
        finally:
            s.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM sensor_rooms").fetchone()[0] == 2
        assert dict(conn.execute("SELECT key, value FROM store_meta"))["schema_version"] == "2"  # step 7

    s = SqliteStore(path, tz=UTC_TZ)
    try:
        s.write(Batch(readings=[rd(13 * HOUR, "D")]))  # a move after the upgrade is tracked
        assert s.room_assignments("th1") == [("C", 9 * HOUR, 13 * HOUR), ("D", 13 * HOUR, None)]
        assert rooms_of(s)[("temperature", 11 * HOUR)] == "C"
    finally:
        s.close()


def test_seed_after_retention_starts_at_the_first_rollup(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    s = SqliteStore(path, tz=UTC_TZ)
    s.write(Batch(readings=[rd(2 * HOUR + 10, "A"), rd(40 * DAY, "A")]))
    assert s.apply_retention(41 * DAY, 30, 0)["readings"] == 1
    s.close()
    _old_file(path)
    s = SqliteStore(path, tz=UTC_TZ)
    try:
        assert s.room_assignments("th1") == [("A", 2 * HOUR, None)]  # the hour bucket kept of the pruned reading
    finally:
        s.close()


# -- property ----------------------------------------------------------------------------------------

_reading = st.tuples(
    st.sampled_from(["s1", "s2"]),
    st.sampled_from(["temperature", "humidity"]),
    st.integers(min_value=0, max_value=40),
    st.sampled_from(["A", "B", "C"]),
)


@settings(max_examples=60, deadline=None)
@given(batches=st.lists(st.lists(_reading, max_size=8), min_size=1, max_size=6), in_order=st.booleans())
def test_history_never_moves_and_in_order_data_keeps_its_room(
    batches: list[list[tuple[str, str, int, str]]], in_order: bool
) -> None:
    """Whatever arrives: stored readings keep their room, rooms partition the readings, the room reported
    is the sensor's assignment at the reading's time, and the current room is that of the sensor's last
    reading that was not late. Data arriving in time order is reported in the room it came with."""
    if in_order:  # strictly increasing timestamps across all batches, so no reading is late
        flat = [(sensor, q, i, room) for i, (sensor, q, _, room) in enumerate(r for b in batches for r in b)]
        sizes = [len(b) for b in batches]
        batches = [flat[sum(sizes[:k]) : sum(sizes[: k + 1])] for k in range(len(batches))]
    with tempfile.TemporaryDirectory() as tmp:
        s = SqliteStore(Path(tmp) / "p.db", tz=UTC_TZ)
        try:
            seen: dict[tuple[str, str, int], str] = {}
            tags: dict[tuple[str, str, int], str] = {}
            current: dict[str, str] = {}  # model: the sensor's current room
            newest: dict[str, int] = {}  # model: the sensor's newest stored reading
            for batch in batches:
                s.write(Batch(readings=[rd(ts * 1000, room, sensor, q) for sensor, q, ts, room in batch]))
                before = dict(newest)
                for sensor, q, ts, room in batch:
                    tags.setdefault((sensor, q, ts * 1000), room)
                    if sensor not in before or ts * 1000 > before[sensor]:  # not late: moves the sensor
                        current[sensor] = room
                    newest[sensor] = max(newest.get(sensor, ts * 1000), ts * 1000)
                rows = list(s.readings(-(2**62), 2**62))
                assert [r[0] for r in rows] == sorted(r[0] for r in rows)
                now = {(sensor, q, ts): room for ts, room, sensor, q, _ in rows}
                assert len(now) == len(rows) == s.count_readings()
                assert all(now[key] == room for key, room in seen.items())  # history never moves
                seen = now
            by_room = [row for room in "ABC" for row in s.readings(-(2**62), 2**62, rooms=[room])]
            assert sorted(by_room) == sorted(rows)
            for sensor in ("s1", "s2"):
                spans = s.room_assignments(sensor)
                assert all(a.from_ms < b.from_ms and a.to_ms == b.from_ms for a, b in itertools.pairwise(spans))
                for (sen, _, ts), room in seen.items():
                    if sen == sensor:
                        assert spans[0].from_ms <= ts
                        assert room == next(a.room for a in spans if a.to_ms is None or ts < a.to_ms)
                assert (spans[-1].room if spans else None) == current.get(sensor)
                assert {v.room for v in s.latest() if v.sensor == sensor} <= {current.get(sensor)}
            if in_order:
                assert seen == tags
        finally:
            s.close()
