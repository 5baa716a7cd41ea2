"""Calibration records (校准记录): the history of every instrument's calibrations, append-only and audited.

Table ``calibration_records`` in the shared file (component ``calibration`` in ``schema_migrations``, migrated
by every :class:`~alerts.store.AlertStore`). A record is never changed or deleted (triggers refuse it):
a mistaken one is corrected by adding another of the same date, which wins. The only column that changes
is ``unseen``: set on insert, cleared once the alert engine has taken the record (``pending_changes``), the
way an early end of a maintenance window reaches the engine of another process.

What a record means for readings (``applies_from_ms``, precedence over ``[sensors.calibration]``) is
:mod:`collector.calibration`'s; the due dates are :mod:`alerts.calibration`'s.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from alerts.audit import DDL as AUDIT_DDL
from alerts.audit import append_audit
from archmon.sqlite import Migration
from collector.calibration import RecordedOffset

__all__ = ["MIGRATIONS", "CalibrationRecord", "CalibrationRows", "newest_record_id", "read_latest", "read_records"]

_COLUMNS = ("id, sensor, calibrated_on, certificate, offset_temperature, offset_humidity, by, recorded_ms, "
            "applies_from_ms")
_IMMUTABLE = _COLUMNS


def _first(conn: sqlite3.Connection) -> None:
    for statement in (*AUDIT_DDL,
                      """CREATE TABLE IF NOT EXISTS calibration_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sensor TEXT NOT NULL,
    calibrated_on TEXT NOT NULL,
    certificate TEXT NOT NULL,
    offset_temperature REAL NOT NULL DEFAULT 0,
    offset_humidity REAL NOT NULL DEFAULT 0,
    by TEXT NOT NULL,
    recorded_ms INTEGER NOT NULL,
    applies_from_ms INTEGER NOT NULL,
    unseen INTEGER NOT NULL DEFAULT 1
)""",
                      "CREATE INDEX IF NOT EXISTS calibration_records_sensor ON calibration_records "
                      "(sensor, calibrated_on, id)",
                      "CREATE INDEX IF NOT EXISTS calibration_records_unseen ON calibration_records (id) "
                      "WHERE unseen = 1",
                      "CREATE TRIGGER IF NOT EXISTS calibration_records_no_delete BEFORE DELETE ON calibration_records "
                      "BEGIN SELECT RAISE(ABORT, 'calibration_records is append-only'); END",
                      f"CREATE TRIGGER IF NOT EXISTS calibration_records_no_update BEFORE UPDATE OF {_IMMUTABLE} "
                      "ON calibration_records BEGIN SELECT RAISE(ABORT, 'calibration_records is append-only'); END"):
        conn.execute(statement)


MIGRATIONS: tuple[Migration, ...] = (Migration(1, _first, "calibration records (append-only, audited)"),)


@dataclass(frozen=True, slots=True)
class CalibrationRecord:
    """One calibration of one instrument, as recorded.

    Attributes:
        id: row id (also the order records were added in).
        sensor: the sensor id.
        calibrated_on: the calibration date (the certificate's, a calendar day of the site).
        certificate: the certificate number (证书编号).
        offset_temperature: correction added to temperature readings (℃; 0: none).
        offset_humidity: correction added to humidity readings (%RH; 0: none).
        by: who recorded it.
        recorded_ms: when it was recorded (UTC epoch ms).
        applies_from_ms: when its offsets apply from (``collector.calibration.applies_from_ms``).
    """

    id: int
    sensor: str
    calibrated_on: dt.date
    certificate: str
    offset_temperature: float
    offset_humidity: float
    by: str
    recorded_ms: int
    applies_from_ms: int

    def as_offset(self) -> RecordedOffset:
        """What the ingest needs of it."""
        return RecordedOffset(self.id, self.sensor, self.calibrated_on.isoformat(), self.applies_from_ms,
                              self.offset_temperature, self.offset_humidity, self.certificate)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``calibrated_on`` as ``YYYY-MM-DD``)."""
        return {"id": self.id, "sensor": self.sensor, "calibrated_on": self.calibrated_on.isoformat(),
                "certificate": self.certificate, "offset_temperature": self.offset_temperature,
                "offset_humidity": self.offset_humidity, "by": self.by, "recorded_ms": self.recorded_ms,
                "applies_from_ms": self.applies_from_ms}


def _record(row: Iterable[Any]) -> CalibrationRecord:
    rid, sensor, day, certificate, off_t, off_h, by, recorded, applies = tuple(row)
    return CalibrationRecord(int(rid), str(sensor), dt.date.fromisoformat(day), str(certificate), float(off_t),
                             float(off_h), str(by), int(recorded), int(applies))


def _missing_table(exc: sqlite3.OperationalError) -> bool:
    return "no such table" in str(exc)


def read_records(conn: sqlite3.Connection, sensor: str | None = None, *, after_id: int = 0) -> list[CalibrationRecord]:
    """The history (of one sensor, or all; only records added after ``after_id`` if given), by sensor,
    calibration date and id; empty on a file without it."""
    where, params = ("WHERE sensor = ? AND id > ?", (sensor, after_id)) if sensor is not None else (
        "WHERE id > ?", (after_id,))
    try:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM calibration_records {where} ORDER BY sensor, calibrated_on, id",
                            params).fetchall()
    except sqlite3.OperationalError as exc:
        if _missing_table(exc):
            return []
        raise
    return [_record(row) for row in rows]


