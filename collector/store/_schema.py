"""The store's tables, created and migrated through ``archmon.sqlite.migrate(conn, "store", ...)``.

Every table here belongs to the store; other components (alerts, users, audit) add their own tables to
the same file and must not reuse these names. Steps (``store_migrations``):

1. the tables of the first archmon versions (``CREATE ... IF NOT EXISTS``: a file written by an older
   archmon, which recorded no migration, passes through unchanged), and ``store_meta``;
2. MQTT receipts bounded to one row per source and packet id (``mqtt_packet_receipts``; the older
   ``mqtt_receipts`` kept one row per message until an hourly prune);
3. quarantine records keep their payload's full size and SHA-256 (the payload itself may be a prefix);
4. bounded bad input (``collector.store._quarantine``): payloads stored once per SHA-256
   (``quarantine_payloads``), bytes per source and day (``quarantine_usage``), unassigned devices by
   last seen (for their retention);
5. summaries kept forever (``collector.store._summary``: per local hour and room, coverage bitmaps and value
   histograms), built from the raw readings the file still holds (``collector.store._summary_build``);
6. the summaries carry each hour's first and last reading (the register's duty readings) and each histogram
   bin's minutes (time in band weighted by what each reading covers): a file summarised by step 5 gets the
   columns and has them filled from the raw readings it still holds; hours whose raw readings retention had
   already deleted keep NULL / 0 there (no duty value; bins weighted one share per reading, as before).

7. raw values stored compactly (``collector.store._values``): ``readings.value`` loses its REAL affinity
   and holds hundredths as an INTEGER wherever that gives back the exact value (else the REAL), 6 of a raw
   row's 22 bytes; the table is rebuilt with every stored value re-encoded (the freed pages are reused by
   later writes; ``VACUUM`` gives them back to the file system).

``store_meta.schema_version`` was 1 up to step 6 (every step only added what older readers do not look at),
and is 2 from step 7: an archmon of before step 7 would read the stored hundredths as values, so it refuses
the file (``check_schema``: "upgrade archmon") instead, for reads (``archmon status``, ``export``) too. The
migration steps this code knows are in ``schema_migrations``.

``sensor_rooms`` is the room-assignment history of each sensor (see ``collector.store._write``). Files
written before it existed are seeded on open: every sensor with readings but no assignment gets one,
in the room of its series (``series.room``), starting at its first stored reading. That seed runs on
every open and only touches sensors without any assignment, so it is idempotent.
"""

from __future__ import annotations

import logging
import sqlite3

from archmon import sqlite as sqlite_helper
from archmon.sqlite import Migration, migrate, write_tx
from collector.store._quarantine import QUARANTINE_DDL
from collector.store._summary import SUMMARY_DDL, SUMMARY_V6_COLUMNS
from collector.store._types import SchemaError
from collector.store._value_migration import compact_values, truncate_wal

