"""Store migration 7, the one long step: raw values re-encoded (hundredths as integers where exact).

It rewrites the readings table in one transaction (a crash leaves the old file whole), about a second per
million readings here: minutes for a large site, so before ``archmon run`` tells systemd it is ready.
While it runs, systemd is asked every few seconds for more start-up time (``EXTEND_TIMEOUT_USEC``, with a
``STATUS`` line) and the log says how long it has taken; before it starts, the free disk is checked
against what the copy needs (the new table beside the old until the commit, and a write-ahead log of
about the same size), so a full disk is one clear error instead of a failed copy at every start. Once
done, the write-ahead log is truncated (see :func:`truncate_wal`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from archmon import systemd
from collector.store._types import SchemaError
from collector.store._values import ENCODE_VALUE_SQL

__all__ = ["NOTIFY_EVERY_S", "compact_values", "truncate_wal"]

log = logging.getLogger(__name__)

NOTIFY_EVERY_S = 5.0  # how often systemd is asked for more start-up time (it grants EXTEND_BY_S each time)
EXTEND_BY_S = 60
_CHECK_EVERY = 200_000  # SQLite VM steps between two looks at the clock

_READINGS_V7 = """
CREATE TABLE readings_v7 (
    series_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID
"""


def compact_values(conn: sqlite3.Connection, schema_version: int) -> None:
    """Migration 7: rebuild ``readings`` with values encoded by ``ENCODE_VALUE_SQL`` (a file already in
    that layout is left alone), then record ``schema_version``.

    Raises:
        SchemaError: the disk holding the file has too little free space for the copy.
    """
    declared = {str(row[1]): str(row[2]) for row in conn.execute("PRAGMA table_info(readings)")}
    if declared.get("value", "").upper() == "REAL":
        path = _file_of(conn)
        need = _space_needed(conn)
        free = _free_bytes(path)
        if free is not None and free < need:
            raise SchemaError(
                f"{path}: the store's migration 7 (raw values re-encoded) needs about {need / 1e6:,.0f} MB free "
                f"beside the file and {free / 1e6:,.0f} MB are free; free space there (or move the file) and "
                "start again: nothing was changed")
        log.info("%s: store migration 7: re-encoding the raw readings (about a second per million readings; "
                 "up to %s MB of disk while it runs)", path or "store", f"{need / 1e6:,.0f}")
        started = time.monotonic()
        conn.set_progress_handler(_Progress(path, started), _CHECK_EVERY)
        try:
            conn.execute(_READINGS_V7)
            conn.execute(f"INSERT INTO readings_v7 (series_id, ts, value) SELECT series_id, ts, {ENCODE_VALUE_SQL}"
                         " FROM readings ORDER BY series_id, ts")
            conn.execute("DROP TABLE readings")
            conn.execute("ALTER TABLE readings_v7 RENAME TO readings")
        finally:
            conn.set_progress_handler(None, 0)
        log.info("%s: store migration 7 done in %.1f s", path or "store", time.monotonic() - started)
    conn.execute("UPDATE store_meta SET value = ? WHERE key = 'schema_version'", (str(schema_version),))


def truncate_wal(conn: sqlite3.Connection) -> None:
    """Give the write-ahead log's space back after a large migration (outside any transaction)."""
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.OperationalError as exc:  # another connection reads: the log is reused, not grown
        log.info("the write-ahead log was not truncated after the migration: %s", exc)


class _Progress:
    """SQLite's progress handler during the copy: now and then, more start-up time from systemd."""

    def __init__(self, path: str, started: float) -> None:
        self.path = path
        self.started = started
        self.next_notify = started  # at once: the first look may already be past systemd's default

    def __call__(self) -> int:
        now = time.monotonic()
        if now >= self.next_notify:
            self.next_notify = now + NOTIFY_EVERY_S
            elapsed = now - self.started
            systemd.notify(EXTEND_TIMEOUT_USEC=EXTEND_BY_S * 1_000_000,
                           STATUS=f"migrating the store: re-encoding raw readings ({elapsed:.0f} s so far)")
            if elapsed >= 30 and int(elapsed) % 30 < NOTIFY_EVERY_S:
                log.info("%s: store migration 7 still running (%.0f s)", self.path or "store", elapsed)
        return 0  # go on


def _file_of(conn: sqlite3.Connection) -> str:
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return str(file or "")
    return ""


def _space_needed(conn: sqlite3.Connection) -> int:
    """A bound for the copy: the new table (no larger than the old) plus its write-ahead log, taken as
    twice the whole file's used pages (the readings are nearly all of it)."""
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0]) - int(conn.execute("PRAGMA freelist_count")
                                                                         .fetchone()[0])
    return 2 * pages * page_size


def _free_bytes(path: str) -> int | None:
    if not path:
        return None  # an in-memory database
    try:
        stat = os.statvfs(Path(path).parent)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize
