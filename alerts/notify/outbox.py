"""The durable outbox: requests expanded into deliveries (channel × recipient), each with its attempts.

Tables (component ``notify``, own migrations in :mod:`alerts.notify.outbox_schema`) in the shared SQLite file:

- ``notify_deliveries``: one row per (request, channel, recipient): status ``queued`` → ``sending`` →
  ``sent`` | ``queued`` again (retry at ``due_ms``) | ``failed`` (rejected, out of attempts, or its channel
  was removed from the configuration) | ``cancelled`` (it would no longer be true or useful: its alert was
  acknowledged, recovered or closed before it went out, a newer reminder of the same alert to the same
  recipient took its place, or its contact was removed). ``batch`` is the first delivery of the message
  that carried it (grouped deliveries share one message); ``resume`` what the channel needs to continue a
  message that failed part-way (the modem's parts already sent).
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

Reminders do not pile up: a ``repeat`` or ``escalate`` delivery cancels the queued, not yet sent
reminders (and the first alarm) of the same alert to the same recipient on the same channel, so a recipient
held by quiet hours or an outage gets one message per alert, the newest; a ``recovered`` request cancels
every queued alarm and reminder of its alert, so nothing says "alarm" after "recovered".
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from alerts.notify.outbox_schema import MIGRATIONS, Delivery, NewDelivery
from archmon.sqlite import connect, migrate, write_tx

__all__ = ["PROBLEM_KINDS", "Delivery", "Expanded", "NewDelivery", "Outbox"]

TERMINAL = ("sent", "failed", "cancelled")
PROBLEM_KINDS = ("fired", "repeat", "escalate")
"""Deliveries that say "there is a problem" (a ``recovered`` one says it is over)."""
_SEVERITY_ORDER = "CASE severity WHEN 'critical' THEN 0 WHEN 'major' THEN 1 WHEN 'minor' THEN 2 ELSE 3 END"
REPEATED_ANSWER_CHARS = 160  # an answer the channel gave just before is kept this short


class Expanded(NamedTuple):
    """What expanding one request did: deliveries made, older queued ones cancelled in their favour."""

    made: int
    cancelled: int


class Outbox:
    """The notify tables on their own connection (thread-safe: one lock).

    Args:
        path: the shared database file.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self.conn = connect(path)
        self.conn.row_factory = sqlite3.Row
        migrate(self.conn, "notify", MIGRATIONS, where=str(path))
        self._lock = threading.RLock()
        self._last_answer: dict[str, str] = {}

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

    def expand(self, request: dict[str, Any], deliveries: list[NewDelivery], now_ms: int, status: str) -> Expanded:
        """Create a request's deliveries and mark the request, in one transaction.

        A grouped delivery joins the open group of its (channel, recipient, group key) — one queued and never
        tried whose due time is still ahead — and shares its due time; else it opens a group that is due one
        window from now. A reminder cancels the older queued problem deliveries of its alert to its recipient;
        a recovery every queued problem delivery of its alert (see the module docstring).
        """
        made = cancelled = 0
        kind, alert = request["transition"], request["alert_id"]
        with self.tx() as conn:
            marked = conn.execute("UPDATE notification_queue SET status = ? WHERE id = ? AND status = 'pending'",
                                  (status, request["id"])).rowcount
            if not marked:
                return Expanded(0, 0)  # another notifier (or an earlier run) took it
            touched: set[int] = set()
            if kind == "recovered" and alert is not None:
                cancelled += self._cancel_where(conn, touched, "the alert recovered before this went out",
                                                "alert_id = ?", (alert,))
            for d in deliveries:
                if kind in ("repeat", "escalate") and alert is not None:
                    cancelled += self._cancel_where(
                        conn, touched, f"a newer {kind} of the alert (request {request['id']}) took its place",
                        "alert_id = ? AND channel = ? AND recipient = ?", (alert, d.channel, d.recipient))
                due = d.due_ms
                if d.group_key is not None:
                    row = conn.execute(
                        "SELECT MIN(due_ms) FROM notify_deliveries WHERE channel = ? AND recipient = ? "
                        "AND group_key = ? AND status = 'queued' AND attempts = 0 AND due_ms > ?",
                        (d.channel, d.recipient, d.group_key, now_ms)).fetchone()
                    due = row[0] if row[0] is not None else max(due, now_ms + d.group_window_ms)
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO notify_deliveries (request_id, alert_id, kind, severity, route, level, "
                    "channel, recipient, contact, mentions, language, group_key, payload, due_ms, created_ms) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (request["id"], alert, kind, request["severity"], d.route, request["level"], d.channel,
                     d.recipient, d.contact, json.dumps(list(d.mentions)), d.language, d.group_key,
                     request["payload"], due, now_ms))
                made += cursor.rowcount
            self.settle(conn, touched)
        return Expanded(made, cancelled)

    def _cancel_where(self, conn: sqlite3.Connection, touched: set[int], reason: str, where: str,
                      params: tuple[Any, ...]) -> int:
        kinds = ",".join(f"'{k}'" for k in PROBLEM_KINDS)
        rows = conn.execute(f"SELECT id, request_id FROM notify_deliveries WHERE {where} AND status = 'queued' "
                            f"AND kind IN ({kinds})", params).fetchall()
        for row in rows:
            conn.execute("UPDATE notify_deliveries SET status = 'cancelled', answer = ? WHERE id = ?",
                         (reason, row["id"]))
            if row["request_id"] is not None:
                touched.add(row["request_id"])
        return len(rows)

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

    def next_batch(self, channel: str, now_ms: int) -> list[Delivery]:
        """The message a channel should send now: the most severe due delivery (then the oldest due), with the
        deliveries of its group (same recipient and group key, due too). Empty when nothing is due."""
        rows = self.query(
            f"SELECT * FROM notify_deliveries WHERE channel = ? AND status = 'queued' AND due_ms <= ? "
            f"ORDER BY {_SEVERITY_ORDER}, due_ms, id LIMIT 1", (channel, now_ms))
        if not rows:
            return []
        first = Delivery.from_row(rows[0])
        if first.group_key is None:
            return [first]
        rows = self.query("SELECT * FROM notify_deliveries WHERE channel = ? AND status = 'queued' AND due_ms <= ? "
                          "AND recipient = ? AND group_key = ? ORDER BY id",
                          (channel, now_ms, first.recipient, first.group_key))
        return [Delivery.from_row(r) for r in rows]

    def due(self, channel: str, now_ms: int, limit: int = 500) -> list[list[Delivery]]:
        """Queued deliveries of a channel due now, as messages: grouped ones with the same recipient and group
        key together, most severe first (a snapshot; the notifier sends from :meth:`next_batch`)."""
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

    def finish(self, batch: list[Delivery], *, outcome: str, answer: str, now_ms: int, next_ms: int | None,
               possible_duplicate: bool = False, resume: dict[str, Any] | None = None) -> None:
        """Record a message's result: ``sent``; queued again at ``next_ms``; or ``failed`` (``next_ms`` None).

        ``possible_duplicate``: the provider may have taken it (the retry says so); ``resume``: where the
        retry continues. An answer the channel gave just before (a provider's error page, again) is kept short.
        """
        status = "sent" if outcome == "accepted" else ("queued" if next_ms is not None else "failed")
        counts = outcome in ("failed", "rejected")
        answer = self._bounded(batch[0].channel if batch else "", answer)
        with self.tx() as conn:
            for d in batch:
                conn.execute(
                    "UPDATE notify_attempts SET outcome = ?, answer = ?, ended_ms = ?, next_ms = ? "
                    "WHERE delivery_id = ? AND outcome = 'started'", (outcome, answer, now_ms, next_ms, d.id))
                conn.execute(
                    "UPDATE notify_deliveries SET status = ?, answer = ?, due_ms = COALESCE(?, due_ms), "
                    "sent_ms = CASE WHEN ? = 'sent' THEN ? ELSE sent_ms END, failures = failures + ?, "
                    "possible_duplicate = MAX(possible_duplicate, ?), resume = ? WHERE id = ?",
                    (status, answer, next_ms, status, now_ms, int(counts), int(possible_duplicate),
                     json.dumps(resume) if resume and status == "queued" else None, d.id))
            self.settle(conn, {d.request_id for d in batch if d.request_id is not None})

    def _bounded(self, channel: str, answer: str) -> str:
        with self._lock:
            if self._last_answer.get(channel) == answer and len(answer) > REPEATED_ANSWER_CHARS:
                return answer[:REPEATED_ANSWER_CHARS] + "… (the same answer as the attempt before)"
            self._last_answer[channel] = answer
            return answer

    def cancel(self, deliveries: list[Delivery], reason: str, *, status: str = "cancelled") -> None:
        """Settle queued deliveries without sending them (``status`` ``cancelled`` or ``failed``)."""
        with self.tx() as conn:
            for d in deliveries:
                conn.execute("UPDATE notify_deliveries SET status = ?, answer = ? WHERE id = ? AND status = 'queued'",
                             (status, reason, d.id))
            self.settle(conn, {d.request_id for d in deliveries if d.request_id is not None})

    @staticmethod
    def settle(conn: sqlite3.Connection, requests: set[int]) -> None:
        """Inside a transaction: mark each request whose deliveries are all settled ``sent`` or ``failed``."""
        for request_id in requests:
            row = conn.execute(
                "SELECT SUM(status NOT IN ('sent', 'failed', 'cancelled')), SUM(status = 'sent') "
                "FROM notify_deliveries WHERE request_id = ?", (request_id,)).fetchone()
            if row[0] == 0:
                conn.execute("UPDATE notification_queue SET status = ? WHERE id = ?",
                             ("sent" if row[1] else "failed", request_id))

    # -- reading ---------------------------------------------------------------------------------
    def recipients_of(self, alert_id: int) -> list[sqlite3.Row]:
        """(channel, recipient, contact, mentions, language, route) of every delivery about an alert that went
        out or is going out now (a recovery goes to them)."""
        return self.query(
            "SELECT channel, recipient, contact, mentions, language, route FROM notify_deliveries "
            "WHERE alert_id = ? AND status IN ('sent', 'sending') AND kind != 'recovered' "
            "GROUP BY channel, recipient", (alert_id,))

    def told(self, alert_id: int, channel: str, recipient: str) -> bool:
        """Whether an alarm or reminder of an alert went out to a recipient on a channel."""
        kinds = ",".join(f"'{k}'" for k in PROBLEM_KINDS)
        return bool(self.query(
            f"SELECT 1 FROM notify_deliveries WHERE alert_id = ? AND channel = ? AND recipient = ? "
            f"AND status = 'sent' AND kind IN ({kinds}) LIMIT 1", (alert_id, channel, recipient)))

    def alerts_sent_to(self, contact: str, mentioned_as: Iterable[str], alert_ids: Iterable[int]) -> set[int]:
        """Which of ``alert_ids`` a contact was sent an alarm or reminder about: to them on any channel, or to
        a group robot's chat that @-mentioned one of ``mentioned_as`` (their phone, their chat ids)."""
        ids, names = list(alert_ids), [m for m in mentioned_as if m]
        if not ids:
            return set()
        kinds = ",".join(f"'{k}'" for k in PROBLEM_KINDS)
        marks = ",".join("?" * len(ids))
        mentioned = (f" OR (contact IS NULL AND EXISTS (SELECT 1 FROM json_each(mentions) WHERE value IN "
                     f"({','.join('?' * len(names))})))") if names else ""
        rows = self.query(f"SELECT DISTINCT alert_id FROM notify_deliveries WHERE (contact = ?{mentioned}) "
                          f"AND status = 'sent' AND kind IN ({kinds}) AND alert_id IN ({marks})",
                          (contact, *names, *ids))
        return {r[0] for r in rows}

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
            del item["payload"], item["mentions"], item["resume"]
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

    def help_replies_since(self, since_ms: int) -> int:
        """How many help texts were sent (to any number) since ``since_ms``."""
        return int(self.query("SELECT COUNT(*) FROM notify_inbox WHERE action = 'help' AND ts_ms >= ?",
                              (since_ms,))[0][0])
