"""The store's tables, created on first open and versioned in ``store_meta``.

Every table here belongs to the store; other components (alerts, users, audit) add their own tables to
the same file and must not reuse these names. The schema version lives in ``store_meta`` rather than in
``PRAGMA user_version`` so that the file's single user_version slot stays free for others.

Tables added later that older code simply does not use (``_ADDED_DDL``) are created when missing on
every open, without a version bump: an older archmon still reads the file.
"""

from __future__ import annotations

import logging
import sqlite3

from collector.store._types import SchemaError

__all__ = ["SCHEMA_VERSION", "check_schema", "ensure_schema"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

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

# Receive times of QoS 1/2 MQTT messages without device time, so a redelivery gets the same stamp
# (collector.records.MqttReceipt). seq: the source's message counter when the receipt was written.
_ADDED_DDL = """
CREATE TABLE IF NOT EXISTS mqtt_receipts (
    source TEXT NOT NULL,
    mid INTEGER NOT NULL,
    digest BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (source, mid, digest)
) WITHOUT ROWID
"""


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


def ensure_schema(conn: sqlite3.Connection, where: str, tz_name: str) -> None:
    """Create the store tables if missing (in one transaction) and record version and time zone.

    Args:
        conn: a writable connection in autocommit mode (``isolation_level=None``).
        where: the file name, for error messages.
        tz_name: the site's zone; day rollups depend on it.

    Raises:
        SchemaError: the file holds a newer schema version.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _meta(conn, "schema_version")
        if version is None:
            for statement in _DDL.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO store_meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.execute("INSERT INTO store_meta (key, value) VALUES ('timezone', ?)", (tz_name,))
            log.info("created store schema version %d in %s (day rollups in %s)", SCHEMA_VERSION, where, tz_name)
        else:
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
        for statement in _ADDED_DDL.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
