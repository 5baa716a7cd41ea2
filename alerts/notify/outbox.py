"""The durable outbox: requests expanded into deliveries (channel × recipient), each with its attempts.

Tables (component ``notify``, own migrations) in the shared SQLite file:

- ``notify_deliveries``: one row per (request, channel, recipient): status ``queued`` → ``sending`` →
  ``sent`` | ``queued`` again (retry at ``due_ms``) | ``failed`` (rejected, or out of attempts) |
  ``cancelled`` (its alert was acknowledged before it went out). ``batch`` is the first delivery of the
  message that carried it (grouped deliveries share one message).
- ``notify_attempts``: every try: start, end, outcome, the provider's answer, the next try.
- ``notify_channel_state``: each channel's health (for ``archmon status`` in another process).
- ``notify_inbox``: received SMS and what was done with them.

Exactly-once, as far as a provider allows: a request is expanded and marked (``notification_queue.status``
``pending`` → ``queued`` or ``unrouted``) in one transaction, so a crash expands it once or not at all. A
delivery is marked ``sending`` (with an attempt row) and committed *before* the provider is called, and the
answer is committed after. A crash in between leaves ``sending`` rows: at the next start they are queued
again with ``possible_duplicate`` set (the provider may have taken the message), so each crash costs at most
one extra copy, and only of what was in flight. ``notification_queue.status`` becomes ``sent`` (at least one
delivery went out) or ``failed`` once every delivery of the request is settled.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archmon.sqlite import Migration, connect, migrate, write_tx

__all__ = ["Delivery", "NewDelivery", "Outbox"]

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
]

TERMINAL = ("sent", "failed", "cancelled")
_SEVERITY_ORDER = "CASE severity WHEN 'critical' THEN 0 WHEN 'major' THEN 1 WHEN 'minor' THEN 2 ELSE 3 END"


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

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Delivery:
        """From a ``notify_deliveries`` row."""
        return cls(row["id"], row["request_id"], row["alert_id"], row["kind"], row["severity"], row["route"],
                   row["level"], row["channel"], row["recipient"], row["contact"], tuple(json.loads(row["mentions"])),
                   row["language"], row["group_key"], json.loads(row["payload"]), row["status"], row["due_ms"],
                   row["attempts"], row["failures"], bool(row["possible_duplicate"]))


class Outbox:
    """The notify tables on their own connection (thread-safe: one lock).

    Args:
        path: the shared database file.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.conn = connect(path)
        self.conn.row_factory = sqlite3.Row
        migrate(self.conn, "notify", MIGRATIONS, where=str(path))
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this outbox's connection."""
        with self._lock, write_tx(self.conn):
            yield self.conn

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Rows of a read query."""
        with self._lock:
            return self.conn.execute(sql, tuple(params)).fetchall()

    # -- requests --------------------------------------------------------------------------------
    def pending_requests(self, limit: int = 200) -> list[dict[str, Any]]:
        """Requests of the alert engine not expanded yet, oldest first (none if the engine's table is absent)."""
        try:
            rows = self.query("SELECT * FROM notification_queue WHERE status = 'pending' ORDER BY id LIMIT ?",
                              (limit,))
        except sqlite3.OperationalError:  # the alert engine has not created its tables yet
            return []
        return [dict(r) for r in rows]

    def expand(self, request: dict[str, Any], deliveries: list[NewDelivery], now_ms: int, status: str) -> int:
        """Create a request's deliveries and mark the request, in one transaction; returns deliveries made.

        A grouped delivery joins the open group of its (channel, recipient, group key) — one queued and never
        tried whose due time is still ahead — and shares its due time; else it opens a group that is due one
        window from now.
        """
        made = 0
        with self.tx() as conn:
            marked = conn.execute("UPDATE notification_queue SET status = ? WHERE id = ? AND status = 'pending'",
                                  (status, request["id"])).rowcount
            if not marked:
                return 0  # another notifier (or an earlier run) took it
            for d in deliveries:
                due = d.due_ms
                if d.group_key is not None:
                    row = conn.execute(
                        "SELECT MIN(due_ms) FROM notify_deliveries WHERE channel = ? AND recipient = ? "
                        "AND group_key = ? "
                        "AND status = 'queued' AND attempts = 0 AND due_ms > ?",
                        (d.channel, d.recipient, d.group_key, now_ms)).fetchone()
                    due = row[0] if row[0] is not None else max(due, now_ms + d.group_window_ms)
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO notify_deliveries (request_id, alert_id, kind, severity, route, level, "
                    "channel, recipient, contact, mentions, language, group_key, payload, due_ms, created_ms) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (request["id"], request["alert_id"], request["transition"], request["severity"], d.route,
                     request["level"], d.channel, d.recipient, d.contact, json.dumps(list(d.mentions)), d.language,
                     d.group_key, request["payload"], due, now_ms))
                made += cursor.rowcount
        return made

    def add_direct(self, *, kind: str, channel: str, recipient: str, contact: str | None, language: str,
                   payload: dict[str, Any], now_ms: int, severity: str = "critical", sending: bool = False) -> int:
        """A delivery that is no alert request (an SMS reply, ``notify test``); returns its id.

        ``sending``: the caller sends it itself now (``notify test``): it is created ``sending`` with its
        attempt, so a running notifier never picks it up too.
        """
        with self.tx() as conn:
            cursor = conn.execute(
                "INSERT INTO notify_deliveries (kind, severity, route, channel, recipient, contact, language, payload, "
                "due_ms, created_ms, status, attempts) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (kind, severity, "-", channel, recipient, contact, language, json.dumps(payload, ensure_ascii=False),
                 now_ms, now_ms, "sending" if sending else "queued", int(sending)))
            delivery_id = int(cursor.lastrowid or 0)
            if sending:
                conn.execute("UPDATE notify_deliveries SET batch = id WHERE id = ?", (delivery_id,))
                conn.execute("INSERT INTO notify_attempts (delivery_id, started_ms, outcome) VALUES (?, ?, 'started')",
                             (delivery_id, now_ms))
            return delivery_id

    def delivery(self, delivery_id: int) -> Delivery | None:
        """One delivery by id."""
        rows = self.query("SELECT * FROM notify_deliveries WHERE id = ?", (delivery_id,))
        return Delivery.from_row(rows[0]) if rows else None

    # -- sending ---------------------------------------------------------------------------------
    def recover(self, now_ms: int) -> int:
        """After a crash: deliveries left ``sending`` are queued again as possible duplicates; returns how many."""
        with self.tx() as conn:
            conn.execute("UPDATE notify_attempts SET outcome = 'interrupted', ended_ms = ?, "
                         "answer = 'archmon stopped during the attempt: the provider may have taken it' "
                         "WHERE outcome = 'started'", (now_ms,))
            return conn.execute("UPDATE notify_deliveries SET status = 'queued', possible_duplicate = 1, due_ms = ? "
                                "WHERE status = 'sending'", (now_ms,)).rowcount

    def due(self, channel: str, now_ms: int, limit: int = 500) -> list[list[Delivery]]:
        """Queued deliveries of a channel due now, as messages: grouped ones with the same recipient and group
        key together, most severe first."""
        rows = self.query(
            f"SELECT * FROM notify_deliveries WHERE channel = ? AND status = 'queued' AND due_ms <= ? "
            f"ORDER BY {_SEVERITY_ORDER}, due_ms, id LIMIT ?", (channel, now_ms, limit))
        batches: dict[tuple[str, str] | int, list[Delivery]] = {}
        for row in rows:
            delivery = Delivery.from_row(row)
            key = (delivery.recipient, delivery.group_key) if delivery.group_key else delivery.id
            batches.setdefault(key, []).append(delivery)  # type: ignore[arg-type]
        return list(batches.values())

    def next_due(self, channel: str) -> int | None:
        """The earliest due time of a queued delivery of a channel."""
        row = self.query("SELECT MIN(due_ms) FROM notify_deliveries WHERE channel = ? AND status = 'queued'",
                         (channel,))
        return row[0][0]

    def start(self, batch: list[Delivery], now_ms: int) -> None:
        """Mark a message's deliveries ``sending`` with an attempt row each, committed before the send."""
        with self.tx() as conn:
            for d in batch:
                conn.execute("UPDATE notify_deliveries SET status = 'sending', attempts = attempts + 1, batch = ? "
                             "WHERE id = ?", (batch[0].id, d.id))
                conn.execute("INSERT INTO notify_attempts (delivery_id, started_ms, outcome) VALUES (?, ?, 'started')",
                             (d.id, now_ms))

    def finish(self, batch: list[Delivery], *, outcome: str, answer: str, now_ms: int, next_ms: int | None) -> None:
        """Record a message's result: ``sent``; queued again at ``next_ms``; or ``failed`` (``next_ms`` None)."""
        status = "sent" if outcome == "accepted" else ("queued" if next_ms is not None else "failed")
        counts = outcome in ("failed", "rejected")
        with self.tx() as conn:
            for d in batch:
                conn.execute(
                    "UPDATE notify_attempts SET outcome = ?, answer = ?, ended_ms = ?, next_ms = ? "
                    "WHERE delivery_id = ? AND outcome = 'started'", (outcome, answer, now_ms, next_ms, d.id))
                conn.execute(
                    "UPDATE notify_deliveries SET status = ?, answer = ?, due_ms = COALESCE(?, due_ms), "
                    "sent_ms = CASE WHEN ? = 'sent' THEN ? ELSE sent_ms END, failures = failures + ? WHERE id = ?",
                    (status, answer, next_ms, status, now_ms, int(counts), d.id))
            self._settle(conn, {d.request_id for d in batch if d.request_id is not None})

    def cancel(self, deliveries: list[Delivery], reason: str) -> None:
        """Cancel queued deliveries (their alert was acknowledged before they went out)."""
        with self.tx() as conn:
            for d in deliveries:
                conn.execute("UPDATE notify_deliveries SET status = 'cancelled', answer = ? WHERE id = ? "
                             "AND status = 'queued'", (reason, d.id))
            self._settle(conn, {d.request_id for d in deliveries if d.request_id is not None})

    @staticmethod
    def _settle(conn: sqlite3.Connection, requests: set[int]) -> None:
        for request_id in requests:
            row = conn.execute(
                "SELECT SUM(status NOT IN ('sent', 'failed', 'cancelled')), SUM(status = 'sent') "
                "FROM notify_deliveries WHERE request_id = ?", (request_id,)).fetchone()
            if row[0] == 0:
                conn.execute("UPDATE notification_queue SET status = ? WHERE id = ?",
                             ("sent" if row[1] else "failed", request_id))

    # -- reading ---------------------------------------------------------------------------------
    def recipients_of(self, alert_id: int) -> list[sqlite3.Row]:
        """(channel, recipient, contact, mentions, language, route) of every delivery sent about an alert."""
        return self.query(
            "SELECT channel, recipient, contact, mentions, language, route FROM notify_deliveries "
            "WHERE alert_id = ? AND status = 'sent' GROUP BY channel, recipient", (alert_id,))

    def last_alerts_sent_to(self, channel: str, recipients: list[str]) -> list[int]:
        """The alerts of the newest message a channel sent to one of ``recipients`` (forms of one number)."""
        marks = ",".join("?" * len(recipients))
        row = self.query(
            f"SELECT batch FROM notify_deliveries WHERE channel = ? AND recipient IN ({marks}) AND status = 'sent' "
            f"AND alert_id IS NOT NULL AND kind != 'recovered' ORDER BY sent_ms DESC, id DESC LIMIT 1",
            (channel, *recipients))
        if not row:
            return []
        rows = self.query("SELECT DISTINCT alert_id FROM notify_deliveries WHERE batch = ? AND alert_id IS NOT NULL",
                          (row[0][0],))
        return [r[0] for r in rows]

    def alert_row(self, alert_id: int) -> dict[str, Any] | None:
        """The alert engine's row of an alert (None if unknown or the table is absent)."""
        try:
            rows = self.query("SELECT * FROM alert_alerts WHERE id = ?", (alert_id,))
        except sqlite3.OperationalError:
            return None
        return dict(rows[0]) if rows else None

    def log(self, alert_id: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Deliveries (newest first) with their attempts, for ``archmon notify log``."""
        where, params = ("WHERE alert_id = ?", [alert_id]) if alert_id is not None else ("", [])
        rows = self.query(f"SELECT * FROM notify_deliveries {where} ORDER BY id DESC LIMIT ?", (*params, limit))
        out = []
        for row in rows:
            item = dict(row)
            del item["payload"], item["mentions"]
            item["attempts_list"] = [dict(a) for a in self.query(
                "SELECT started_ms, ended_ms, outcome, answer, next_ms FROM notify_attempts WHERE delivery_id = ? "
                "ORDER BY id", (row["id"],))]
            out.append(item)
        return out

    # -- channel state and inbox -----------------------------------------------------------------
    def save_channel_state(self, channel: str, kind: str, state: str, failures: int, last_success_ms: int | None,
                           last_failure_ms: int | None, last_error: str | None, details: dict[str, Any],
                           now_ms: int) -> None:
        """Persist one channel's health."""
        with self.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO notify_channel_state (channel, type, state, failures, last_success_ms, "
                "last_failure_ms, last_error, details, updated_ms) VALUES (?,?,?,?,?,?,?,?,?)",
                (channel, kind, state, failures, last_success_ms, last_failure_ms, last_error,
                 json.dumps(details, ensure_ascii=False, default=str), now_ms))

    def channel_states(self) -> dict[str, dict[str, Any]]:
        """Every channel's persisted health."""
        return {r["channel"]: {**dict(r), "details": json.loads(r["details"])}
                for r in self.query("SELECT * FROM notify_channel_state")}

    def record_inbox(self, channel: str, number: str, contact: str | None, text: str, received: str, now_ms: int,
                     action: str, result: str) -> None:
        """Keep one received SMS and what was done with it."""
        with self.tx() as conn:
            conn.execute("INSERT INTO notify_inbox (channel, number, contact, text, received, ts_ms, action, result) "
                         "VALUES (?,?,?,?,?,?,?,?)", (channel, number, contact, text, received, now_ms, action, result))

    def last_help_reply_ms(self, number: str) -> int | None:
        """When a help text was last sent to a number."""
        row = self.query("SELECT MAX(ts_ms) FROM notify_inbox WHERE number = ? AND action = 'help'", (number,))
        return row[0][0]
