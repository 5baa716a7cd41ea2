"""Read-only access to the alert tables for the dashboard, reports and the CLI.

:class:`AlertReader` reads through :class:`archmon.sqlite.ReaderPool`: its own read-only WAL connections,
each read one consistent snapshot, never waiting on the engine's write lock (nor taking one). A file the
alert engine has not written to yet (no alert tables) reads as empty.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

from alerts.store._calibration import CalibrationRecord, read_latest, read_records
from alerts.store._schema import WINDOW_END
from archmon.sqlite import ReaderPool

__all__ = ["AlertReader"]


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


class AlertReader:
    """Queries of the alert tables on read-only connections.

    Args:
        path: the shared database file (it must exist; ``FileNotFoundError`` at the first read otherwise).
        max_idle: read connections kept open for reuse.
    """

    def __init__(self, path: Path | str, *, max_idle: int = 2) -> None:
        self.path = Path(path)
        self._pool = ReaderPool(self.path, max_idle=max_idle)

    def close(self) -> None:
        """Close the idle connections (idempotent)."""
        self._pool.close()

    def __enter__(self) -> AlertReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        with self._pool.read() as conn:
            try:
                return _rows(conn.execute(sql, params))
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []  # the alert engine never ran on this file
                raise

    def alerts(self, *, active_only: bool = False, fired_only: bool = False, limit: int = 1000) -> list[dict[str, Any]]:
        """Alerts, newest first.

        Args:
            active_only: only pending, active and acknowledged alerts.
            fired_only: only alerts that were active at some point or are pending now (no cancelled ones).
            limit: at most so many.
        """
        conditions = []
        if active_only:
            conditions.append("state IN ('pending', 'active', 'acknowledged')")
        if fired_only:
            conditions.append("(fire_count > 0 OR state = 'pending')")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        return self._query(f"SELECT * FROM alert_alerts {where} ORDER BY id DESC LIMIT ?", (limit,))

    def alerts_between(self, start_ms: int, end_ms: int, *, rooms: list[str] | None = None) -> list[dict[str, Any]]:
        """Alerts that fired (were active at some point) and were open at some time in ``[start_ms, end_ms)``,
        oldest first (compliance reports); of these rooms only when given."""
        sql = ("SELECT * FROM alert_alerts WHERE fire_count > 0 AND coalesce(active_ms, opened_ms) < ?"
               " AND (closed_ms IS NULL OR closed_ms >= ?)")
        params: list[Any] = [end_ms, start_ms]
        if rooms is not None:
            sql += f" AND room IN ({', '.join('?' * len(rooms))})"
            params += rooms
        return self._query(sql + " ORDER BY coalesce(active_ms, opened_ms), id", params)

    def alert(self, alert_id: int) -> dict[str, Any] | None:
        """One alert row (None if unknown)."""
        rows = self._query("SELECT * FROM alert_alerts WHERE id = ?", (alert_id,))
        return rows[0] if rows else None

    def transitions(self, alert_id: int) -> list[dict[str, Any]]:
        """The transitions of one alert, oldest first."""
        return self._query("SELECT * FROM alert_transitions WHERE alert_id = ? ORDER BY id", (alert_id,))

    def comments(self, alert_id: int) -> list[dict[str, Any]]:
        """The comments of one alert, oldest first."""
        return self._query("SELECT * FROM alert_comments WHERE alert_id = ? ORDER BY id", (alert_id,))

    def maintenance_windows(self, now_ms: int, room: str | None = None) -> list[dict[str, Any]]:
        """Maintenance windows active at ``now_ms`` or starting later (of one room, or all), by start;
        ``end_ms`` is each one's effective end."""
        query = (f"SELECT *, {WINDOW_END} AS end_ms FROM maintenance_windows WHERE {WINDOW_END} > ? "
                 f"AND {WINDOW_END} > start_ms")
        params: list[Any] = [now_ms]
        if room is not None:
            query += " AND room = ?"
            params.append(room)
        return self._query(query + " ORDER BY start_ms, id", params)

    def maintenance_window(self, window_id: int) -> dict[str, Any] | None:
        """One maintenance window (with ``end_ms``), or None."""
        rows = self._query(f"SELECT *, {WINDOW_END} AS end_ms FROM maintenance_windows WHERE id = ?", (window_id,))
        return rows[0] if rows else None

    def calibration_records(self, sensor: str | None = None) -> list[CalibrationRecord]:
        """The calibration history (of one sensor, or all), by sensor, date and id."""
        with self._pool.read() as conn:
            return read_records(conn, sensor)

    def latest_calibrations(self, *, until: dt.date | None = None) -> dict[str, CalibrationRecord]:
        """Each sensor's last calibration (dated on or before ``until`` if given)."""
        with self._pool.read() as conn:
            return read_latest(conn, until=until)

    def notifications(self, status: str | None = None, *, limit: int = 1000) -> list[dict[str, Any]]:
        """The notification log: queued requests and their status, newest first."""
        where = " WHERE status = ?" if status else ""
        params: tuple[Any, ...] = (status, limit) if status else (limit,)
        return self._query(f"SELECT * FROM notification_queue{where} ORDER BY id DESC LIMIT ?", params)
