"""SqliteStore on real SQLite files: idempotent writes, rollups across zones, retention, read API."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import tempfile
import tracemalloc
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archmon.domain import Reading
from collector.records import AvailabilityRecord, Batch, MqttReceipt, QuarantineRecord, UnassignedRecord
from collector.store import SchemaError, SqliteStore

UTC_TZ = ZoneInfo("UTC")
SHANGHAI = ZoneInfo("Asia/Shanghai")
HOUR = 3_600_000


def ms(text: str) -> int:
    """ISO text with offset -> epoch ms."""
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def reading(ts: int, value: float, sensor: str = "th1", quantity: str = "temperature", room: str = "r1") -> Reading:
    return Reading(sensor=sensor, quantity=quantity, value=value, ts_ms=ts, room=room)


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "archmon.db", tz=SHANGHAI)
    yield s
    s.close()


def test_file_is_wal_full_sync_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    s = SqliteStore(path, tz=SHANGHAI)
    try:
        assert s._writer is not None
        assert s._writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        s.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT key, value FROM store_meta"))
        assert meta == {"schema_version": "2", "timezone": "Asia/Shanghai"}
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        expected = {"series", "readings", "rollup_hour", "rollup_day", "quarantine", "unassigned"}
        assert expected | {"availability", "counters"} <= tables
        # a newer schema is refused with a clear message
        conn.execute("UPDATE store_meta SET value = '99' WHERE key = 'schema_version'")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(SchemaError, match="version 99"):
        SqliteStore(path, tz=SHANGHAI)


def test_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    s = SqliteStore(path, tz=SHANGHAI)
    s.write(Batch(readings=[reading(1000, 20.0)]))
    s.close()
    s = SqliteStore(path, tz=SHANGHAI)
    try:
        assert s.series("th1", "temperature", 0, 2000) == [(1000, 20.0)]
        result = s.write(Batch(readings=[reading(1000, 20.0), reading(2000, 21.0)]))
        assert result.duplicates == 1 and [r.ts_ms for r in result.stored] == [2000]
    finally:
        s.close()


def test_readonly_never_creates_and_never_writes(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SqliteStore(missing, tz=SHANGHAI, readonly=True)
    assert not missing.exists()
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE x (a)")
    conn.close()
    with pytest.raises(SchemaError, match="not an archmon database"):
        SqliteStore(other, tz=SHANGHAI, readonly=True)
    path = tmp_path / "a.db"
    SqliteStore(path, tz=SHANGHAI).close()
    ro = SqliteStore(path, tz=SHANGHAI, readonly=True)
    try:
        with pytest.raises(sqlite3.ProgrammingError, match="read-only"):
            ro.write(Batch(readings=[reading(1, 1.0)]))
        assert ro.count_readings() == 0
    finally:
        ro.close()


def test_duplicates_are_ignored_counted_and_never_overwrite(store: SqliteStore) -> None:
    first = store.write(Batch(readings=[reading(1000, 21.5), reading(1000, 99.0), reading(2000, 22.0)]))
    assert [(r.ts_ms, r.value) for r in first.stored] == [(1000, 21.5), (2000, 22.0)]
    assert first.duplicates == 1
    second = store.write(Batch(readings=[reading(2000, 23.0), reading(3000, 24.0)]))
    assert [r.ts_ms for r in second.stored] == [3000] and second.duplicates == 1
    assert store.series("th1", "temperature", 0, 10_000) == [(1000, 21.5), (2000, 22.0), (3000, 24.0)]
    counters = store.counters()
    assert counters["stored"] == 3 and counters["duplicates"] == 2
    assert counters["duplicates_conflicting"] == 2
    # same ts on another quantity or sensor is not a duplicate
    third = store.write(Batch(readings=[reading(1000, 50.0, quantity="humidity"), reading(1000, 1.0, sensor="x")]))
    assert len(third.stored) == 2 and third.duplicates == 0


def test_rollups_only_count_new_rows(store: SqliteStore) -> None:
    base = ms("2025-01-10T10:00:00+00:00")
    batch = Batch(readings=[reading(base + i * 60_000, v) for i, v in enumerate([20.0, 22.5, 19.5])])
    store.write(batch)
    store.write(batch)  # all duplicates: rollups unchanged
    store.write(Batch(readings=[reading(base + HOUR, 30.0)]))
    hours = store.buckets("th1", "temperature", base, base + 2 * HOUR, "hour")
    assert [(b.start_ms, b.min, b.max, b.sum, b.count) for b in hours] == [
        (base, 19.5, 22.5, 62.0, 3),
        (base + HOUR, 30.0, 30.0, 30.0, 1),
    ]
    assert hours[0].mean == pytest.approx(62.0 / 3)
    days = store.buckets("th1", "temperature", 0, base + 10 * 86_400_000, "day")
    assert len(days) == 1
    assert days[0].start_ms == ms("2025-01-10T00:00:00+08:00")
    assert (days[0].min, days[0].max, days[0].count) == (19.5, 30.0, 4)
    with pytest.raises(ValueError, match="resolution"):
        store.buckets("th1", "temperature", 0, 1, "week")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("zone", "day_start", "next_day_start", "inside"),
    [
        # +5:30: the day starts at 18:30 UTC the evening before
        ("Asia/Kolkata", "2025-03-10T00:00:00+05:30", "2025-03-11T00:00:00+05:30", "2025-03-10T23:59:00+05:30"),
        # spring forward: a 23 h day
        ("Europe/Berlin", "2024-03-31T00:00:00+01:00", "2024-04-01T00:00:00+02:00", "2024-03-31T23:30:00+02:00"),
        # fall back: a 25 h day, the repeated hour belongs to it
        ("Europe/Berlin", "2024-10-27T00:00:00+02:00", "2024-10-28T00:00:00+01:00", "2024-10-27T02:30:00+01:00"),
        # DST starts at midnight: local 00:00 does not exist, the day starts at 01:00 -03 = 04:00 UTC
        ("America/Santiago", "2023-09-03T00:00:00-04:00", "2023-09-04T00:00:00-03:00", "2023-09-03T23:59:00-03:00"),
    ],
)
def test_day_buckets_are_local_calendar_days(
    tmp_path: Path, zone: str, day_start: str, next_day_start: str, inside: str
) -> None:
    s = SqliteStore(tmp_path / "z.db", tz=ZoneInfo(zone))
    try:
        start, end = ms(day_start), ms(next_day_start)
        s.write(
            Batch(
                readings=[
                    reading(start - 1, 1.0),  # last ms of the day before
                    reading(start, 2.0),
                    reading(ms(inside), 3.0),
                    reading(end - 1, 4.0),
                    reading(end, 5.0),  # first ms of the next day
                ]
            )
        )
        days = s.buckets("th1", "temperature", start - 3 * 86_400_000, end + 3 * 86_400_000, "day")
        assert [(b.start_ms, b.count, b.min, b.max) for b in days][1] == (start, 3, 2.0, 4.0)
        assert [b.count for b in days] == [1, 3, 1]
        assert days[2].start_ms == end
    finally:
        s.close()


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.integers(min_value=ms("2024-10-25T00:00:00+00:00"), max_value=ms("2024-10-29T00:00:00+00:00")),
            st.floats(min_value=-40, max_value=85, allow_nan=False),
        ),
        max_size=60,
    ),
    split=st.integers(min_value=0, max_value=60),
)
def test_rollups_match_raw_data(rows: list[tuple[str, int, float]], split: int) -> None:
    """Whatever arrives, in whatever batches, with duplicates: rollups equal aggregates of stored rows."""
    tz = ZoneInfo("Australia/Lord_Howe")  # +10:30/+11 with a 30-minute DST shift
    with tempfile.TemporaryDirectory() as tmp:
        s = SqliteStore(Path(tmp) / "h.db", tz=tz)
        try:
            readings = [reading(ts, v, sensor=sensor) for sensor, ts, v in rows]
            s.write(Batch(readings=readings[:split]))
            s.write(Batch(readings=readings[split:] + readings[: split // 2]))
            for sensor in ("a", "b"):
                raw = s.series(sensor, "temperature", 0, 2**62)
                first: dict[int, float] = {}
                for r in readings:
                    if r.sensor == sensor:
                        first.setdefault(r.ts_ms, r.value)
                assert raw == sorted(first.items())
                for resolution in ("hour", "day"):
                    expected: dict[int, list[float]] = {}
                    for ts, v in raw:
                        if resolution == "hour":
                            key = ts - ts % HOUR
                        else:
                            local = datetime.fromtimestamp(ts / 1000, tz).date()
                            key = ms(datetime(local.year, local.month, local.day, tzinfo=tz).isoformat())
                        expected.setdefault(key, []).append(v)
                    got = s.buckets(sensor, "temperature", 0, 2**62, resolution)  # type: ignore[arg-type]
                    assert [b.start_ms for b in got] == sorted(expected)
                    for b in got:
                        values = expected[b.start_ms]
                        assert (b.min, b.max, b.count) == (min(values), max(values), len(values))
                        assert math.isclose(b.sum, math.fsum(values), abs_tol=1e-9)
        finally:
            s.close()


def test_failed_batch_writes_nothing_and_store_recovers(store: SqliteStore) -> None:
    bad = Batch(
        readings=[reading(1000, 20.0, sensor="new"), reading(2000, math.nan, sensor="new")],
        quarantine=[QuarantineRecord(1, "src", "t", b"x", "bad", "decode")],
        counters={"received": 2},
    )
    with pytest.raises(ValueError, match=r"new/temperature at 2000: value nan"):
        store.write(bad)
    assert store.count_readings() == 0 and store.quarantine_count() == 0 and store.counters() == {}
    # the series created inside the rolled-back transaction must not linger in the id cache
    store.write(Batch(readings=[reading(1000, 20.0, sensor="new")]))
    assert store.series("new", "temperature", 0, 5000) == [(1000, 20.0)]


def test_quarantine_unassigned_availability_counters(store: SqliteStore) -> None:
    payload = b"\xff\xfe{not json"
    store.write(
        Batch(
            quarantine=[
                QuarantineRecord(100, "b1", "zigbee2mqtt/x", payload, "not JSON at byte 0", "decode"),
                QuarantineRecord(
                    200, "b1", "zigbee2mqtt/th1", b"{}", "temperature: 999 out of range", "validate", "th1"
                ),
            ],
            unassigned=[
                UnassignedRecord(500, "b1", "zigbee2mqtt/new", "zigbee2mqtt", b'{"t":2}', '[{"q":"t"}]'),
                UnassignedRecord(300, "b1", "zigbee2mqtt/new", "zigbee2mqtt", b'{"t":1}', "[]"),
            ],
            availability=[AvailabilityRecord("th1", "offline", 2000), AvailabilityRecord("th1", "online", 1000)],
            counters={"received": 3, "quarantined": 2},
        )
    )
    store.write(Batch(availability=[AvailabilityRecord("th1", "online", 3000)], counters={"received": 1}))
    q = store.quarantine()
    assert [r.topic for r in q] == ["zigbee2mqtt/th1", "zigbee2mqtt/x"]
    assert q[0].id > q[1].id and q[0].sensor == "th1" and q[0].stage == "validate"
    assert q[1].payload == payload and q[1].sensor is None and q[1].reason == "not JSON at byte 0"
    assert [r.id for r in store.quarantine(limit=1)] == [q[0].id]
    assert store.quarantine_count() == 2
    (device,) = store.unassigned()
    assert (device.first_seen_ms, device.last_seen_ms, device.count) == (300, 500, 2)
    assert device.last_payload == b'{"t":2}' and device.last_readings_json == '[{"q":"t"}]'
    assert store.availability() == {"th1": ("online", 3000)}
    assert store.counters() == {"received": 4, "quarantined": 2}


def test_latest_last_seen_and_counts(store: SqliteStore) -> None:
    store.write(
        Batch(
            readings=[
                reading(1000, 20.0),
                reading(3000, 21.0),
                reading(2000, 50.0, quantity="humidity"),
                reading(5000, 1.0, sensor="door1", quantity="door", room="r2"),
            ]
        )
    )
    latest = {(v.sensor, v.quantity): (v.value, v.ts_ms, v.room) for v in store.latest()}
    assert latest == {
        ("th1", "temperature"): (21.0, 3000, "r1"),
        ("th1", "humidity"): (50.0, 2000, "r1"),
        ("door1", "door"): (1.0, 5000, "r2"),
    }
    assert store.last_seen() == {"th1": 3000, "door1": 5000}
    assert store.count_readings() == 4
    assert store.count_readings(sensor="th1") == 3
    assert store.count_readings(quantity="temperature") == 2
    assert store.count_readings(sensor="th1", quantity="humidity") == 1


def test_retention_deletes_old_raw_but_keeps_rollups(store: SqliteStore) -> None:
    day = 86_400_000
    now = ms("2025-06-30T12:00:00+00:00")
    store.write(
        Batch(
            readings=[reading(now - 40 * day, 18.0), reading(now - 20 * day, 19.0), reading(now - 1, 20.0)],
            quarantine=[QuarantineRecord(now - 100 * day, "s", "t", b"", "r", "decode")],
        )
    )
    assert store.apply_retention(now, 0, 0) == {"readings": 0, "quarantine": 0, "unassigned": 0}
    assert store.apply_retention(now, 30, 90) == {"readings": 1, "quarantine": 1, "unassigned": 0}
    assert [ts for ts, _ in store.series("th1", "temperature", 0, now)] == [now - 20 * day, now - 1]
    days = store.buckets("th1", "temperature", 0, now + day, "day")
    assert [b.min for b in days] == [18.0, 19.0, 20.0]
    assert store.quarantine_count() == 0


def test_readings_stream_is_ordered_filtered_and_half_open(store: SqliteStore) -> None:
    store.write(
        Batch(
            readings=[
                reading(3000, 1.0, sensor="b", room="r2"),
                reading(1000, 2.0, sensor="a"),
                reading(2000, 3.0, sensor="a", quantity="humidity"),
                reading(2000, 4.0, sensor="b", room="r2"),
                reading(4000, 5.0, sensor="a"),
            ]
        )
    )
    rows = list(store.readings(1000, 4000))
    assert rows == [
        (1000, "r1", "a", "temperature", 2.0),
        (2000, "r1", "a", "humidity", 3.0),
        (2000, "r2", "b", "temperature", 4.0),
        (3000, "r2", "b", "temperature", 1.0),
    ]
    assert [r[0] for r in store.readings(0, 10_000, sensors={"b"})] == [2000, 3000]
    assert [r[2] for r in store.readings(0, 10_000, rooms=["r1"])] == ["a", "a", "a"]
    assert list(store.readings(0, 10_000, sensors=[])) == []


def test_readings_stream_in_constant_memory(store: SqliteStore) -> None:
    n = 30_000
    store.write(Batch(readings=[reading(i * 1000, 20.0 + i % 7, sensor=f"s{i % 3}") for i in range(n)]))
    tracemalloc.start()
    try:
        seen = 0
        last = -1
        for row in store.readings(0, n * 1000):
            assert row[0] >= last
            last = row[0]
            seen += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == n
    assert peak < 500_000  # a list of 30k row tuples alone would take several MB


def test_other_process_reads_while_a_write_is_open(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    s = SqliteStore(path, tz=SHANGHAI)
    try:
        s.write(Batch(readings=[reading(1000, 20.0)]))
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        blocker.execute("INSERT INTO counters (name, value) VALUES ('x', 1)")
        code = (
            "import sys; from pathlib import Path; from zoneinfo import ZoneInfo;"
            "from collector.store import SqliteStore;"
            "s = SqliteStore(Path(sys.argv[1]), tz=ZoneInfo('UTC'), readonly=True);"
            "print(s.count_readings(), s.counters().get('x'), s.series('th1', 'temperature', 0, 9999)); s.close()"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=30, check=True
        )
        assert out.stdout.split("\n")[0] == "1 None [(1000, 20.0)]"
        # and another thread of this process reads too
        assert s.count_readings() == 1
        blocker.execute("ROLLBACK")
        blocker.close()
    finally:
        s.close()


def test_moved_sensor_keeps_its_history(store: SqliteStore) -> None:
    """A reading belongs to the room its sensor was in when it was taken, not to the sensor's current room."""
    store.write(Batch(readings=[reading(1000, 20.0, room="old"), reading(1000, 50.0, quantity="humidity", room="old")]))
    store.write(Batch(readings=[reading(2000, 21.0, room="new")]))
    assert [r[1] for r in store.readings(0, 5000)] == ["old", "old", "new"]
    assert [r[0] for r in store.readings(0, 5000, rooms=["old"])] == [1000, 1000]
    assert [r[0] for r in store.readings(0, 5000, rooms=["new"])] == [2000]
    assert store.room_assignments("th1") == [("old", 1000, 2000), ("new", 2000, None)]
    assert store.room_assignments("nobody") == []
    # latest() gives the current room, also for the humidity series that has not reported since the move
    assert {(v.quantity, v.room) for v in store.latest()} == {("temperature", "new"), ("humidity", "new")}


