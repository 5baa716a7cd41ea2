"""The disk spool of a serial source: what its memory buffer cannot hold while the store is stalled.

A serial port cannot be asked to send again, so when the store stalls for longer than a source's
memory buffer holds (``max_buffered_messages`` / ``max_buffered_bytes``), the hand-over
(:mod:`collector.handover`) spills its messages here and replays them into the store, in order, once
it takes messages again; rows leave the spool only after the store committed them.

Why a second SQLite file, one per source (``<database>.spool/<source id>.db``), rather than an
append-only file of checksummed records: SQLite's WAL already is such a log (every frame carries a
checksum, a transaction counts only once its commit frame is complete), so a SIGKILL or power cut
in the middle of an append leaves the last committed batch and nothing half-written, with no framing
or recovery code of archmon's own. Each append is one transaction (``synchronous=FULL``: fsync'd
before :meth:`Spool.append` returns). It cannot be the store's own file, nor the outbox
(``collector.forward.outbox``) in it: the spool is for the very time that file is locked or stuck.

The spool is bounded by bytes (``max_bytes``, counted as payload + topic + :data:`ROW_OVERHEAD` per
row, not the file size): past it the oldest rows not yet handed to the store are dropped (counted,
:attr:`SpoolStats.dropped`), the last resort. The file keeps its size after a spill (SQLite reuses
the free pages); it is truncated when the spool is empty again.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from archmon.domain import RawMessage
from archmon.sqlite import Migration, connect, migrate, write_tx
from archmon.timeutil import to_iso

__all__ = ["DEFAULT_SPOOL_MAX_BYTES", "ROW_OVERHEAD", "Appended", "Spool", "SpoolStats", "SpooledChunk", "format_spool",
           "open_spool", "peek_spool", "spool_dir", "spool_path", "spool_problems", "spool_report"]

log = logging.getLogger(__name__)

DEFAULT_SPOOL_MAX_BYTES = 512 * 1024 * 1024
"""Bytes a source's spool holds by default before it drops its oldest rows."""

ROW_OVERHEAD = 32
"""Bytes counted per row besides its payload and topic (sequence, receive time, SQLite's row header)."""

_MIGRATIONS = (
    Migration(1, "CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
                 "payload BLOB NOT NULL, received_ms INTEGER NOT NULL)", "serial spool rows"),
)


def spool_dir(database: Path) -> Path:
    """Where ``archmon run`` keeps the spools of the serial sources of the store ``database``: beside it."""
    return database.with_name(database.name + ".spool")


def spool_path(folder: Path, source: str) -> Path:
    """The spool file of ``source`` in ``folder`` (source ids are ``[a-z0-9_-]``: a safe file name)."""
    return folder / f"{source}.db"


def open_spool(folder: Path | None, source: str, max_bytes: int) -> Spool | None:
    """The spool of ``source`` in ``folder``, or None: no folder, ``max_bytes`` 0, or it cannot be opened (logged:
    the source then drops its oldest messages past its memory bound, as without a spool)."""
    if folder is None or max_bytes <= 0:
        return None
    path = spool_path(folder, source)
    try:
        spool = Spool(path, source, max_bytes=max_bytes)
    except Exception as exc:
        log.error("%s: cannot open the spool %s (%s: %s); without it, messages past the memory bound are dropped "
                  "while the store is stalled", source, path, type(exc).__name__, exc)
        return None
    free = shutil.disk_usage(path.parent).free
    if free < max_bytes:
        log.warning("%s: the spool %s may hold %d bytes but the disk has %d free: a long stall fills the disk "
                    "before the spool's bound (lower spool_max_bytes or free space)", source, path, max_bytes, free)
    return spool


def spool_problems(folder: Path, source: str, where: str) -> list[str]:
    """What ``archmon check-config`` says of a serial source's spool: an existing file must be a spool this
    archmon can read (and its rows are reported: stored at the next start), else its folder (or the nearest
    existing one) must take new files. ``where``: the key path of the setting, for the messages."""
    path = spool_path(folder, source)
    if path.exists():
        if not path.is_file():
            return [f"{where}: the spool {path} is not a file"]
        try:
            conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=5)
            try:
                conn.execute("SELECT count(*) FROM spool").fetchone()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            return [f"{where}: {path} is not a spool archmon can read ({exc}); move it away (its readings are "
                    "lost) or restore it"]
        if not os.access(path, os.R_OK | os.W_OK):
            return [f"{where}: cannot write the spool {path}; the service's user needs read and write access"]
        return []
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        return [f"{where}: the spool folder {folder}: {existing} is not a folder"]
    try:
        Path(tempfile.mkdtemp(dir=existing, prefix=".archmon-probe-")).rmdir()
    except OSError as exc:
        return [f"{where}: cannot make the spool {path} in {existing}: {exc.strerror}; the service's user needs "
                "to write there (or set 0: no spool)"]
    return []


