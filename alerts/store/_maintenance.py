"""Maintenance windows: a room's non-critical rules silenced until a time, ended early by name (audited).

Mixin of :class:`~alerts.store.AlertStore`. A window's effective end is ``ended_ms`` if it was ended early,
else ``until_ms``; an early end is flagged ``end_unseen`` until the engine takes it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from alerts.audit import append_audit
from alerts.store._schema import WINDOW_END as _END
from archmon.timeutil import to_iso

__all__ = ["MaintenanceRows"]


class MaintenanceRows:
    """Mixin: ``maintenance_windows``."""

    conn: sqlite3.Connection
    _lock: threading.RLock
    tx: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def add_maintenance(self, room: str, start_ms: int, until_ms: int, reason: str, by: str, ts_ms: int) -> int:
        """Record a maintenance window (and audit it); returns its id."""
        if until_ms <= start_ms:
            raise ValueError(f"maintenance window ends ({to_iso(until_ms)}) before it starts ({to_iso(start_ms)})")
        with self.tx() as conn:
            cursor = conn.execute(
                "INSERT INTO maintenance_windows (room, start_ms, until_ms, reason, by, created_ms) "
                "VALUES (?,?,?,?,?,?)", (room, start_ms, until_ms, reason, by, ts_ms),
            )
            window_id = int(cursor.lastrowid or 0)
            append_audit(conn, ts_ms, "maintenance", by, f"room:{room}",
                         {"id": window_id, "start_ms": start_ms, "until_ms": until_ms, "reason": reason})
        return window_id

    def maintenance_window(self, window_id: int) -> dict[str, Any] | None:
        """One maintenance window (``end_ms``: its effective end, ``ended_ms`` if ended early), or None."""
        with self._lock:
            row = self.conn.execute(f"SELECT *, {_END} AS end_ms FROM maintenance_windows WHERE id = ?",
                                    (window_id,)).fetchone()
        return dict(row) if row else None

    def maintenance_windows(self, now_ms: int, room: str | None = None) -> list[dict[str, Any]]:
        """Windows active at ``now_ms`` or starting later (of one room, or all), by start."""
        query = f"SELECT *, {_END} AS end_ms FROM maintenance_windows WHERE {_END} > ? AND {_END} > start_ms"
        params: list[Any] = [now_ms]
        if room is not None:
            query += " AND room = ?"
            params.append(room)
        with self._lock:
            return [dict(r) for r in self.conn.execute(query + " ORDER BY start_ms, id", params)]

    def end_maintenance(self, window_id: int, by: str, comment: str, ts_ms: int) -> dict[str, Any]:
        """End a maintenance window at ``ts_ms`` (a window not started yet is called off), audited; the
        engine takes the new end at its next look (``pending_changes``). Returns the window as it was.

        Raises:
            KeyError: unknown window.
            ValueError: no name, or the window is over already.
        """
        if not by.strip():
            raise ValueError("ending a maintenance window needs the name of who ends it (--by)")
        with self.tx() as conn:
            row = conn.execute(f"SELECT *, {_END} AS end_ms FROM maintenance_windows WHERE id = ?",
                               (window_id,)).fetchone()
            if row is None:
                raise KeyError(window_id)
            window = dict(row)
            if window["end_ms"] <= ts_ms or window["end_ms"] <= window["start_ms"]:
                raise ValueError(f"maintenance window {window_id} is over already")
            conn.execute("UPDATE maintenance_windows SET ended_ms = ?, ended_by = ?, end_comment = ?, end_unseen = 1 "
                         "WHERE id = ?", (ts_ms, by, comment, window_id))
            append_audit(conn, ts_ms, "maintenance_end", by, f"room:{window['room']}",
                         {"id": window_id, "start_ms": window["start_ms"], "until_ms": window["until_ms"],
                          "ended_ms": ts_ms, "comment": comment})
        return window

    def take_ended_window(self, window_id: int) -> None:
        """The engine has taken the early end of a window."""
        with self.tx() as conn:
            conn.execute("UPDATE maintenance_windows SET end_unseen = 0 WHERE id = ?", (window_id,))

    def maintenance_until(self, room: str, ts_ms: int) -> int | None:
        """End of the maintenance window(s) covering ``ts_ms`` in ``room`` (chained windows), or None."""
        until: int | None = None
        probe = ts_ms
        with self._lock:
            while True:
                row = self.conn.execute(
                    f"SELECT MAX({_END}) FROM maintenance_windows WHERE room = ? AND start_ms <= ? AND {_END} > ?",
                    (room, probe, probe),
                ).fetchone()
                if row[0] is None or (until is not None and row[0] <= until):
                    return until
                until = probe = int(row[0])