# -- MQTT receipts ------------------------------------------------------------------------------------


def receipt_batch(mid: int, digest: bytes, received_ms: int, *, messages: int = 1) -> Batch:
    batch = Batch(readings=[reading(received_ms, 20.0)], receipts=[MqttReceipt("b", mid, digest, received_ms)])
    batch.count("source.b.qos_messages", messages)
    return batch


def test_receipt_is_written_with_the_readings_and_found_by_packet_id_and_digest(store: SqliteStore) -> None:
    digest = bytes(range(32))
    store.write(receipt_batch(7, digest, 1000))
    assert store.receipt_time("b", 7, digest) == 1000
    assert store.receipt_time("b", 8, digest) is None
    assert store.receipt_time("b", 7, bytes(32)) is None
    assert store.receipt_time("other", 7, digest) is None
    # the packet id came back for the same content: the newest receipt wins
    store.write_many([receipt_batch(7, digest, 2000), receipt_batch(7, digest, 3000)])
    assert store.receipt_time("b", 7, digest) == 3000


def test_receipts_are_one_row_per_packet_id(store: SqliteStore) -> None:
    """Bounded without pruning: a later message under the same packet id replaces the receipt."""
    for n in range(3):
        store.write(receipt_batch(n % 2, bytes([n]) * 32, 1000 + n))
    assert store.receipt_time("b", 0, bytes([0]) * 32) is None  # replaced by message 2 under packet id 0
    assert store.receipt_time("b", 0, bytes([2]) * 32) == 1002
    assert store.receipt_time("b", 1, bytes([1]) * 32) == 1001
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT count(*) FROM mqtt_packet_receipts").fetchone()[0] == 2


