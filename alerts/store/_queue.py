"""The notification queue: requests the engine makes (fired, repeat, escalate, recovered) for the channels.

Mixin of :class:`~alerts.store.AlertStore`. The table's shape is shared with the notification channels:
columns may be added, never removed or renamed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

__all__ = ["NotificationQueue"]


class NotificationQueue:
    """Mixin: ``notification_queue``."""

    conn: sqlite3.Connection
    _lock: threading.RLock
    _batching: bool
    _requests: bool
    tx: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def enqueue_notification(self, alert_id: int, transition: str, severity: str, route: str, level: int,
                             ts_ms: int, payload: dict[str, Any]) -> int:
        """Queue a notification request for the channels (status ``pending``)."""
        with self.tx() as conn:
            cursor = conn.execute(
                "INSERT INTO notification_queue (alert_id, transition, severity, route, level, created_ms, payload) "
                "VALUES (?,?,?,?,?,?,?)",
                (alert_id, transition, severity, route, level, ts_ms, json.dumps(payload, ensure_ascii=False)),
            )
            self._requests = self._batching
            return int(cursor.lastrowid or 0)

    def notifications(self, status: str | None = None) -> list[dict[str, Any]]:
        """Queued notification requests, oldest first."""
        query = "SELECT * FROM notification_queue" + (" WHERE status = ?" if status else "") + " ORDER BY id"
        with self._lock:
            return [dict(r) for r in self.conn.execute(query, (status,) if status else ())]