__all__ = [
    "SCHEMA_VERSION",
    "check_schema",
    "ensure_schema",
    "has_columns",
    "has_room_history",
    "has_table",
    "seed_assignments",
    "store_migrations",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""What ``store_meta.schema_version`` says: the newest layout older readers must be able to read (2: values
encoded by ``collector.store._values``)."""

_DDL = """
CREATE TABLE IF NOT EXISTS store_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    sensor TEXT NOT NULL,
    quantity TEXT NOT NULL,
    room TEXT NOT NULL DEFAULT '',
    UNIQUE (sensor, quantity)
);
CREATE TABLE IF NOT EXISTS readings (
    series_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_hour (
    series_id INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    sum REAL NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (series_id, start_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_day (
    series_id INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    sum REAL NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (series_id, start_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    topic TEXT NOT NULL,
    sensor TEXT,
    stage TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_received ON quarantine (received_ms);
CREATE TABLE IF NOT EXISTS unassigned (
    source TEXT NOT NULL,
    device_topic TEXT NOT NULL,
    format TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    last_payload BLOB NOT NULL,
    last_readings_json TEXT NOT NULL,
    PRIMARY KEY (source, device_topic)
);
CREATE TABLE IF NOT EXISTS availability (
    sensor TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

_LATER_DDL = """
CREATE TABLE IF NOT EXISTS sensor_rooms (
    sensor TEXT NOT NULL,
    from_ms INTEGER NOT NULL,
    room TEXT NOT NULL,
    PRIMARY KEY (sensor, from_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gauges (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL
)
"""
# Receive times of QoS 1/2 MQTT messages without device time, so a copy sent again gets the same stamp
# (collector.receipts). One row per source and packet id: the newest message under that id. seq: the
# source's message counter when the receipt was written (a receipt too many messages old is stale).
_RECEIPTS_DDL = """
CREATE TABLE IF NOT EXISTS mqtt_packet_receipts (
    source TEXT NOT NULL,
    mid INTEGER NOT NULL,
    digest BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (source, mid)
) WITHOUT ROWID
"""
# gauges: the latest value of a state (e.g. ``source.<id>.connected``), replaced on every report.
# sensor_rooms: the sensor is in ``room`` from ``from_ms`` (UTC epoch ms) until the sensor's next row.
# Rows are only ever appended after everything stored for the sensor; the first row's from_ms is lowered
# when an older reading arrives, so no reading of a sensor is older than its first assignment.

# Per series of sensors without an assignment: (sensor, room, series id, first ts, last ts), where
# "first" also looks at the hour rollups, which outlive raw readings under retention.
_UNASSIGNED_SERIES = """
SELECT s.sensor, s.room, s.id,
       min(coalesce((SELECT min(ts) FROM readings WHERE series_id = s.id), 9223372036854775807),
           coalesce((SELECT min(start_ms) FROM rollup_hour WHERE series_id = s.id), 9223372036854775807)),
       (SELECT max(ts) FROM readings WHERE series_id = s.id)
FROM series s
WHERE s.room != ''{where}
"""
_NO_DATA = 9223372036854775807


def has_room_history(conn: sqlite3.Connection) -> bool:
    """Whether the file has the ``sensor_rooms`` table (a read-only open of an old file may not)."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sensor_rooms'").fetchone()
    return row is not None


def seed_assignments(conn: sqlite3.Connection, sensor: str | None = None) -> list[tuple[str, str, int]]:
    """The first assignment ``(sensor, room, from_ms)`` of every sensor with data but no assignment yet.

    Derived from ``series``: the room is that of the sensor's series with the newest reading (its series
    can disagree when a quantity stopped reporting before a move), from_ms the sensor's first stored
    reading (or first hour bucket, if retention removed older raw readings). Sensors without any stored
    data or with an empty room get none.

    Args:
        conn: an open connection (read-only is fine).
        sensor: only this sensor (None: all).
    """
    history = has_room_history(conn)
    clauses = []
    params: list[str] = []
    if history:
        clauses.append(" AND NOT EXISTS (SELECT 1 FROM sensor_rooms a WHERE a.sensor = s.sensor)")
    if sensor is not None:
        clauses.append(" AND s.sensor = ?")
        params.append(sensor)
    best: dict[str, tuple[tuple[int, int], str, int]] = {}
    for name, room, sid, first, last in conn.execute(_UNASSIGNED_SERIES.format(where="".join(clauses)), params):
        if first == _NO_DATA:
            continue
        rank = (-1 if last is None else int(last), int(sid))
        known = best.get(name)
        if known is None:
            best[name] = (rank, str(room), int(first))
        else:
            chosen = (rank, str(room)) if rank > known[0] else (known[0], known[1])
            best[name] = (chosen[0], chosen[1], min(known[2], int(first)))
    return [(name, room, first) for name, (_, room, first) in sorted(best.items())]


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'store_meta'").fetchone()
    if row is None:
        return None
    found = conn.execute("SELECT value FROM store_meta WHERE key = ?", (key,)).fetchone()
    return None if found is None else str(found[0])


def check_schema(conn: sqlite3.Connection, where: str) -> str | None:
    """Check that ``conn`` holds a store schema this code can read.

    Args:
        conn: an open connection.
        where: the file name, for error messages.

    Returns:
        The time zone name the day rollups were built in (None if not recorded).

    Raises:
        SchemaError: no store tables, or a newer schema version.
    """
    version = _meta(conn, "schema_version")
    if version is None:
        raise SchemaError(f"{where} is not an archmon database (no store_meta table or schema_version)")
    if int(version) > SCHEMA_VERSION:
        raise SchemaError(
            f"{where} has store schema version {version}; this archmon reads up to {SCHEMA_VERSION}: upgrade archmon"
        )
    return _meta(conn, "timezone")


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the file has table ``name`` (a read-only open of an older file may not)."""
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def has_columns(conn: sqlite3.Connection, table: str, *columns: str) -> bool:
    """Whether ``table`` has every one of ``columns``."""
    found = {str(row[1]) for row in conn.execute(f"PRAGMA table_info({table})")}
    return set(columns) <= found


def _run(conn: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _first_tables(tz_name: str, where: str) -> Migration:
    def apply(conn: sqlite3.Connection) -> None:
        created = _meta(conn, "schema_version") is None
        _run(conn, _DDL)
        _run(conn, _LATER_DDL)
        meta = "INSERT OR IGNORE INTO store_meta (key, value) VALUES (?, ?)"
        conn.execute(meta, ("schema_version", "1"))  # the layout this step makes; step 7 says 2
        conn.execute(meta, ("timezone", tz_name))
        if created:
            log.info("created the store's tables in %s (day rollups in %s)", where, tz_name)

    return Migration(1, apply, "readings, rollups, quarantine, unassigned devices, counters, room history")


def _bounded_receipts(conn: sqlite3.Connection) -> None:
    _run(conn, _RECEIPTS_DDL)
    if has_table(conn, "mqtt_receipts"):  # one row per message: keep the newest per packet id
        conn.execute(
            "INSERT OR REPLACE INTO mqtt_packet_receipts (source, mid, digest, received_ms, seq)"
            " SELECT source, mid, digest, received_ms, seq FROM mqtt_receipts ORDER BY seq, received_ms"
        )
        conn.execute("DROP TABLE mqtt_receipts")


def _quarantine_digests(conn: sqlite3.Connection) -> None:
    if not has_columns(conn, "quarantine", "payload_size"):
        conn.execute("ALTER TABLE quarantine ADD COLUMN payload_size INTEGER")
    if not has_columns(conn, "quarantine", "payload_sha256"):
        conn.execute("ALTER TABLE quarantine ADD COLUMN payload_sha256 BLOB")


def _summaries(tz_name: str, where: str) -> Migration:
    def apply(conn: sqlite3.Connection) -> None:
        from collector.store._summary_build import build_summaries  # it reads rooms, which read this module

        _run(conn, SUMMARY_DDL)
        build_summaries(conn, tz_name, where)  # local hours of the zone the store writes in from now on

    return Migration(5, apply, "summaries kept forever: coverage and histograms per local hour and room")


def _summary_edges(tz_name: str, where: str) -> Migration:
    def apply(conn: sqlite3.Connection) -> None:
        from collector.store._summary_build import fill_summary_edges

        added = False
        for table, columns in SUMMARY_V6_COLUMNS.items():
            for column in columns:  # step 5 on a file newer than it already made them
                if not has_columns(conn, table, column.split()[0]):
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
                    added = True
        if added:
            fill_summary_edges(conn, tz_name, where)

    return Migration(6, apply, "summaries: each hour's first and last reading, each histogram bin's minutes")


# value without a declared type: no affinity, so an INTEGER (hundredths) and a REAL stay what they are stored as
# (a declared REAL would turn 2010 into 2010.0, "ANY" would be NUMERIC and turn 20.0 into 20).
def store_migrations(tz_name: str, where: str = "") -> list[Migration]:
    """The store's migration steps for a site in zone ``tz_name`` (see the module docstring)."""
    return [
        _first_tables(tz_name, where),
        Migration(2, _bounded_receipts, "MQTT receipts: one row per source and packet id"),
        Migration(3, _quarantine_digests, "quarantine: full payload size and SHA-256"),
        Migration(4, lambda conn: _run(conn, QUARANTINE_DDL), "bounded bad input: payloads once, bytes per day"),
        _summaries(tz_name, where),
        _summary_edges(tz_name, where),
        Migration(7, lambda conn: compact_values(conn, SCHEMA_VERSION),
                  "raw values: hundredths as integers where exact (6 bytes less a reading)"),
    ]


def ensure_schema(conn: sqlite3.Connection, where: str, tz_name: str) -> None:
    """Migrate the store's tables to the newest layout, record the time zone, seed room history.

    Args:
        conn: a writable autocommit connection (``archmon.sqlite.connect``).
        where: the file name, for error messages.
        tz_name: the site's zone; day rollups depend on it.

    Raises:
        SchemaError: the file holds a newer store (``store_meta`` or ``schema_migrations``).
    """
    if _meta(conn, "schema_version") is not None:
        check_schema(conn, where)
    before = sqlite_helper.schema_version(conn, "store")
    try:
        newest = migrate(conn, "store", store_migrations(tz_name, where), where=where)
    except SchemaError:
        raise
    except sqlite_helper.SchemaError as exc:  # say it the store's way
        raise SchemaError(str(exc)) from exc
    if 0 < before < 7 <= newest:  # the readings were copied: their log is as large as they are
        truncate_wal(conn)
    with write_tx(conn):
        recorded = check_schema(conn, where)
        if recorded != tz_name:
            log.warning(
                "%s: day rollups were built in time zone %s but the site is now %s; "
                "existing day buckets keep their old boundaries",
                where,
                recorded,
                tz_name,
            )
            conn.execute("INSERT OR REPLACE INTO store_meta (key, value) VALUES ('timezone', ?)", (tz_name,))
        seeds = seed_assignments(conn)
        if seeds:
            conn.executemany("INSERT INTO sensor_rooms (sensor, room, from_ms) VALUES (?, ?, ?)", seeds)
            log.info("%s: room history seeded for %d sensor(s) from their current rooms", where, len(seeds))