def test_receipt_is_not_written_when_the_transaction_fails(store: SqliteStore) -> None:
    bad = receipt_batch(7, bytes(32), 1000)
    bad.readings.append(reading(1001, math.nan))
    with pytest.raises(ValueError):
        store.write(bad)
    assert store.receipt_time("b", 7, bytes(32)) is None


def test_receipt_followed_by_a_packet_id_cycle_of_messages_is_stale(store: SqliteStore) -> None:
    from collector.store.sqlite import RECEIPT_SEQ_WINDOW

    digest = bytes(32)
    store.write(receipt_batch(7, digest, 1000))
    store.write(Batch(counters={"source.b.qos_messages": RECEIPT_SEQ_WINDOW - 1}))
    assert store.receipt_time("b", 7, digest) == 1000
    store.write(Batch(counters={"source.b.qos_messages": 1}))
    assert store.receipt_time("b", 7, digest) is None  # an earlier message with the same id and content


# The layout the previous archmon version wrote (store_meta version 1, no schema_migrations).
_PREVIOUS_LAYOUT = """
CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE series (id INTEGER PRIMARY KEY, sensor TEXT NOT NULL, quantity TEXT NOT NULL,
    room TEXT NOT NULL DEFAULT '', UNIQUE (sensor, quantity));
CREATE TABLE readings (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (series_id, ts)) WITHOUT ROWID;
CREATE TABLE rollup_hour (series_id INTEGER NOT NULL, start_ms INTEGER NOT NULL, min REAL NOT NULL,
    max REAL NOT NULL, sum REAL NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (series_id, start_ms)) WITHOUT ROWID;
CREATE TABLE rollup_day (series_id INTEGER NOT NULL, start_ms INTEGER NOT NULL, min REAL NOT NULL,
    max REAL NOT NULL, sum REAL NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (series_id, start_ms)) WITHOUT ROWID;
CREATE TABLE quarantine (id INTEGER PRIMARY KEY AUTOINCREMENT, received_ms INTEGER NOT NULL, source TEXT NOT NULL,
    topic TEXT NOT NULL, sensor TEXT, stage TEXT NOT NULL, reason TEXT NOT NULL, payload BLOB NOT NULL);
CREATE INDEX quarantine_received ON quarantine (received_ms);
CREATE TABLE unassigned (source TEXT NOT NULL, device_topic TEXT NOT NULL, format TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL, count INTEGER NOT NULL,
    last_payload BLOB NOT NULL, last_readings_json TEXT NOT NULL, PRIMARY KEY (source, device_topic));
CREATE TABLE availability (sensor TEXT PRIMARY KEY, state TEXT NOT NULL, ts_ms INTEGER NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE mqtt_receipts (source TEXT NOT NULL, mid INTEGER NOT NULL, digest BLOB NOT NULL,
    received_ms INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (source, mid, digest)) WITHOUT ROWID;
CREATE TABLE sensor_rooms (sensor TEXT NOT NULL, from_ms INTEGER NOT NULL, room TEXT NOT NULL,
    PRIMARY KEY (sensor, from_ms)) WITHOUT ROWID;
CREATE TABLE gauges (name TEXT PRIMARY KEY, value INTEGER NOT NULL, ts_ms INTEGER NOT NULL);
INSERT INTO store_meta VALUES ('schema_version', '1'), ('timezone', 'Asia/Shanghai');
INSERT INTO series VALUES (1, 'th1', 'temperature', 'r1');
INSERT INTO readings VALUES (1, 1000, 20.5);
INSERT INTO sensor_rooms VALUES ('th1', 1000, 'r1');
INSERT INTO counters VALUES ('source.b.qos_messages', 3), ('stored', 1);
INSERT INTO quarantine (received_ms, source, topic, sensor, stage, reason, payload)
    VALUES (5, 'b', 't', NULL, 'decode', 'not JSON', X'FF00');
INSERT INTO mqtt_receipts VALUES ('b', 7, X'01', 1000, 1), ('b', 7, X'02', 2000, 2), ('b', 8, X'03', 3000, 3);
"""


