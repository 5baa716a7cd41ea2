"""The forward outbox: readings bound for InfluxDB, queued in the same SQLite transaction that stores them.

:meth:`Outbox.enqueue` is a write hook of ``SqliteStore`` (``add_write_hook``): it runs inside the store's
write transaction, so a crash can never leave a stored reading without its outbox row or the other way
round. The forwarder (``collector.forward.forwarder``) reads the oldest rows, sends them, and deletes them
only once the remote side accepted them (:meth:`acknowledge`); a point the remote refuses for good is moved
to ``forward_quarantine`` with the reason (:meth:`quarantine`).

Tables (component ``forward`` in ``schema_migrations``; the store's own tables are untouched):

- ``forward_outbox(seq, queued_ms, line)``: one line-protocol line per reading, ``seq`` never reused;
- ``forward_totals``: one row: queued rows and bytes (kept in step by every insert and delete, so the bound
  is checked without counting), forwarded, quarantined, overflowed and refilled readings, last success and
  last error;
- ``forward_overflow``: time ranges of readings stored while the outbox was at its bound, one sensor's each
  (``sensor``; '' in rows of files before it: every sensor). They were not queued; once the outbox has
  drained below its warning level they are queued again from the raw readings table (:meth:`refill`). A
  sensor's readings more than :data:`OVERFLOW_GAP_MS` apart go to separate ranges, so one late reading
  (a device buffer from last month) neither stretches a range over everything in between, nor makes the
  refill re-send it, nor holds raw retention back for it longer than its own range. A range may re-send
  readings already forwarded: harmless, InfluxDB keeps one point per series and timestamp;
- ``forward_quarantine``: refused points with HTTP status and reason (the newest 10,000 kept).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import NamedTuple, Protocol

from archmon import sqlite as sqlite_helper
from archmon.domain import Reading
from archmon.timeutil import now_ms
from collector.forward.lines import reading_line
from collector.forward.schema import FORWARD_MIGRATIONS
from collector.records import WriteResult

__all__ = [
    "FORWARD_MIGRATIONS",
    "OVERFLOW_GAP_MS",
    "QUARANTINE_KEPT",
    "Outbox",
    "OutboxLimits",
    "OutboxRow",
    "OutboxTotals",
    "read_totals",
]

log = logging.getLogger(__name__)

QUARANTINE_KEPT = 10_000
_ROWS_PER_STATEMENT = 256

OVERFLOW_GAP_MS = 6 * 3_600_000
"""Readings of one sensor at the bound further apart than this go to separate overflow ranges."""


class RawReadings(Protocol):
    """The raw table's readings by time (``SqliteStore.readings``)."""

    def __call__(self, start_ms: int, end_ms: int, sensors: Collection[str] | None = None, /
                 ) -> Iterable[tuple[int, str, str, str, float]]:
        """``(ts, room, sensor, quantity, value)`` with ``start_ms <= ts < end_ms`` in ts order (only
        ``sensors``' if given)."""
        ...


class OutboxLimits(NamedTuple):
    """The outbox's bound and the warning level long before it (rows and bytes of line protocol)."""

    max_rows: int
    max_bytes: int
    warn_rows: int
    warn_bytes: int


class OutboxRow(NamedTuple):
    """One queued reading: its sequence number, when it was queued and its line."""

    seq: int
    queued_ms: int
    line: str


@dataclass(frozen=True, slots=True)
class OutboxTotals:
    """The outbox as stored (read in one snapshot).

    Attributes:
        rows, bytes: queued now. oldest_queued_ms: when the oldest queued row was queued (None: empty).
        forwarded, quarantined, overflowed, refilled: readings so far (over every run).
        overflow_pending: readings stored at the bound and not queued again yet; overflow_since_ms: when
            the oldest such range began (None: none).
        last_ok_ms, last_error, last_error_ms: the last accepted request and the last failure.
    """

    rows: int
    bytes: int
    oldest_queued_ms: int | None
    forwarded: int
    quarantined: int
    overflowed: int
    refilled: int
    overflow_pending: int
    overflow_since_ms: int | None
    overflow_lo_ts: int | None
    last_ok_ms: int | None
    last_error: str
    last_error_ms: int | None


