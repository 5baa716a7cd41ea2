"""The shared SQLite helper: durable settings, migrations per component, readers that never wait."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from archmon.sqlite import Migration, ReaderPool, SchemaError, connect, migrate, schema_version, write_tx

STEPS = [
    Migration(1, "CREATE TABLE IF NOT EXISTS t (x INTEGER); CREATE TABLE IF NOT EXISTS log (y TEXT);"
                 "CREATE TRIGGER IF NOT EXISTS t_no_delete BEFORE DELETE ON t BEGIN SELECT RAISE(ABORT, 'no'); END"),
    Migration(2, lambda conn: conn.execute("ALTER TABLE t ADD COLUMN z TEXT")),
]


def test_connect_sets_wal_full_sync_and_busy_timeout(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db", busy_timeout_s=3)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 3000
    assert conn.isolation_level is None
    conn.close()


def test_migrations_apply_once_in_order_and_record_the_version(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db")
    assert migrate(conn, "demo", STEPS[:1]) == 1
    assert schema_version(conn, "demo") == 1
    assert migrate(conn, "demo", STEPS) == 2
    assert migrate(conn, "demo", STEPS) == 2  # nothing left: the ALTER would fail if it ran again
    columns = [row[1] for row in conn.execute("PRAGMA table_info(t)")]
    assert columns == ["x", "z"]
    with pytest.raises(sqlite3.IntegrityError, match="no"):  # the trigger body survived statement splitting
        conn.execute("INSERT INTO t (x) VALUES (1)")
        conn.execute("DELETE FROM t")
    assert schema_version(conn, "other") == 0


def test_a_file_from_a_newer_archmon_is_refused(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db")
    migrate(conn, "demo", STEPS)
    with pytest.raises(SchemaError, match="newer archmon"):
        migrate(conn, "demo", STEPS[:1], where="a.db")


def test_badly_numbered_migrations_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="numbered"):
        migrate(connect(tmp_path / "a.db"), "demo", [STEPS[1]])


def test_a_failed_migration_leaves_nothing(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db")
    broken = [Migration(1, "CREATE TABLE u (x); CREATE TABLE u (x)")]
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, "demo", broken)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'u'").fetchone() is None
    assert schema_version(conn, "demo") == 0


def test_not_a_database_is_a_schema_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(SchemaError, match="not an SQLite database"):
        connect(junk)


def test_readers_see_a_snapshot_and_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    writer = connect(path)
    migrate(writer, "demo", STEPS)
    writer.execute("INSERT INTO t (x) VALUES (1)")
    pool = ReaderPool(path)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t (x) VALUES (2)")  # uncommitted, write lock held
    done = threading.Event()

    def read() -> None:
        with pool.read() as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1
            with pytest.raises(sqlite3.OperationalError):  # query_only
                conn.execute("INSERT INTO t (x) VALUES (3)")
        done.set()

    thread = threading.Thread(target=read)
    thread.start()
    assert done.wait(5), "a reader waited for the writer's lock"
    thread.join()
    writer.execute("COMMIT")
    with pool.read() as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 2
    pool.close()
    with pytest.raises(sqlite3.ProgrammingError), pool.read():
        pass


def test_readonly_open_of_a_missing_file_does_not_create_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        connect(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()


def test_write_tx_rolls_back_on_error(tmp_path: Path) -> None:
    conn = connect(tmp_path / "a.db")
    migrate(conn, "demo", STEPS)
    with pytest.raises(RuntimeError), write_tx(conn):
        conn.execute("INSERT INTO t (x) VALUES (7)")
        raise RuntimeError("boom")
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    assert not conn.in_transaction