def test_a_file_of_the_previous_version_opens_and_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "previous.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(_PREVIOUS_LAYOUT)
    ro = SqliteStore(path, tz=SHANGHAI, readonly=True)  # read-only: read as it is, nothing migrated
    try:
        assert ro.count_readings() == 1
        (old,) = ro.quarantine()
        assert (old.payload, old.payload_size, old.truncated) == (b"\xff\x00", 2, False)
    finally:
        ro.close()
    s = SqliteStore(path, tz=SHANGHAI)
    try:
        assert s.series("th1", "temperature", 0, 5000) == [(1000, 20.5)]
        assert s.receipt_time("b", 7, b"\x02") == 2000  # the newest message under packet id 7
        assert s.receipt_time("b", 7, b"\x01") is None
        assert s.receipt_time("b", 8, b"\x03") == 3000
        (old,) = s.quarantine()
        assert old.payload_size == 2 and len(old.payload_sha256) == 32
        s.write(Batch(readings=[reading(2000, 21.0)], quarantine=[QuarantineRecord(6, "b", "t", b"x", "r", "decode")]))
        assert s.count_readings() == 2 and s.quarantine()[0].payload_size == 1
        assert [(q.payload, q.payload_size) for q in s.quarantine()] == [(b"x", 1), (b"\xff\x00", 2)]
    finally:
        s.close()
    with sqlite3.connect(path) as conn:
        # values are stored encoded (step 7): an archmon of before it refuses the file instead of misreading it
        assert dict(conn.execute("SELECT key, value FROM store_meta"))["schema_version"] == "2"
        assert conn.execute("SELECT version FROM schema_migrations WHERE component = 'store'").fetchone() == (7,)
        assert conn.execute("SELECT ts, value, typeof(value) FROM readings ORDER BY ts").fetchall() == [
            (1000, 2050, "integer"), (2000, 2100, "integer")]
        # the summaries kept forever were built from the raw reading already there, the new one added on write
        assert conn.execute("SELECT room, count, sum FROM summary_hour").fetchall() == [("r1", 2, 41.5)]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "mqtt_receipts" not in tables and "mqtt_packet_receipts" in tables
        assert {"quarantine_payloads", "quarantine_usage"} <= tables
        # the older record keeps its payload inline, the new one's is stored once beside it
        inline = dict(conn.execute("SELECT received_ms, length(payload) FROM quarantine"))
        assert inline == {5: 2, 6: 0}
    SqliteStore(path, tz=SHANGHAI).close()  # opening again changes nothing


