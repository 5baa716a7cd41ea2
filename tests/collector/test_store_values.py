"""Raw values stored as hundredths where exact (schema step 7, ``collector.store._values``): nothing read changes."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

from archmon.domain import Reading
from archmon.sqlite import connect, migrate
from collector.records import Batch
from collector.store import SqliteStore, decode_value, value_sql
from collector.store._schema import store_migrations
from collector.store._values import ENCODE_VALUE_SQL, encode_value

TZ = ZoneInfo("Asia/Shanghai")
T0 = 1_735_689_600_000
MINUTE = 60_000
# Decimals of 0..3 places, values no decimal holds exactly, huge and tiny ones, signed zeros.
_EDGES = [0.0, -0.0, 0.29, 0.57, 1.005, 2.675, -40.0, 1 / 3, 1e-9, 5e-324, 1e300, -1e300, 90071992547409.9,
          90071992547408.0, 9e15, 0.01, -0.01, 1999.99, 65535.0]


def _values(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    out = list(_EDGES)
    for _ in range(n):
        kind = rng.randrange(6)
        if kind < 4:
            out.append(rng.randint(-200_000, 200_000) / (1, 10, 100, 1000)[kind])
        elif kind == 4:
            out.append(rng.uniform(-1e6, 1e6))
        else:  # two-place decimals of every size up to 1e16, where SQLite's round() loses digits
            out.append(round(rng.choice((1, -1)) * 10 ** rng.uniform(-2, 16), 2))
    return out


def test_every_value_decodes_to_itself_in_python_and_sql_and_sql_encodes_alike() -> None:
    values = _values(30_000, 1)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE old (value REAL NOT NULL)")
    conn.execute("CREATE TABLE new (i INTEGER PRIMARY KEY, value NOT NULL)")
    conn.executemany("INSERT INTO old VALUES (?)", [(v,) for v in values])
    conn.executemany("INSERT INTO new (value) VALUES (?)", [(encode_value(v),) for v in values])
    for v in values:
        assert decode_value(encode_value(v)) == v
    decoded = [row[0] for row in conn.execute(f"SELECT {value_sql()} FROM new ORDER BY i")]
    assert decoded == values
    from_old = [row[0] for row in conn.execute(f"SELECT {ENCODE_VALUE_SQL} FROM old ORDER BY rowid")]
    assert [(type(a), a) for a in from_old] == [(type(encode_value(v)), encode_value(v)) for v in values]
    # an old REAL column reads through the same decoding unchanged (its typeof is always real)
    assert [row[0] for row in conn.execute(f"SELECT {value_sql()} FROM old ORDER BY rowid")] == values
    # decimals of up to two places are integers; what has more stays the exact REAL
    assert encode_value(20.1) == 2010 and encode_value(-0.01) == -1 and encode_value(55.0) == 5500
    assert isinstance(encode_value(1.005), float) and isinstance(encode_value(1 / 3), float)
    assert isinstance(encode_value(1e300), float)  # beyond a double's exact integers: not scaled


def test_the_store_writes_hundredths_and_reads_back_exactly(tmp_path: Path) -> None:
    values = _values(2_000, 2)
    # a quantity without histograms: the extremes are no temperature (the pipeline keeps those in range)
    readings = [Reading("th1", "light", v, T0 + i * MINUTE, "r1") for i, v in enumerate(values)]
    store = SqliteStore(tmp_path / "a.db", tz=TZ)
    try:
        store.write_many([Batch(readings=readings)])
        end = T0 + len(values) * MINUTE
        assert store.series("th1", "light", T0, end) == [(r.ts_ms, r.value) for r in readings]
        assert [row[4] for row in store.readings(T0, end)] == values
        assert store.latest()[0].value == values[-1]
        # a copy with another value is a conflicting duplicate (compared decoded), the same value is not
        store.write(Batch(readings=[readings[3], Reading("th1", "light", values[30] + 1, readings[30].ts_ms, "r1")]))
        assert store.counters()["duplicates_conflicting"] == 1
        assert store.series("th1", "light", T0, end) == [(r.ts_ms, r.value) for r in readings]
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "a.db") as conn:
        kinds = dict(conn.execute("SELECT typeof(value), count(*) FROM readings GROUP BY 1"))
    assert kinds == {"integer": sum(isinstance(encode_value(v), int) for v in values),
                     "real": sum(isinstance(encode_value(v), float) for v in values)}


def _step6_file(path: Path, temperatures: list[float], lights: list[float]) -> None:
    """A file at the previous schema (store steps 1..6): REAL values, summaries built from them."""
    conn = connect(path)
    try:
        migrate(conn, "store", store_migrations(TZ.key)[:4])
        conn.execute("INSERT INTO series (id, sensor, quantity, room) VALUES (1, 'th1', 'temperature', 'r1'),"
                     " (2, 'th1', 'light', 'r1')")
        rows = [(1, T0 + i * MINUTE, v) for i, v in enumerate(temperatures)]
        rows += [(2, T0 + i * MINUTE, v) for i, v in enumerate(lights)]
        conn.executemany("INSERT INTO readings (series_id, ts, value) VALUES (?, ?, ?)", rows)
        migrate(conn, "store", store_migrations(TZ.key)[:6])  # step 5 summarises them, step 6 their edges
    finally:
        conn.close()


def _summaries(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        return (conn.execute("SELECT * FROM summary_hour ORDER BY 1, 2, 3").fetchall(),
                conn.execute("SELECT * FROM summary_hour_bins ORDER BY 1, 2, 3, 4").fetchall())


def test_a_file_of_schema_step_6_is_re_encoded_in_place_and_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "step6.db"
    # as decoders give them (parsed from text, or a register × 0.01); a sum of floats is not: 20.1 + 0.01
    # is 20.110000000000003, stored as the REAL it is
    temperatures = [round(20.0 + (i % 37) / 10 + (i % 3) / 100, 2) for i in range(3_000)] + [21.333, 20.1 + 0.01]
    lights = _values(3_000, 3)
    _step6_file(path, temperatures, lights)
    end = T0 + len(lights) * MINUTE
    old = SqliteStore(path, tz=TZ, readonly=True)  # read as it is: nothing migrated
    try:
        before = (list(old.readings(T0, end)), old.series("th1", "temperature", T0, end), old.latest())
    finally:
        old.close()
    summaries = _summaries(path)
    with sqlite3.connect(path) as conn:
        assert dict(conn.execute("SELECT key, value FROM store_meta"))["schema_version"] == "1"
        old_bytes = conn.execute("SELECT sum(payload) FROM dbstat WHERE name = 'readings'").fetchone()[0]

    store = SqliteStore(path, tz=TZ)  # migrates: step 7
    try:
        after = (list(store.readings(T0, end)), store.series("th1", "temperature", T0, end), store.latest())
        assert after == before
        assert after[1] == [(T0 + i * MINUTE, v) for i, v in enumerate(temperatures)]
        assert store.series("th1", "light", T0, end) == [(T0 + i * MINUTE, v) for i, v in enumerate(lights)]
        store.write(Batch(readings=[Reading("th1", "temperature", 21.3, end + MINUTE, "r1")]))
        assert store.series("th1", "temperature", end, end + 2 * MINUTE) == [(end + MINUTE, 21.3)]
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert dict(conn.execute("SELECT key, value FROM store_meta"))["schema_version"] == "2"
        assert conn.execute("SELECT version FROM schema_migrations WHERE component = 'store'").fetchone() == (7,)
        declared = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(readings)")}
        assert declared == {"series_id": "INTEGER", "ts": "INTEGER", "value": ""}
        new_bytes = conn.execute("SELECT sum(payload) FROM dbstat WHERE name = 'readings'").fetchone()[0]
        kinds = dict(conn.execute("SELECT typeof(value), count(*) FROM readings WHERE series_id = 1 GROUP BY 1"))
        assert kinds == {"integer": 3_001, "real": 2}  # 21.333 and 20.110000000000003 keep their REAL
        # the one reading written after adds to the summaries; what was there is untouched by the migration
        conn.execute("DELETE FROM summary_hour WHERE start_ms >= ?", (end - 3_600_000,))
        conn.execute("DELETE FROM summary_hour_bins WHERE start_ms >= ?", (end - 3_600_000,))
    hours, bins = _summaries(path)
    assert hours == [h for h in summaries[0] if h[2] < end - 3_600_000]
    assert bins == [b for b in summaries[1] if b[2] < end - 3_600_000]
    assert new_bytes < old_bytes  # 8-byte REALs became 2- or 3-byte integers