def _insert_lines(conn: sqlite3.Connection, queued_ms: int, lines: Sequence[str]) -> None:
    """Insert ``lines`` in a few multi-row statements (one GIL release per statement, not per row)."""
    start = 0
    size = _ROWS_PER_STATEMENT
    while start < len(lines):
        while size > len(lines) - start:
            size //= 2
        sql = "INSERT INTO forward_outbox (queued_ms, line) VALUES " + ", ".join(["(?, ?)"] * size)
        conn.execute(sql, list(chain.from_iterable((queued_ms, line) for line in lines[start:start + size])))
        start += size


class Outbox:
    """The outbox in the shared database file.

    Args:
        path: the database file (the store's).
        site: the ``site`` tag of every line.
        limits: bound and warning level.
        busy_timeout_s: how long one of its own writes (acknowledgements) waits for a lock.
        clock: UTC epoch ms now (tests).
    """

    def __init__(self, path: Path, *, site: str, limits: OutboxLimits, busy_timeout_s: float = 1.0,
                 clock: Callable[[], int] = now_ms) -> None:
        self.path = Path(path)
        self.site = site
        self.limits = limits
        self._clock = clock
        self._busy_timeout_s = busy_timeout_s
        self._prefixes: dict[tuple[str, str, str], str] = {}
        self._conn: sqlite3.Connection | None = None
        self._readers = sqlite_helper.ReaderPool(self.path)
        self._overflow_logged = False

    def open(self) -> Outbox:
        """Open its own write connection and create its tables (before the store's hook is added)."""
        if self._conn is None:
            conn = sqlite_helper.connect(self.path, busy_timeout_s=max(self._busy_timeout_s, 5.0))
            sqlite_helper.migrate(conn, "forward", FORWARD_MIGRATIONS, where=str(self.path))
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
            # Its own commits (acknowledgements, refills) need no fsync each: one lost at a power cut only
            # means rows sent again (harmless) or a range refilled again; the store's commits on its own
            # connection still sync the WAL, these frames included.
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self

    def close(self) -> None:
        """Close its connections. Idempotent."""
        self._readers.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the store's write hook (the store's connection, inside its transaction) -------------------

    def enqueue(self, conn: sqlite3.Connection, results: Sequence[WriteResult]) -> None:
        """Queue every newly stored reading of ``results``; at the bound, remember their time range instead.

        Runs inside the store's write transaction on its connection: raising rolls the readings back too.
        """
        readings = [reading for result in results for reading in result.stored]
        if not readings:
            return
        site, prefixes = self.site, self._prefixes
        lines = [reading_line(reading, site, prefixes) for reading in readings]
        size = sum(map(len, map(str.encode, lines)))
        rows, queued_bytes = conn.execute("SELECT rows, bytes FROM forward_totals WHERE id = 1").fetchone()
        if rows + len(lines) > self.limits.max_rows or queued_bytes + size > self.limits.max_bytes:
            self._overflow(conn, readings)
            return
        _insert_lines(conn, self._clock(), lines)
        conn.execute("UPDATE forward_totals SET rows = rows + ?, bytes = bytes + ? WHERE id = 1", (len(lines), size))
        self._overflow_logged = False

    def _overflow(self, conn: sqlite3.Connection, readings: Sequence[Reading]) -> None:
        for sensor, lo, hi, count in _clusters(readings):
            row = conn.execute("SELECT id FROM forward_overflow WHERE claimed = 0 AND sensor = ? AND lo_ts <= ? "
                               "AND hi_ts >= ? ORDER BY id DESC LIMIT 1",
                               (sensor, hi + OVERFLOW_GAP_MS, lo - OVERFLOW_GAP_MS)).fetchone()
            if row is None:
                conn.execute("INSERT INTO forward_overflow (lo_ts, hi_ts, readings, since_ms, sensor) "
                             "VALUES (?, ?, ?, ?, ?)", (lo, hi, count, self._clock(), sensor))
            else:
                conn.execute("UPDATE forward_overflow SET lo_ts = min(lo_ts, ?), hi_ts = max(hi_ts, ?), "
                             "readings = readings + ? WHERE id = ?", (lo, hi, count, row[0]))
        conn.execute("UPDATE forward_totals SET overflowed = overflowed + ? WHERE id = 1", (len(readings),))
        if not self._overflow_logged:
            self._overflow_logged = True
            log.warning("forward outbox full (%d rows / %d bytes at most): readings are stored locally and not "
                        "queued; their time range is queued again from the raw table once the outbox drains",
                        self.limits.max_rows, self.limits.max_bytes)

    # -- the forwarder's side ----------------------------------------------------------------------

    def _writer(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError(f"outbox of {self.path} is not open")
        return self._conn

    def peek(self, limit: int) -> list[OutboxRow]:
        """The oldest ``limit`` queued rows, oldest first."""
        with self._readers.read() as conn:
            rows = conn.execute("SELECT seq, queued_ms, line FROM forward_outbox ORDER BY seq LIMIT ?",
                                (limit,)).fetchall()
        return [OutboxRow(int(a), int(b), str(c)) for a, b, c in rows]

    def _delete(self, conn: sqlite3.Connection, first: int, last: int) -> int:
        count, size = conn.execute("SELECT count(*), coalesce(sum(length(CAST(line AS BLOB))), 0) FROM "
                                   "forward_outbox WHERE seq BETWEEN ? AND ?", (first, last)).fetchone()
        conn.execute("DELETE FROM forward_outbox WHERE seq BETWEEN ? AND ?", (first, last))
        conn.execute("UPDATE forward_totals SET rows = max(0, rows - ?), bytes = max(0, bytes - ?) WHERE id = 1",
                     (count, size))
        return int(count)

    def acknowledge(self, rows: Sequence[OutboxRow]) -> int:
        """Delete rows the remote accepted (a contiguous run of the oldest); returns how many were deleted.

        Raises:
            sqlite3.OperationalError: the file is locked (nothing deleted: they are sent again, harmlessly).
        """
        if not rows:
            return 0
        conn = self._writer()
        with sqlite_helper.write_tx(conn):
            count = self._delete(conn, rows[0].seq, rows[-1].seq)
            conn.execute("UPDATE forward_totals SET forwarded = forwarded + ?, last_ok_ms = ? WHERE id = 1",
                         (count, self._clock()))
        return count

    def quarantine(self, row: OutboxRow, status: int, reason: str) -> None:
        """Move a point the remote refused for good to ``forward_quarantine`` with the reason."""
        conn = self._writer()
        now = self._clock()
        with sqlite_helper.write_tx(conn):
            if not self._delete(conn, row.seq, row.seq):
                return
            conn.execute("INSERT INTO forward_quarantine (at_ms, status, reason, line) VALUES (?, ?, ?, ?)",
                         (now, status, reason[:2000], row.line))
            conn.execute("DELETE FROM forward_quarantine WHERE id <= (SELECT max(id) FROM forward_quarantine) - ?",
                         (QUARANTINE_KEPT,))
            conn.execute("UPDATE forward_totals SET quarantined = quarantined + 1 WHERE id = 1")

    def refused_since(self, since_ms: int) -> int:
        """Points moved to the quarantine at or after ``since_ms`` (still kept there)."""
        with self._readers.read() as conn:
            return int(conn.execute("SELECT count(*) FROM forward_quarantine WHERE at_ms >= ?",
                                    (since_ms,)).fetchone()[0])

    def requeue(self, *, since_ms: int | None = None) -> int:
        """Queue refused points again (all, or those refused at or after ``since_ms``), oldest first.

        For points refused by mistake (a proxy or a server problem since fixed): they go to the end of the
        outbox and are sent like any other (a point the server still refuses is refused again). The outbox's
        bound is not applied: they were queued once already.

        Returns:
            Points queued again.
        """
        conn = self._writer()
        where, args = ("WHERE at_ms >= ?", (since_ms,)) if since_ms is not None else ("", ())
        with sqlite_helper.write_tx(conn):
            rows = conn.execute(f"SELECT id, line FROM forward_quarantine {where} ORDER BY id", args).fetchall()
            lines = [str(line) for _, line in rows]
            if not lines:
                return 0
            _insert_lines(conn, self._clock(), lines)
            conn.execute(f"DELETE FROM forward_quarantine {where}", args)
            conn.execute("UPDATE forward_totals SET rows = rows + ?, bytes = bytes + ? WHERE id = 1",
                         (len(lines), sum(len(line.encode()) for line in lines)))
        log.info("forward: %d refused point(s) queued again", len(lines))
        return len(lines)

    def record_error(self, text: str) -> None:
        """Keep the last failure for ``archmon status`` (best effort: a locked file keeps the older one)."""
        try:
            with sqlite_helper.write_tx(self._writer()) as conn:
                conn.execute("UPDATE forward_totals SET last_error = ?, last_error_ms = ? WHERE id = 1",
                             (text[:500], self._clock()))
        except sqlite3.OperationalError as exc:
            log.debug("forward: last error not recorded: %s", exc)

    def refill(self, raw: RawReadings, chunk: int) -> int:
        """Queue again, from the raw table, up to about ``chunk`` readings of the oldest overflow range.

        Returns:
            Readings queued (0: none, e.g. no overflow range left).
        """
        conn = self._writer()
        with sqlite_helper.write_tx(conn):
            row = conn.execute("SELECT id, lo_ts, hi_ts, sensor FROM forward_overflow ORDER BY id LIMIT 1"
                               ).fetchone()
            if row is None:
                return 0
            conn.execute("UPDATE forward_overflow SET claimed = 1 WHERE id = ?", (row[0],))
        range_id, lo, hi = (int(v) for v in row[:3])
        picked: list[Reading] = []
        next_lo: int | None = None
        for ts, room, sensor, quantity, value in raw(lo, hi + 1, [str(row[3])] if row[3] else None):
            if len(picked) >= chunk and ts != picked[-1].ts_ms:
                next_lo = ts
                break
            picked.append(Reading(sensor, quantity, value, ts, room))
        lines = [reading_line(reading, self.site, self._prefixes) for reading in picked]
        with sqlite_helper.write_tx(conn):
            if lines:
                _insert_lines(conn, self._clock(), lines)
            size = sum(len(line.encode()) for line in lines)
            conn.execute("UPDATE forward_totals SET rows = rows + ?, bytes = bytes + ?, refilled = refilled + ? "
                         "WHERE id = 1", (len(lines), size, len(lines)))
            if next_lo is None:
                conn.execute("DELETE FROM forward_overflow WHERE id = ?", (range_id,))
            else:
                conn.execute("UPDATE forward_overflow SET lo_ts = ?, readings = max(0, readings - ?) WHERE id = ?",
                             (next_lo, len(lines), range_id))
        if next_lo is None:
            log.info("forward: a range of readings stored while the outbox was full is queued again")
        return len(lines)

    def totals(self) -> OutboxTotals:
        """The outbox's numbers, read in one snapshot."""
        with self._readers.read() as conn:
            return read_totals(conn)


class _Cluster(NamedTuple):
    sensor: str
    lo: int
    hi: int
    count: int


def _clusters(readings: Sequence[Reading]) -> list[_Cluster]:
    """Per sensor, its readings' time ranges, split where two are more than :data:`OVERFLOW_GAP_MS` apart."""
    times: dict[str, list[int]] = {}
    for reading in readings:
        times.setdefault(reading.sensor, []).append(reading.ts_ms)
    out = []
    for sensor, stamps in times.items():
        stamps.sort()
        start = previous = stamps[0]
        count = 0
        for ts in stamps:
            if ts - previous > OVERFLOW_GAP_MS:
                out.append(_Cluster(sensor, start, previous, count))
                start, count = ts, 0
            previous = ts
            count += 1
        out.append(_Cluster(sensor, start, previous, count))
    return out


def read_totals(conn: sqlite3.Connection) -> OutboxTotals:
    """:class:`OutboxTotals` from an open connection (read-only is fine; the tables must exist)."""
    t = conn.execute("SELECT rows, bytes, forwarded, quarantined, overflowed, refilled, last_ok_ms, last_error, "
                     "last_error_ms FROM forward_totals WHERE id = 1").fetchone()
    oldest = conn.execute("SELECT queued_ms FROM forward_outbox ORDER BY seq LIMIT 1").fetchone()
    over = conn.execute("SELECT coalesce(sum(readings), 0), min(since_ms), min(lo_ts) FROM forward_overflow"
                        ).fetchone()
    return OutboxTotals(
        rows=int(t[0]), bytes=int(t[1]), oldest_queued_ms=None if oldest is None else int(oldest[0]),
        forwarded=int(t[2]), quarantined=int(t[3]), overflowed=int(t[4]), refilled=int(t[5]),
        overflow_pending=int(over[0]), overflow_since_ms=None if over[1] is None else int(over[1]),
        overflow_lo_ts=None if over[2] is None else int(over[2]),
        last_ok_ms=None if t[6] is None else int(t[6]), last_error=str(t[7]),
        last_error_ms=None if t[8] is None else int(t[8]),
    )