def test_a_store_written_by_a_newer_archmon_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    SqliteStore(path, tz=SHANGHAI).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_migrations SET version = 99 WHERE component = 'store'")
    with pytest.raises(SchemaError, match="newer"):
        SqliteStore(path, tz=SHANGHAI)


# -- bounded bad input ----------------------------------------------------------------------------------

def _garbage(received_ms: int, payload: bytes, source: str = "b1", topic: str = "zigbee2mqtt/x") -> QuarantineRecord:
    return QuarantineRecord(received_ms, source, topic, payload, "not JSON", "decode")


def test_a_repeated_payload_is_stored_once_with_its_repeat_count(store: SqliteStore) -> None:
    junk = b"\x00garbage" * 4096  # 32 KiB, sent over and over by a broken device
    store.write(Batch(quarantine=[_garbage(1000 + i, junk) for i in range(50)], counters={"quarantined": 50}))
    kept = store.quarantine(limit=100)
    assert len(kept) == 50 and {q.payload for q in kept} == {junk} and {q.payload_repeats for q in kept} == {50}
    with sqlite3.connect(store.path) as conn:
        stored = conn.execute("SELECT sum(length(payload)) FROM quarantine_payloads").fetchone()[0]
        inline = conn.execute("SELECT sum(length(payload)) FROM quarantine").fetchone()[0]
    assert (stored, inline) == (len(junk), 0)  # once, not 50 times