def read_latest(conn: sqlite3.Connection, *, until: dt.date | None = None) -> dict[str, CalibrationRecord]:
    """Each sensor's last calibration: the record with the latest date (the latest added among that day's),
    among those dated on or before ``until`` if given."""
    day = "" if until is None else " AND d.calibrated_on <= :until"
    try:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM calibration_records c WHERE id = (SELECT id FROM calibration_records d "
            f"WHERE d.sensor = c.sensor{day} ORDER BY calibrated_on DESC, id DESC LIMIT 1)",
            {"until": until.isoformat() if until else None}).fetchall()
    except sqlite3.OperationalError as exc:
        if _missing_table(exc):
            return {}
        raise
    return {record.sensor: record for record in map(_record, rows)}


def newest_record_id(conn: sqlite3.Connection) -> int:
    """The newest record's id (0: none): the history's version, one index lookup."""
    try:
        row = conn.execute("SELECT MAX(id) FROM calibration_records").fetchone()
    except sqlite3.OperationalError as exc:
        if _missing_table(exc):
            return 0
        raise
    return int(row[0] or 0)


class CalibrationRows:
    """Mixin of :class:`~alerts.store.AlertStore`: ``calibration_records``."""

    conn: sqlite3.Connection
    _lock: threading.RLock
    tx: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def add_calibration(self, sensor: str, calibrated_on: dt.date, certificate: str, *, offset_temperature: float,
                        offset_humidity: float, by: str, recorded_ms: int, applies_from_ms: int) -> CalibrationRecord:
        """Append a record and its audit entry (kind ``calibration``, subject ``sensor:<id>``) in one transaction.

        The caller has validated it (``alerts.calibration.new_calibration``).
        """
        with self.tx() as conn:
            cursor = conn.execute(
                "INSERT INTO calibration_records (sensor, calibrated_on, certificate, offset_temperature, "
                "offset_humidity, by, recorded_ms, applies_from_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (sensor, calibrated_on.isoformat(), certificate, offset_temperature, offset_humidity, by, recorded_ms,
                 applies_from_ms))
            record = CalibrationRecord(int(cursor.lastrowid or 0), sensor, calibrated_on, certificate,
                                       offset_temperature, offset_humidity, by, recorded_ms, applies_from_ms)
            payload = record.to_dict()
            del payload["by"], payload["recorded_ms"], payload["sensor"]
            append_audit(conn, recorded_ms, "calibration", by, f"sensor:{sensor}", payload)
        return record

    def calibration_records(self, sensor: str | None = None) -> list[CalibrationRecord]:
        """The history (see :func:`read_records`)."""
        with self._lock:
            return read_records(self.conn, sensor)

    def latest_calibrations(self) -> dict[str, CalibrationRecord]:
        """Each sensor's last calibration (see :func:`read_latest`)."""
        with self._lock:
            return read_latest(self.conn)

    def calibration_records_by_id(self, ids: Iterable[int]) -> list[CalibrationRecord]:
        """The records with these ids, by id."""
        wanted = sorted(set(ids))
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        with self._lock:
            rows = self.conn.execute(f"SELECT {_COLUMNS} FROM calibration_records WHERE id IN ({marks}) ORDER BY id",
                                     wanted).fetchall()
        return [_record(row) for row in rows]

    def take_calibrations(self, ids: Iterable[int]) -> None:
        """The engine has taken these records."""
        wanted = sorted(set(ids))
        if not wanted:
            return
        with self.tx() as conn:
            conn.execute(f"UPDATE calibration_records SET unseen = 0 WHERE id IN ({','.join('?' * len(wanted))})",
                         wanted)
