"""Store migration 7 on a file with history: systemd asked for time while it runs, a full disk refused up
front with nothing changed, and the write-ahead log given back afterwards."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from collector.store import SqliteStore
from collector.store import _value_migration as value_migration
from collector.store._types import SchemaError
from tests.archmon.operations import NotifySocket
from tests.collector.test_store_values import TZ, _step6_file


def _old_file(path: Path, n: int) -> None:
    _step6_file(path, [round(20 + (i % 50) / 10, 1) for i in range(n)], [float(i % 400) for i in range(n)])


def _layout(path: Path) -> tuple[str, str, int]:
    with sqlite3.connect(path) as conn:
        declared = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(readings)")}
        version = dict(conn.execute("SELECT key, value FROM store_meta"))["schema_version"]
        return declared["value"], version, conn.execute("SELECT count(*) FROM readings").fetchone()[0]


def test_a_long_migration_asks_systemd_for_more_start_up_time(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    _old_file(path, 20_000)
    notify = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", notify.name)
    monkeypatch.setattr(value_migration, "_CHECK_EVERY", 1_000)  # a small file: look at the clock often
    try:
        SqliteStore(path, tz=TZ).close()
        message = notify.until("EXTEND_TIMEOUT_USEC", timeout=5)
    finally:
        notify.close()
    assert int(message["EXTEND_TIMEOUT_USEC"]) == value_migration.EXTEND_BY_S * 1_000_000
    assert message["STATUS"].startswith("migrating the store: re-encoding raw readings")
    assert _layout(path) == ("", "2", 40_000)


def test_too_little_free_disk_is_refused_before_anything_changes(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    _old_file(path, 5_000)
    monkeypatch.setattr(value_migration, "_free_bytes", lambda _path: 4096)  # a disk all but full
    with pytest.raises(SchemaError, match=r"migration 7 .* needs about .* MB free .* nothing was changed"):
        SqliteStore(path, tz=TZ)
    assert _layout(path) == ("REAL", "1", 10_000)
    monkeypatch.undo()
    SqliteStore(path, tz=TZ).close()  # with room on the disk it goes through
    assert _layout(path) == ("", "2", 10_000)


def test_the_write_ahead_log_is_given_back_after_the_copy(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_file(path, 60_000)
    table_bytes = path.stat().st_size
    store = SqliteStore(path, tz=TZ)
    try:
        wal = Path(f"{path}-wal")
        assert wal.stat().st_size < table_bytes / 10, (wal.stat().st_size, table_bytes)
    finally:
        store.close()