def test_a_source_keeps_at_most_its_daily_byte_budget_and_the_whole_quarantine_its_ceiling(tmp_path: Path) -> None:
    from collector.store._quarantine import QuarantineLimits

    limits = QuarantineLimits(bytes_per_source_per_day=100_000, bytes_total=250_000)
    store = SqliteStore(tmp_path / "q.db", tz=UTC_TZ, quarantine_limits=limits)
    day = 86_400_000
    try:
        for i in range(40):  # 40 distinct 10 kB payloads in one day: about 10 fit the day's budget
            store.write(Batch(quarantine=[_garbage(day + i, bytes([i]) * 10_000)], counters={"quarantined": 1}))
        counters = store.counters()
        kept = store.quarantine_count()
        assert 8 <= kept <= 10 and counters["quarantined"] == kept
        assert counters["quarantine_over_budget"] == counters["source.b1.quarantine_over_budget"] == 40 - kept
        assert counters["quarantine_suppressed"] == 40 - kept
        other = Batch(quarantine=[_garbage(day + 50, b"y" * 5_000, source="b2")], counters={"quarantined": 1})
        store.write(other)  # another source has its own budget
        assert store.quarantine_count() == kept + 1
        for d in (2, 3, 4):  # later days: a new budget each, until the ceiling of the whole quarantine
            store.write(Batch(quarantine=[_garbage(d * day + i, bytes([d, i]) * 5_000) for i in range(12)],
                              counters={"quarantined": 12}))
        with sqlite3.connect(store.path) as conn:
            used = conn.execute("SELECT sum(bytes) FROM quarantine_usage").fetchone()[0]
            on_disk = conn.execute("SELECT sum(length(payload)) FROM quarantine_payloads").fetchone()[0]
        assert used <= 250_000 and on_disk <= used
        assert store.counters()["quarantine_over_budget"] > 40 - kept  # the ceiling refused some too
        removed = store.apply_retention(10 * day, 0, 7)  # day 2 and older expire: room again
        assert removed["quarantine"] > 0
        with sqlite3.connect(store.path) as conn:
            assert conn.execute("SELECT min(day_ms) FROM quarantine_usage").fetchone()[0] >= 3 * day
            assert conn.execute("SELECT count(*) FROM quarantine_payloads WHERE last_ms < ?",
                                (3 * day,)).fetchone()[0] == 0
    finally:
        store.close()