def peek_spool(folder: Path, source: str) -> SpoolStats | None:
    """What the spool of ``source`` holds, read-only from its file (``archmon status``, also while the store
    is stalled and the service cannot write its gauges); None: no spool file or it is empty. ``max_bytes``,
    ``appended`` and ``dropped`` are 0 (the running service knows them)."""
    path = spool_path(folder, source)
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=5)
        try:
            rows, size, oldest = conn.execute(
                "SELECT count(*), coalesce(sum(length(CAST(topic AS BLOB)) + length(payload)), 0), "
                "coalesce(min(received_ms), 0) FROM spool").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    if not rows:
        return None
    return SpoolStats(int(rows), int(size) + ROW_OVERHEAD * int(rows), int(oldest), 0, 0, 0)


def spool_report(database: Path, source: str, max_bytes: int | None, tz: Any) -> dict[str, Any] | None:
    """A serial source's spool for ``archmon status`` (read from its file, see :func:`peek_spool`); None: empty.

    Args:
        database: the store file (the spools are beside it).
        max_bytes: the bound the service last reported (None: the default).
        tz: the site's zone, for the oldest reading's time.
    """
    held = peek_spool(spool_dir(database), source)
    if held is None:
        return None
    bound = max_bytes or DEFAULT_SPOOL_MAX_BYTES
    return {"rows": held.rows, "bytes": held.bytes, "max_bytes": bound,
            "oldest": to_iso(held.oldest_ms, tz) if held.oldest_ms else None, "warning": held.bytes >= bound / 2}


def format_spool(spool: dict[str, Any] | None) -> str:
    """The spool's part of a source on the ``sources`` line of ``archmon status`` ("" when empty)."""
    if not spool:
        return ""
    mib = 1024 * 1024
    return (f" ({'SPOOL FILLING: ' if spool['warning'] else ''}{spool['rows']} in the disk spool, "
            f"{spool['bytes'] / mib:.1f} MiB of {spool['max_bytes'] / mib:.0f} MiB, oldest {spool['oldest']}; "
            "stored once the store takes them)")


def _row_bytes(topic: str, payload: bytes) -> int:
    return len(topic.encode()) + len(payload) + ROW_OVERHEAD


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """What a spool holds and did.

    Attributes:
        rows: messages on disk, not yet committed to the store.
        bytes: their counted bytes (see the module docstring).
        oldest_ms: receive time of the oldest (0: empty).
        max_bytes: the bound.
        appended: messages written to it since it was opened.
        dropped: oldest rows dropped because the bound was reached.
    """

    rows: int
    bytes: int
    oldest_ms: int
    max_bytes: int
    appended: int
    dropped: int


class Appended(NamedTuple):
    """What :meth:`Spool.append` did: ``dropped`` rows to stay within the bound, wrote rows ``first``..``last``
    (both 0: none)."""

    dropped: int
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class SpooledChunk:
    """Rows read from the spool in order: ``messages`` are rows ``first``..``last`` (their sequence numbers)."""

    first: int
    last: int
    messages: list[RawMessage]


