"""The forward outbox's tables in the site's SQLite file (component ``forward`` in ``schema_migrations``):
what each holds is described in :mod:`collector.forward.outbox`."""

from __future__ import annotations

import sqlite3

from archmon import sqlite as sqlite_helper

__all__ = ["FORWARD_MIGRATIONS"]

_DDL = """
CREATE TABLE IF NOT EXISTS forward_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queued_ms INTEGER NOT NULL,
    line TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS forward_totals (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rows INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    forwarded INTEGER NOT NULL DEFAULT 0,
    quarantined INTEGER NOT NULL DEFAULT 0,
    overflowed INTEGER NOT NULL DEFAULT 0,
    refilled INTEGER NOT NULL DEFAULT 0,
    last_ok_ms INTEGER,
    last_error TEXT NOT NULL DEFAULT '',
    last_error_ms INTEGER
);
INSERT OR IGNORE INTO forward_totals (id) VALUES (1);
CREATE TABLE IF NOT EXISTS forward_overflow (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lo_ts INTEGER NOT NULL,
    hi_ts INTEGER NOT NULL,
    readings INTEGER NOT NULL,
    since_ms INTEGER NOT NULL,
    claimed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS forward_quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    line TEXT NOT NULL
)
"""



def _overflow_per_sensor(conn: sqlite3.Connection) -> None:
    columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(forward_overflow)")}
    if "sensor" not in columns:
        conn.execute("ALTER TABLE forward_overflow ADD COLUMN sensor TEXT NOT NULL DEFAULT ''")


FORWARD_MIGRATIONS = [sqlite_helper.Migration(1, _DDL, "forward outbox, totals, overflow ranges, refused points"),
                      sqlite_helper.Migration(2, _overflow_per_sensor, "overflow ranges per sensor")]
