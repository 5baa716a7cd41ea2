"""The notify tables' schema (component ``notify``, migrations of its own) and the rows they hold.

See :mod:`alerts.notify.outbox` for what the tables mean.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from archmon.sqlite import Migration

__all__ = ["MIGRATIONS", "Delivery", "NewDelivery"]


def _add_resume(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(notify_deliveries)")}
    if "resume" not in columns:
        conn.execute("ALTER TABLE notify_deliveries ADD COLUMN resume TEXT")
    conn.execute("CREATE INDEX IF NOT EXISTS notify_deliveries_created ON notify_deliveries(created_ms)")
    conn.execute("CREATE INDEX IF NOT EXISTS notify_inbox_time ON notify_inbox(ts_ms)")


MIGRATIONS = [
    Migration(1, """
CREATE TABLE IF NOT EXISTS notify_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER,
    alert_id INTEGER,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    route TEXT NOT NULL,
    level INTEGER NOT NULL DEFAULT 0,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    contact TEXT,
    mentions TEXT NOT NULL DEFAULT '[]',
    language TEXT NOT NULL,
    group_key TEXT,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    due_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    sent_ms INTEGER,
    batch INTEGER,
    possible_duplicate INTEGER NOT NULL DEFAULT 0,
    answer TEXT,
    UNIQUE (request_id, channel, recipient)
);
CREATE INDEX IF NOT EXISTS notify_deliveries_due ON notify_deliveries(channel, status, due_ms);
CREATE INDEX IF NOT EXISTS notify_deliveries_alert ON notify_deliveries(alert_id);
CREATE TABLE IF NOT EXISTS notify_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES notify_deliveries(id),
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    outcome TEXT NOT NULL,
    answer TEXT,
    next_ms INTEGER
);
CREATE INDEX IF NOT EXISTS notify_attempts_delivery ON notify_attempts(delivery_id);
CREATE TABLE IF NOT EXISTS notify_channel_state (
    channel TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    state TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    last_success_ms INTEGER,
    last_failure_ms INTEGER,
    last_error TEXT,
    details TEXT NOT NULL DEFAULT '{}',
    updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS notify_inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    number TEXT NOT NULL,
    contact TEXT,
    text TEXT NOT NULL,
    received TEXT NOT NULL DEFAULT '',
    ts_ms INTEGER NOT NULL,
    action TEXT NOT NULL,
    result TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS notify_inbox_number ON notify_inbox(number, action, ts_ms);
""", "deliveries, attempts, channel state, inbox"),
    Migration(2, _add_resume, "deliveries remember where a failed multi-part SMS resumes; indexes for retention"),
]


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to create when a request is expanded (``group_key`` None: never grouped)."""

    channel: str
    recipient: str
    contact: str | None
    mentions: tuple[str, ...]
    language: str
    route: str
    group_key: str | None
    due_ms: int
    group_window_ms: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stored delivery."""

    id: int
    request_id: int | None
    alert_id: int | None
    kind: str
    severity: str
    route: str
    level: int
    channel: str
    recipient: str
    contact: str | None
    mentions: tuple[str, ...]
    language: str
    group_key: str | None
    payload: dict[str, Any]
    status: str
    due_ms: int
    attempts: int
    failures: int
    possible_duplicate: bool
    resume: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Delivery:
        """From a ``notify_deliveries`` row."""
        return cls(row["id"], row["request_id"], row["alert_id"], row["kind"], row["severity"], row["route"],
                   row["level"], row["channel"], row["recipient"], row["contact"], tuple(json.loads(row["mentions"])),
                   row["language"], row["group_key"], json.loads(row["payload"]), row["status"], row["due_ms"],
                   row["attempts"], row["failures"], bool(row["possible_duplicate"]),
                   json.loads(row["resume"]) if row["resume"] else None)
