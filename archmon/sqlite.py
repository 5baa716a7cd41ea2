"""The one way archmon talks to SQLite: connections, PRAGMAs, migrations and read connections.

Every store in the shared file (readings, alerts, audit, users...) opens it through here, so they agree on:

- **Durability**: WAL journal, ``synchronous=FULL`` (an acknowledged reading survives power loss), a busy
  timeout so a second process (the CLI) waits instead of failing at once.
- **Autocommit connections** (``isolation_level=None``): transactions are explicit, through
  :func:`write_tx` (``BEGIN IMMEDIATE``, so two writers never deadlock on a lock upgrade).
- **Migrations** per component in one table, ``schema_migrations(component, version)``: each component
  lists its :class:`Migration` steps; :func:`migrate` applies the missing ones in one transaction and refuses
  a file written by a newer archmon.
- **Readers on their own connections** (:class:`ReaderPool`): read-only, ``query_only``, so dashboards,
  reports and the CLI read a consistent WAL snapshot and never wait on a writer's lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Migration",
    "ReaderPool",
    "SchemaError",
    "connect",
    "migrate",
    "schema_version",
    "write_tx",
]

DEFAULT_BUSY_TIMEOUT_S = 10.0


class SchemaError(Exception):
    """The file is not what this archmon can use: not a database, or written by a newer version."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of a component's schema.

    Attributes:
        version: the version this step brings the component to (1, 2, ... without gaps).
        apply: SQL statements separated by ``;`` or a function of the open connection; runs inside the
            migration transaction. Must be safe on a file where an older archmon created the same objects
            without recording a version (use ``IF NOT EXISTS``).
        note: what the step does (logged).
    """

    version: int
    apply: str | Callable[[sqlite3.Connection], None]
    note: str = ""


def connect(
    path: Path | str, *, readonly: bool = False, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
) -> sqlite3.Connection:
    """Open the shared file with archmon's settings.

    Args:
        path: the database file, or ``":memory:"`` (tests, replay).
        readonly: open an existing file read-only (``mode=ro``, ``query_only``); never creates it.
        busy_timeout_s: how long a statement waits for another connection's lock before
            ``sqlite3.OperationalError: database is locked``.

    Returns:
        An autocommit connection usable from any thread (callers serialise its use).

    Raises:
        FileNotFoundError: ``readonly`` and the file does not exist.
        SchemaError: the file cannot be switched to WAL (it is not a database, or is on a file system that
            cannot share memory).
        sqlite3.Error: the file cannot be opened.
    """
    memory = str(path) == ":memory:"
    if readonly:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"archmon database {file} does not exist (opened read-only, not created)")
        conn = sqlite3.connect(file.absolute().as_uri() + "?mode=ro", uri=True, timeout=busy_timeout_s,
                               isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only=ON")
        return conn
    conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    try:
        if not memory:
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise SchemaError(f"{path} is not an SQLite database ({exc})") from exc
            if str(mode).lower() != "wal":
                raise SchemaError(f"{path}: cannot switch to WAL journal mode (got {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def write_tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` if the block raises) on an autocommit connection."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


_MIGRATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT PRIMARY KEY, version INTEGER NOT NULL,"
    " applied_ms INTEGER NOT NULL)"
)


def schema_version(conn: sqlite3.Connection, component: str) -> int:
    """The version of ``component`` recorded in the file (0: none yet)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    if found.fetchone() is None:
        return 0
    row = conn.execute("SELECT version FROM schema_migrations WHERE component = ?", (component,)).fetchone()
    return 0 if row is None else int(row[0])


def migrate(conn: sqlite3.Connection, component: str, migrations: Sequence[Migration], *, where: str = "") -> int:
    """Bring ``component``'s tables up to its newest migration, in one transaction.

    Args:
        conn: a writable autocommit connection (from :func:`connect`).
        component: who owns the tables (``store``, ``alerts``...).
        migrations: the component's steps, versions 1, 2, ... in order.
        where: the file name, for messages.

    Returns:
        The version now recorded.

    Raises:
        SchemaError: the file records a newer version than ``migrations`` know (upgrade archmon), or the
            steps are not numbered 1..n.
    """
    import time

    versions = [m.version for m in migrations]
    if versions != list(range(1, len(migrations) + 1)):
        raise SchemaError(f"{component}: migrations must be numbered 1..{len(migrations)}, got {versions}")
    newest = len(migrations)
    with write_tx(conn):
        conn.execute(_MIGRATIONS_DDL)
        current = schema_version(conn, component)
        if current > newest:
            raise SchemaError(f"{where or 'database'}: {component} schema version {current} was written by a newer "
                              f"archmon (this one knows up to {newest}): upgrade archmon")
        for step in migrations[current:]:
            if callable(step.apply):
                step.apply(conn)
            else:
                for statement in _statements(step.apply):
                    conn.execute(statement)
        if current < newest:
            conn.execute(
                "INSERT INTO schema_migrations (component, version, applied_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version, applied_ms = excluded.applied_ms",
                (component, newest, time.time_ns() // 1_000_000),
            )
    return newest


def _statements(script: str) -> list[str]:
    """Split a script at ``;`` outside triggers' ``BEGIN … END`` bodies."""
    out: list[str] = []
    buffer = ""
    for part in script.split(";"):
        buffer = f"{buffer};{part}" if buffer else part
        if sqlite3.complete_statement(buffer + ";"):
            if buffer.strip():
                out.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        out.append(buffer.strip())
    return out


class ReaderPool:
    """Read-only connections to one file, reused, each read inside its own snapshot.

    A reader never takes a write lock and never waits for a writer (WAL), so pages, reports and the CLI
    read while the collector and the alert engine write.

    Args:
        path: the database file (must exist when the first read happens).
        max_idle: connections kept open for reuse.
    """

    def __init__(self, path: Path | str, *, max_idle: int = 4) -> None:
        self.path = Path(path)
        self._max_idle = max_idle
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection inside a read transaction: every query in the block sees one snapshot.

        Raises:
            sqlite3.ProgrammingError: the pool is closed.
            FileNotFoundError: the file does not exist.
        """
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError(f"reader pool of {self.path} is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = connect(self.path, readonly=True)
        try:
            conn.execute("BEGIN")
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            with self._lock:
                keep = not self._closed and len(self._idle) < self._max_idle
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    def close(self) -> None:
        """Close the idle connections; connections in use close when their block ends. Idempotent."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
