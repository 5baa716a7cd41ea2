"""SqliteStore: readings, rollups, quarantine and store state in one SQLite file (WAL, synchronous=FULL).

Connections come from ``archmon.sqlite``: one write connection guarded by a lock (in production only
the ``StoreWriter`` thread writes), and an ``archmon.sqlite.ReaderPool`` of read-only connections, each
read in its own WAL snapshot, so the dashboard, reports and the CLI (another process opening the same
file) read while a write runs and never wait for it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from archmon import sqlite as sqlite_helper
from collector.records import Batch, WriteResult, mqtt_messages_counter
from collector.store._quarantine import QuarantineLimits, QuarantineWriter, expire_bad_input, read_quarantine
from collector.store._rooms import assignments, stream_readings
from collector.store._schema import check_schema, ensure_schema, has_room_history, has_table
from collector.store._summary_read import SummaryReader
from collector.store._types import (
    Bucket,
    LatestValue,
    RoomAssignment,
    SchemaError,
    StoredQuarantine,
    UnassignedDevice,
)
from collector.store._values import value_sql
from collector.store._write import DayCalendar, SeriesCache, write_batches

__all__ = ["SqliteStore", "WriteHook"]

WriteHook = Callable[[sqlite3.Connection, Sequence[WriteResult]], None]
"""Called inside every write transaction with its results (the forward outbox queues what was stored)."""

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
RECEIPT_SEQ_WINDOW = 32_768
"""A receipt followed by this many messages of its source is stale: its packet id has come back since."""


class SqliteStore:
    """The embedded store.

    Args:
        path: the database file (created with its schema on first open unless ``readonly``).
        tz: the site's time zone; day rollups are calendar days in it.
        readonly: open an existing file for reading only; never creates it.
        busy_timeout_s: how long a write waits for a lock held by another connection before it fails
            with ``sqlite3.OperationalError: database is locked`` (the ``StoreWriter`` then retries).
        quarantine_limits: how much bad input is kept (``collector.store._quarantine``; default limits).

    Raises:
        FileNotFoundError: ``readonly`` and the file does not exist.
        SchemaError: the file is not an archmon store, or has a newer schema.
        sqlite3.Error: the file cannot be opened.
    """

    def __init__(self, path: Path, *, tz: ZoneInfo, readonly: bool = False, busy_timeout_s: float = 5.0,
                 quarantine_limits: QuarantineLimits | None = None) -> None:
        self.path = Path(path)
        self.tz = tz
        self.readonly = readonly
        self._readers = sqlite_helper.ReaderPool(self.path)
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._series = SeriesCache()
        self._calendar = DayCalendar(tz)
        self._bad_input = QuarantineWriter(quarantine_limits or QuarantineLimits())
        self._write_hooks: list[WriteHook] = []
        if readonly:
            if not self.path.is_file():
                raise FileNotFoundError(f"archmon database {self.path} does not exist (opened read-only, not created)")
            with self._readers.read() as conn:
                check_schema(conn, str(self.path))
            return
        try:
            conn = sqlite_helper.connect(self.path, busy_timeout_s=busy_timeout_s)
        except SchemaError:
            raise
        except sqlite_helper.SchemaError as exc:
            raise SchemaError(str(exc)) from exc
        try:
            ensure_schema(conn, str(self.path), tz.key)
        except BaseException:
            conn.close()
            raise
        self._writer = conn

    # -- connections -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection (readers in use close when their query ends). Idempotent."""
        self._readers.close()
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    # -- writes ------------------------------------------------------------------------------------

    def add_write_hook(self, hook: WriteHook) -> None:
        """Run ``hook(conn, results)`` inside every write transaction, after the batches are written: what it
        writes commits with them, and if it raises nothing of the transaction is written."""
        with self._write_lock:
            self._write_hooks.append(hook)

    def write(self, batch: Batch) -> WriteResult:
        """Write one batch in one durable transaction.

        Returns:
            The newly stored readings and the number of duplicates ignored.

        Raises:
            sqlite3.OperationalError: disk I/O error, disk full, database locked (retry later).
            sqlite3.Error: anything else the database refused; nothing of the batch was written.
        """
        return self.write_many([batch])[0]

    def write_many(self, batches: Sequence[Batch]) -> list[WriteResult]:
        """Write several batches in one durable transaction; one ``WriteResult`` per batch, in order.

        Raises:
            sqlite3.Error: as for :meth:`write`; on error nothing is written.
        """
        with self._write_lock:
            conn = self._require_writer()
            try:
                with sqlite_helper.write_tx(conn):
                    results = write_batches(conn, batches, self._series, self._calendar, self._bad_input)
                    for hook in self._write_hooks:
                        hook(conn, results)
                    return results
            except BaseException:
                self._series.clear()  # the rolled-back transaction may have created series or assignments
                if conn.in_transaction:  # COMMIT itself failed
                    conn.execute("ROLLBACK")
                raise

    def _require_writer(self) -> sqlite3.Connection:
        if self._writer is None:
            what = "read-only" if self.readonly else "closed"
            raise sqlite3.ProgrammingError(f"store {self.path} is {what}: cannot write")
        return self._writer

    def apply_retention(self, now_ms: int, raw_retention_days: int, quarantine_retention_days: int) -> dict[str, int]:
        """Delete raw readings, quarantine records and unassigned devices older than their retention.

        0 days keeps forever. Unassigned devices follow the quarantine's retention, by when they were last
        seen. Rollups are kept forever. Each series is trimmed in its own short transaction so the writer
        is never blocked for long.

        Returns:
            Rows deleted: ``{"readings": n, "quarantine": m, "unassigned": k}``.
        """
        deleted = {"readings": 0, "quarantine": 0, "unassigned": 0}
        if raw_retention_days > 0:
            cutoff = now_ms - raw_retention_days * DAY_MS
            with self._readers.read() as rconn:
                ids = [row[0] for row in rconn.execute("SELECT id FROM series ORDER BY id")]
            for sid in ids:
                with self._write_lock:
                    cur = self._require_writer().execute(
                        "DELETE FROM readings WHERE series_id = ? AND ts < ?", (sid, cutoff)
                    )
                    deleted["readings"] += cur.rowcount
        if quarantine_retention_days > 0:
            cutoff = now_ms - quarantine_retention_days * DAY_MS
            with self._write_lock:
                conn = self._require_writer()
                with sqlite_helper.write_tx(conn):
                    deleted["quarantine"], deleted["unassigned"] = expire_bad_input(conn, cutoff)
        if any(deleted.values()):
            log.info("retention: deleted %d raw readings, %d quarantine records and %d unassigned devices",
                     deleted["readings"], deleted["quarantine"], deleted["unassigned"])
        return deleted

    # -- reads -------------------------------------------------------------------------------------

    def receipt_time(self, source: str, mid: int, digest: bytes) -> int | None:
        """The receive time stored for an MQTT message, to stamp its redelivery with (``Pipeline`` lookup).

        Args:
            source: MQTT source id.
            mid: the packet id of the redelivered message.
            digest: ``collector.pipeline.message_digest`` of its topic and payload.

        Returns:
            The receipt's ``received_ms``; None when there is none, or when ``RECEIPT_SEQ_WINDOW`` or more
            messages of the source were stored after it (the packet id was used again since, so the
            receipt belongs to an earlier message with the same content, not to this one).
        """
        with self._readers.read() as conn:
            row = conn.execute(
                "SELECT r.received_ms, c.value - r.seq FROM mqtt_packet_receipts r LEFT JOIN counters c ON c.name = ?"
                " WHERE r.source = ? AND r.mid = ? AND r.digest = ?",
                (mqtt_messages_counter(source), source, mid, bytes(digest)),
            ).fetchone()
        if row is None or row[1] is None or not 0 <= int(row[1]) < RECEIPT_SEQ_WINDOW:
            return None
        return int(row[0])

    def series(self, sensor: str, quantity: str, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """Raw ``(ts_ms, value)`` of one series with ``start_ms <= ts < end_ms``, oldest first."""
        with self._readers.read() as conn:
            rows = conn.execute(
                f"SELECT r.ts, {value_sql('r.value')} FROM readings r JOIN series s ON s.id = r.series_id"
                " WHERE s.sensor = ? AND s.quantity = ? AND r.ts >= ? AND r.ts < ? ORDER BY r.ts",
                (sensor, quantity, start_ms, end_ms),
            ).fetchall()
        return [(int(ts), float(value)) for ts, value in rows]

    def buckets(
        self, sensor: str, quantity: str, start_ms: int, end_ms: int, resolution: Literal["hour", "day"]
    ) -> list[Bucket]:
        """Rollup buckets of one series whose start lies in ``[start_ms, end_ms)``, oldest first.

        Args:
            resolution: ``hour`` (UTC hours) or ``day`` (calendar days in the site's zone; ``start_ms`` of a
                day bucket is its local midnight).
        """
        table = {"hour": "rollup_hour", "day": "rollup_day"}.get(resolution)
        if table is None:
            raise ValueError(f"resolution must be 'hour' or 'day', got {resolution!r}")
        with self._readers.read() as conn:
            rows = conn.execute(
                f"SELECT b.start_ms, b.min, b.max, b.sum, b.count FROM {table} b"
                " JOIN series s ON s.id = b.series_id"
                " WHERE s.sensor = ? AND s.quantity = ? AND b.start_ms >= ? AND b.start_ms < ?"
                " ORDER BY b.start_ms",
                (sensor, quantity, start_ms, end_ms),
            ).fetchall()
        return [Bucket(int(a), float(b), float(c), float(d), int(e)) for a, b, c, d, e in rows]

    def latest(self) -> list[LatestValue]:
        """The newest raw reading of every series, ordered by sensor and quantity.

        ``room`` is the sensor's current room (its newest assignment), not necessarily the room the
        reading was taken in (see :meth:`room_assignments`).
        """
        with self._readers.read() as conn:
            room = (
                "coalesce((SELECT a.room FROM sensor_rooms a WHERE a.sensor = s.sensor ORDER BY a.from_ms DESC"
                " LIMIT 1), s.room)"
                if has_room_history(conn)
                else "s.room"
            )
            rows = conn.execute(
                f"SELECT s.sensor, s.quantity, {value_sql('r.value')}, r.ts, {room} FROM series s"
                " JOIN readings r ON r.series_id = s.id"
                " AND r.ts = (SELECT max(ts) FROM readings WHERE series_id = s.id)"
                " ORDER BY s.sensor, s.quantity"
            ).fetchall()
        return [LatestValue(str(a), str(b), float(c), int(d), str(e)) for a, b, c, d, e in rows]

    def last_seen(self) -> dict[str, int]:
        """Per sensor, the newest reading's ts over all its series (UTC epoch ms)."""
        with self._readers.read() as conn:
            rows = conn.execute(
                "SELECT sensor, max(last) FROM (SELECT s.sensor AS sensor,"
                " (SELECT max(ts) FROM readings WHERE series_id = s.id) AS last FROM series s)"
                " WHERE last IS NOT NULL GROUP BY sensor"
            ).fetchall()
        return {str(sensor): int(ts) for sensor, ts in rows}

    def availability(self) -> dict[str, tuple[str, int]]:
        """Per sensor, the latest availability state and its ts: ``{"s1": ("online", ts_ms)}``."""
        with self._readers.read() as conn:
            rows = conn.execute("SELECT sensor, state, ts_ms FROM availability").fetchall()
        return {str(sensor): (str(state), int(ts)) for sensor, state, ts in rows}

    def counters(self) -> dict[str, int]:
        """Persisted counters (``stored``, ``duplicates`` and whatever the pipeline counted)."""
        with self._readers.read() as conn:
            rows = conn.execute("SELECT name, value FROM counters").fetchall()
        return {str(name): int(value) for name, value in rows}

    def gauges(self) -> dict[str, tuple[int, int]]:
        """Latest state values with the time they were reported: ``{"source.b.connected": (1, ts_ms)}``."""
        with self._readers.read() as conn:
            if not has_table(conn, "gauges"):
                return {}  # a read-only open of a file written by an older archmon
            rows = conn.execute("SELECT name, value, ts_ms FROM gauges").fetchall()
        return {str(name): (int(value), int(ts)) for name, value, ts in rows}

    def quarantine(self, limit: int = 100) -> list[StoredQuarantine]:
        """The newest ``limit`` quarantine records, newest first."""
        with self._readers.read() as conn:
            columns = {str(row[1]) for row in conn.execute("PRAGMA table_info(quarantine)")}
            return read_quarantine(conn, limit, columns=columns, payloads=has_table(conn, "quarantine_payloads"))

    def quarantine_count(self) -> int:
        """Number of quarantine records kept."""
        with self._readers.read() as conn:
            return int(conn.execute("SELECT count(*) FROM quarantine").fetchone()[0])

    def unassigned(self) -> list[UnassignedDevice]:
        """Devices seen but not configured, most recently seen first."""
        with self._readers.read() as conn:
            rows = conn.execute(
                "SELECT source, device_topic, format, first_seen_ms, last_seen_ms, count, last_payload,"
                " last_readings_json FROM unassigned ORDER BY last_seen_ms DESC, source, device_topic"
            ).fetchall()
        return [UnassignedDevice(r[0], r[1], r[2], int(r[3]), int(r[4]), int(r[5]), bytes(r[6]), r[7]) for r in rows]

    def count_readings(self, sensor: str | None = None, quantity: str | None = None) -> int:
        """Number of raw readings stored, optionally for one sensor and/or one quantity."""
        with self._readers.read() as conn:
            row = conn.execute(
                "SELECT count(*) FROM readings r JOIN series s ON s.id = r.series_id"
                " WHERE (?1 IS NULL OR s.sensor = ?1) AND (?2 IS NULL OR s.quantity = ?2)",
                (sensor, quantity),
            ).fetchone()
        return int(row[0])

    def room_assignments(self, sensor: str) -> list[RoomAssignment]:
        """The rooms ``sensor`` was assigned to, oldest first: ``[(room, from_ms, to_ms | None), ...]``.

        Each assignment ends where the next begins; the newest has ``to_ms`` None. The first begins at
        the sensor's first stored reading (or first hour bucket, for files seeded after retention had
        removed older raw readings): no reading of the sensor is older. A reading belongs to the room
        assigned at its timestamp; this is what :meth:`readings` reports and filters on.

        Rollups (:meth:`buckets`) are per series and know nothing of rooms: a room-level aggregate (a
        compliance report per room) must use each sensor's buckets only within its assignments to that
        room, splitting at assignment boundaries (e.g. from raw readings or hour buckets around them).

        Returns:
            [] for a sensor never stored with a room.
        """
        with self._readers.read() as conn:
            return assignments(conn, sensor).get(sensor, [])

    @contextmanager
    def summaries(self) -> Iterator[SummaryReader]:
        """The summaries kept forever (``collector.store._summary``), read in one snapshot: coverage bitmaps and
        value histograms per local hour and room, for reports that must not scan raw readings."""
        with self._readers.read() as conn:
            yield SummaryReader(conn)

    def readings(
        self,
        start_ms: int,
        end_ms: int,
        sensors: Collection[str] | None = None,
        *,
        rooms: Collection[str] | None = None,
    ) -> Iterator[tuple[int, str, str, str, float]]:
        """Stream raw readings with ``start_ms <= ts < end_ms`` as ``(ts, room, sensor, quantity, value)``.

        ``room`` is the room the sensor was assigned to when the reading was taken (its assignment at
        ``ts``, see :meth:`room_assignments`), not the sensor's current room.

        Ordered by ts (ties by room, sensor, quantity). Memory stays constant in the number of readings:
        one cursor per series (one per assignment, in turn) is merged. The whole iteration reads one
        consistent snapshot.

        Args:
            sensors: only these sensor ids (None: all).
            rooms: only readings taken while their sensor was in one of these rooms (None: all).
        """
        with self._readers.read() as conn:
            yield from stream_readings(conn, start_ms, end_ms, sensors, rooms)