def test_unassigned_devices_are_capped_per_source_and_expire_by_last_seen(tmp_path: Path) -> None:
    """A rogue client inventing topics under a subscription filter costs at most the cap of rows, each small."""
    import json

    from archmon.domain import RawMessage
    from collector.pipeline import Pipeline
    from collector.store._quarantine import QuarantineLimits
    from tests.collector.test_pipeline import NOW, make_config

    store = SqliteStore(tmp_path / "u.db", tz=SHANGHAI, quarantine_limits=QuarantineLimits(unassigned_per_source=300))
    try:
        pipeline = Pipeline(make_config(), store.write, clock=lambda: NOW)  # type: ignore[arg-type]
        junk = "Z" * 60_000
        for start in range(0, 2000, 100):
            store.write(pipeline.handle_many([
                RawMessage("b", f"zigbee2mqtt/rogue{i}", json.dumps({"temperature": 20.0, "note": junk}).encode(),
                           NOW + i) for i in range(start, start + 100)]))
        store.write(pipeline.handle(RawMessage("b", "zigbee2mqtt/rogue0", b'{"temperature": 21.0}', NOW + 5000)))
        devices = store.unassigned()
        counters = store.counters()
        assert len(devices) == 300 and counters["unassigned_suppressed"] == 1700
        assert counters["source.b.unassigned_suppressed"] == 1700 and counters["unassigned"] == 2001
        assert max(len(d.last_payload) for d in devices) == 1024  # a prefix of each device's last payload
        assert next(d for d in devices if d.device_topic == "zigbee2mqtt/rogue0").count == 2  # known rows go on
        assert sum(f.stat().st_size for f in tmp_path.iterdir()) < 3_000_000
        day = 86_400_000
        removed = store.apply_retention(NOW + 90 * day + 100, 0, 90)  # the first 100 were last seen earlier
        assert removed["unassigned"] == 99 and len(store.unassigned()) == 201  # rogue0 was seen again later
    finally:
        store.close()