class Spool:
    """One source's spool file; thread-safe (one connection, one lock).

    Args:
        path: the file (created with its folder if missing).
        source: the source id (the ``source`` of the messages read back).
        max_bytes: the bound in counted bytes.

    Raises:
        archmon.sqlite.SchemaError: the file is not a spool this archmon can use.
        sqlite3.Error, OSError: it cannot be opened or created.
    """

    def __init__(self, path: Path, source: str, *, max_bytes: int = DEFAULT_SPOOL_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"spool of {source}: max_bytes must be positive (got {max_bytes})")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._source = source
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._conn = connect(path)
        migrate(self._conn, "spool", _MIGRATIONS, where=str(path))
        rows, size = self._conn.execute(
            "SELECT count(*), coalesce(sum(length(CAST(topic AS BLOB)) + length(payload)), 0) FROM spool").fetchone()
        self._rows = int(rows)
        self._bytes = int(size) + ROW_OVERHEAD * self._rows
        self._appended = 0
        self._dropped = 0
        self._last = int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM spool").fetchone()[0])
        self._cursor = 0  # rows up to here are read (handed to the store); a new Spool reads them all again

    def stats(self) -> SpoolStats:
        """Current figures (the oldest row's time is read from the file)."""
        with self._lock:
            row = self._conn.execute("SELECT received_ms FROM spool ORDER BY seq LIMIT 1").fetchone()
            return SpoolStats(self._rows, self._bytes, int(row[0]) if row else 0, self._max_bytes, self._appended,
                              self._dropped)

    def append(self, messages: Sequence[RawMessage], *, handed: bool = False) -> Appended:
        """Write ``messages`` at the end, durably, in one transaction; make room past the bound.

        Rows already read (handed to the store, see :meth:`read_next`) are never dropped to make room:
        the oldest rows not read yet go first, then the oldest of ``messages``.

        Args:
            messages: in arrival order.
            handed: they are being handed to the store already (a copy kept in case of a crash):
                mark them read, so :meth:`read_next` skips them and no bound drops them.

        Raises:
            sqlite3.Error, OSError: nothing was written (the caller keeps the messages).
        """
        sizes = [_row_bytes(m.topic, m.payload) for m in messages]
        with self._lock:
            excess = self._bytes + sum(sizes) - self._max_bytes
            skip = 0  # of the new messages, dropped before writing (only when older rows do not make room)
            with write_tx(self._conn):
                freed_rows, freed = self._drop_oldest(excess) if excess > 0 and not handed else (0, 0)
                while not handed and excess - freed > 0 and skip < len(messages):
                    freed += sizes[skip]
                    skip += 1
                kept = messages[skip:]
                self._conn.executemany("INSERT INTO spool (topic, payload, received_ms) VALUES (?, ?, ?)",
                                       [(m.topic, m.payload, m.received_ms) for m in kept])
                last = int(self._conn.execute("SELECT coalesce(max(seq), 0) FROM spool").fetchone()[0])
            self._rows += len(kept) - freed_rows
            self._bytes += sum(sizes[skip:]) - (freed - sum(sizes[:skip]))
            self._appended += len(kept)
            self._dropped += freed_rows + skip
            if kept:
                self._last = last
                if handed:
                    self._cursor = max(self._cursor, last)
            return Appended(freed_rows + skip, last - len(kept) + 1 if kept else 0, last if kept else 0)

    def _drop_oldest(self, excess: int) -> tuple[int, int]:
        """Delete the oldest rows not read yet until ``excess`` bytes are free: (rows, bytes)."""
        rows = self._conn.execute(
            "SELECT seq, length(CAST(topic AS BLOB)) + length(payload) FROM spool WHERE seq > ? ORDER BY seq",
            (self._cursor,))
        freed, count, last = 0, 0, None
        for seq, size in rows:
            if freed >= excess:
                break
            freed += int(size) + ROW_OVERHEAD
            count += 1
            last = int(seq)
        rows.close()
        if last is not None:
            self._conn.execute("DELETE FROM spool WHERE seq > ? AND seq <= ?", (self._cursor, last))
        return count, freed

    def read_next(self, *, max_rows: int, max_bytes: int) -> SpooledChunk:
        """The next rows not read yet, in order, at most ``max_rows`` and (but for the first) ``max_bytes`` payload
        bytes; they count as read (handed to the store) from now on.

        Returns:
            The rows; no messages (and ``last`` the newest row written) when every row is read.
        """
        with self._lock:
            rows = self._conn.execute("SELECT seq, topic, payload, received_ms FROM spool WHERE seq > ? ORDER BY seq "
                                      "LIMIT ?", (self._cursor, max_rows)).fetchall()
            messages: list[RawMessage] = []
            size = 0
            last = self._cursor
            for seq, topic, payload, received_ms in rows:
                if messages and size + len(payload) > max_bytes:
                    break
                messages.append(RawMessage(self._source, str(topic), bytes(payload), int(received_ms)))
                size += len(payload)
                last = int(seq)
            if not messages:
                self._cursor = max(self._cursor, self._last)
                return SpooledChunk(0, self._cursor, [])
            self._cursor = last
            return SpooledChunk(int(rows[0][0]), last, messages)

    def rewind(self) -> None:
        """Read every row again from the oldest (what a stop handed over and the store did not take)."""
        with self._lock:
            self._cursor = 0

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest row written (0: none)."""
        with self._lock:
            return self._last

    @property
    def newest_ms(self) -> int:
        """The receive time of the newest row (0: empty)."""
        with self._lock:
            row = self._conn.execute("SELECT received_ms FROM spool ORDER BY seq DESC LIMIT 1").fetchone()
            return int(row[0]) if row else 0

    def remove(self, first: int, last: int) -> None:
        """Rows ``first``..``last`` are committed to the store (or refused for good): delete them durably.

        Raises:
            sqlite3.Error, OSError: they stay (replayed once more later: the store ignores the copies).
        """
        with self._lock, write_tx(self._conn):
            cursor = self._conn.execute("DELETE FROM spool WHERE seq >= ? AND seq <= ? RETURNING "
                                  "length(CAST(topic AS BLOB)) + length(payload)", (first, last))
            sizes = [int(size) for (size,) in cursor.fetchall()]
            self._rows -= len(sizes)
            self._bytes -= sum(sizes) + ROW_OVERHEAD * len(sizes)
            empty = self._rows == 0
        if empty:
            try:
                with self._lock:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    self._conn.execute("VACUUM")
            except Exception:  # only the file's size: the rows are gone either way
                log.debug("spool %s: could not shrink the empty file", self.path, exc_info=True)

    def close(self) -> None:
        """Close the file (what it holds stays, for the next start)."""
        with self._lock:
            self._conn.close()
