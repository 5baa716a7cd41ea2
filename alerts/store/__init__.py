"""Persistence of alerts, transitions, comments, maintenance windows, notification requests, the engine's
lifecycle state, the audit log and calibration records, in the shared SQLite file (tables prefixed ``alert_``,
``audit_``, ``maintenance_``, ``notification_``, ``calibration_``), opened through :mod:`archmon.sqlite` (WAL,
``synchronous=FULL``, migrations of components ``alerts`` and ``calibration``).

One module per concern: ``_schema`` (tables, migrations), ``_tx`` (transactions and batches), ``_alerts``
(alerts, transitions, comments), ``_maintenance``, ``_calibration`` (calibration records), ``_queue``
(notification queue), ``_memory`` (engine state); :class:`AlertStore` is the writer composed of them.
Readers that must never wait on the engine's write lock (dashboard, reports, CLI listings) use
:class:`~alerts.store.reader.AlertReader`.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from alerts.audit import AuditVerdict, append_audit, verify_audit
from alerts.store._alerts import AlertRows, PendingChanges
from alerts.store._calibration import MIGRATIONS as CALIBRATION_MIGRATIONS
from alerts.store._calibration import CalibrationRecord, CalibrationRows
from alerts.store._maintenance import MaintenanceRows
from alerts.store._memory import EngineMemory, StateWrites
from alerts.store._queue import NotificationQueue
from alerts.store._schema import MIGRATIONS
from alerts.store._tx import Transactions
from alerts.store.reader import AlertReader
from archmon.sqlite import connect, migrate

__all__ = ["AlertReader", "AlertStore", "CalibrationRecord", "PendingChanges", "StateWrites"]


class AlertStore(Transactions, AlertRows, MaintenanceRows, CalibrationRows, NotificationQueue, EngineMemory):
    """The alert tables in one SQLite file, for the one writer that changes them.

    Thread-safe: one connection guarded by a lock. Several processes (the service and the CLI) may write
    the same file; writes take ``BEGIN IMMEDIATE`` so the audit chain stays linear.

    Args:
        path: database file, or ``":memory:"`` (replay).

    Raises:
        archmon.sqlite.SchemaError: not a database, or alert tables written by a newer archmon.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self.conn = connect(path)
        self.conn.row_factory = sqlite3.Row
        try:
            migrate(self.conn, "alerts", MIGRATIONS, where=self.path)
            migrate(self.conn, "calibration", CALIBRATION_MIGRATIONS, where=self.path)
        except BaseException:
            self.conn.close()
            raise
        self._depth = 0
        self._batching = False
        self._units = 0
        self.writes = 0
        self._requests = False
        self.state_writes = StateWrites()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.conn.close()

    def audit(self, ts_ms: int, kind: str, actor: str, subject: str, payload: dict[str, Any]) -> None:
        """Append one audit entry (in its own transaction unless inside :meth:`tx`)."""
        with self.tx() as conn:
            append_audit(conn, ts_ms, kind, actor, subject, payload)

    def verify_audit(self) -> AuditVerdict:
        """Verify the audit hash chain."""
        with self._lock:
            return verify_audit(self.conn)
