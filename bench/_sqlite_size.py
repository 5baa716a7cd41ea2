"""How large a benchmark's SQLite file is: whole, and once raw retention has emptied the readings table.

``bench_store.py`` and ``bench_storage.py`` both report bytes per stored reading with and without the raw
table; the file is measured after ``VACUUM`` and a WAL checkpoint so that free pages and the WAL do not count.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import NamedTuple

__all__ = ["StoreFileSize", "store_file_size"]


class StoreFileSize(NamedTuple):
    """Bytes of a store's file, compacted.

    Attributes:
        total: with every table as written.
        without_raw: after ``DELETE FROM readings`` (what raw retention leaves: rollups, summaries, series).
    """

    total: int
    without_raw: int


def _compacted_size(conn: sqlite3.Connection, path: Path) -> int:
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def store_file_size(path: Path) -> StoreFileSize:
    """Measure the closed store file at ``path``, then delete its raw readings (the file is changed).

    Args:
        path: a store's SQLite file, closed by its writer.

    Returns:
        The compacted size before and after emptying the ``readings`` table.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        total = _compacted_size(conn, path)
        conn.execute("DELETE FROM readings")
        return StoreFileSize(total, _compacted_size(conn, path))
    finally:
        conn.close()
