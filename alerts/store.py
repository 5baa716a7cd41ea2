"""Persistence of alerts, transitions, comments, maintenance windows, notification requests and the
audit log, in the shared SQLite file (tables prefixed ``alert_``, ``audit_``, ``maintenance_``,
``notification_``). Plain ``sqlite3``, WAL, ``synchronous=FULL``; every state change and its audit entry
are written in one transaction. Inside :meth:`AlertStore.batch` (the live engine judging one committed batch
of readings) those units share one transaction, each in its own savepoint, so a batch costs one commit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alerts.audit import SCHEMA as AUDIT_SCHEMA
from alerts.audit import AuditVerdict, append_audit, verify_audit
from alerts.model import OPEN_STATES, Condition, Transition
from archmon.timeutil import to_iso

__all__ = ["AlertStore"]

log = logging.getLogger(__name__)

_OPEN = "('" + "','".join(OPEN_STATES) + "')"
_END = "COALESCE(MIN(ended_ms, until_ms), until_ms)"  # a maintenance window's effective end

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS alert_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ident TEXT NOT NULL,
    rule TEXT NOT NULL,
    room TEXT NOT NULL,
    sensor TEXT,
    quantity TEXT,
    severity TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    value REAL,
    limit_value REAL,
    title_zh TEXT NOT NULL DEFAULT '',
    title_en TEXT NOT NULL DEFAULT '',
    opened_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    active_ms INTEGER,
    acked_by TEXT,
    acked_ms INTEGER,
    cleared_ms INTEGER,
    cleared_by TEXT,
    closed_ms INTEGER,
    fire_count INTEGER NOT NULL DEFAULT 0,
    notified_ms INTEGER,
    escalation_level INTEGER NOT NULL DEFAULT 0,
    manual_clear INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS alert_alerts_one_open ON alert_alerts(ident) WHERE state IN {_OPEN};
CREATE INDEX IF NOT EXISTS alert_alerts_state ON alert_alerts(state);
CREATE INDEX IF NOT EXISTS alert_alerts_manual_clear ON alert_alerts(id) WHERE manual_clear = 1;
CREATE TABLE IF NOT EXISTS alert_transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL REFERENCES alert_alerts(id),
    ts_ms INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    value REAL,
    limit_value REAL,
    by TEXT,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_transitions_alert ON alert_transitions(alert_id);
CREATE TRIGGER IF NOT EXISTS alert_transitions_no_update BEFORE UPDATE ON alert_transitions
BEGIN SELECT RAISE(ABORT, 'alert_transitions is append-only'); END;
CREATE TRIGGER IF NOT EXISTS alert_transitions_no_delete BEFORE DELETE ON alert_transitions
BEGIN SELECT RAISE(ABORT, 'alert_transitions is append-only'); END;
CREATE TABLE IF NOT EXISTS alert_comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL REFERENCES alert_alerts(id),
    ts_ms INTEGER NOT NULL,
    by TEXT NOT NULL,
    comment TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS alert_comments_no_update BEFORE UPDATE ON alert_comments
BEGIN SELECT RAISE(ABORT, 'comments are append-only'); END;
CREATE TRIGGER IF NOT EXISTS alert_comments_no_delete BEFORE DELETE ON alert_comments
BEGIN SELECT RAISE(ABORT, 'comments are append-only'); END;
CREATE TABLE IF NOT EXISTS alert_conditions (
    ident TEXT PRIMARY KEY,
    phase TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    wait_ms INTEGER NOT NULL DEFAULT 0,
    alert_id INTEGER,
    held_until INTEGER,
    last TEXT
);
CREATE TABLE IF NOT EXISTS alert_rule_state (
    rule TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    saved_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS maintenance_windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    until_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    by TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    ended_by TEXT,
    end_comment TEXT,
    end_unseen INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS notification_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL,
    transition TEXT NOT NULL,
    severity TEXT NOT NULL,
    route TEXT NOT NULL,
    level INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX IF NOT EXISTS notification_queue_status ON notification_queue(status);
"""


class AlertStore:
    """The alert tables in one SQLite file.

    Thread-safe: one connection guarded by a lock. Several processes (the service and the CLI) may use
    the same file; writes take ``BEGIN IMMEDIATE`` so the audit chain stays linear.

    Args:
        path: database file, or ``":memory:"`` (replay).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA busy_timeout=10000")
        self.conn.executescript(SCHEMA + AUDIT_SCHEMA)
        self._migrate()
        self._depth = 0
        self._batching = False
        self._units = 0  # units written in the batch's open transaction
        self._requests = False  # a notification request is in the batch's open transaction

    def _migrate(self) -> None:
        """Bring a file made by an older version up to this schema (columns added since)."""
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(maintenance_windows)")}
        added = {"ended_ms": "INTEGER", "ended_by": "TEXT", "end_comment": "TEXT",
                 "end_unseen": "INTEGER NOT NULL DEFAULT 0"}
        for name, kind in added.items():
            if name not in columns:
                self.conn.execute(f"ALTER TABLE maintenance_windows ADD COLUMN {name} {kind}")
        self.conn.execute("CREATE INDEX IF NOT EXISTS maintenance_windows_end_unseen ON maintenance_windows(id) "
                          "WHERE end_unseen = 1")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.conn.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (re-entrant: nested uses join the outer one).

        Inside :meth:`batch` it is a savepoint of the batch's transaction (begun at the first write): it
        is undone alone if it fails, and committed with the batch.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            if self._batching:
                with self._unit():
                    yield self.conn
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")
            finally:
                self._depth = 0

    @contextlib.contextmanager
    def _unit(self) -> Iterator[None]:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
            self._units = 0
        self.conn.execute("SAVEPOINT unit")
        self._depth = 1
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK TO unit")
                self.conn.execute("RELEASE unit")
            elif self._units:
                log.error("SQLite rolled back the alert batch's transaction: %d earlier write(s) of this "
                          "batch are lost", self._units)
            raise
        else:
            self.conn.execute("RELEASE unit")
            self._units += 1
        finally:
            self._depth = 0

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group every write made inside into one transaction, begun at the first write (none: no SQL).

        Each :meth:`tx` inside is a savepoint, undone alone if it fails, as it would have been alone. The
        transaction commits when the block ends (also when it raises: what was written stays written) or
        earlier through :meth:`flush_requests`. The store is held by this thread for the whole block.
        Nested batches join the outer one.
        """
        with self._lock:
            if self._batching or self._depth:
                yield
                return
            self._batching = True
            try:
                yield
            finally:
                self._batching = False
                self._commit_batch()

    def flush_requests(self) -> None:
        """Inside :meth:`batch`: commit now if a notification request was queued (channels see it at once)."""
        if self._requests and not self._depth:
            with self._lock:
                self._commit_batch()

    def _commit_batch(self) -> None:
        self._requests = False
        if not self.conn.in_transaction:
            return
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            log.error("commit of the alert batch failed: %d write(s) lost", self._units)
            raise
        finally:
            self._units = 0

    # -- audit -----------------------------------------------------------------------------------
    def audit(self, ts_ms: int, kind: str, actor: str, subject: str, payload: dict[str, Any]) -> None:
        """Append one audit entry (in its own transaction unless inside :meth:`tx`)."""
        with self.tx() as conn:
            append_audit(conn, ts_ms, kind, actor, subject, payload)

    def verify_audit(self) -> AuditVerdict:
        """Verify the audit hash chain."""
        with self._lock:
            return verify_audit(self.conn)

    # -- alerts ----------------------------------------------------------------------------------
    def alert(self, alert_id: int) -> dict[str, Any] | None:
        """One alert row as a dict (None if unknown)."""
        with self._lock:
            row = self.conn.execute("SELECT * FROM alert_alerts WHERE id = ?", (alert_id,)).fetchone()
        return dict(row) if row else None

    def open_alert(self, ident: str) -> dict[str, Any] | None:
        """The open alert (pending, active, acknowledged or cleared) of ``rule:key``, if any."""
        with self._lock:
            row = self.conn.execute(
                f"SELECT * FROM alert_alerts WHERE ident = ? AND state IN {_OPEN}", (ident,)
            ).fetchone()
        return dict(row) if row else None

    def alerts(self, *, active_only: bool = False, fired_only: bool = False,
               limit: int = 1000) -> list[dict[str, Any]]:
        """Alerts, newest first; ``active_only`` keeps pending/active/acknowledged; ``fired_only`` keeps
        alerts that were active at some point or are pending now (leaves out cancelled ones)."""
        conditions = []
        if active_only:
            conditions.append("state IN ('pending', 'active', 'acknowledged')")
        if fired_only:
            conditions.append("(fire_count > 0 OR state = 'pending')")
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._lock:
            rows = self.conn.execute(f"SELECT * FROM alert_alerts {where} ORDER BY id DESC LIMIT ?", (limit,))
            return [dict(row) for row in rows]

    def cleared_alerts(self) -> list[dict[str, Any]]:
        """Alerts cleared but not closed (each waits for an acknowledgement or its close time)."""
        with self._lock:
            rows = self.conn.execute("SELECT * FROM alert_alerts WHERE state = 'cleared' ORDER BY id")
            return [dict(row) for row in rows]

    def comments(self, alert_id: int) -> list[dict[str, Any]]:
        """Comments of one alert, oldest first."""
        with self._lock:
            rows = self.conn.execute("SELECT * FROM alert_comments WHERE alert_id = ? ORDER BY id", (alert_id,))
            return [dict(row) for row in rows]

    def create_alert(self, cond: Condition, ts_ms: int, state: str, titles: tuple[str, str]) -> Transition:
        """Open a new alert for a condition, in state ``pending`` or ``active``."""
        with self.tx() as conn:
            cursor = conn.execute(
                "INSERT INTO alert_alerts (ident, rule, room, sensor, quantity, severity, state, detail, value, "
                "limit_value, title_zh, title_en, opened_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (cond.ident, cond.rule, cond.room, cond.sensor, cond.quantity, cond.severity, "pending",
                 cond.detail, cond.value, cond.limit, titles[0], titles[1], ts_ms, ts_ms),
            )
            alert_id = int(cursor.lastrowid or 0)
            self._record(alert_id, None, "pending", ts_ms, cond.value, cond.limit, None, "")
            if state == "pending":
                return self._transition(alert_id, "pending", ts_ms, cond.value, cond.limit, None)
            return self.set_state(alert_id, state, ts_ms, value=cond.value, limit=cond.limit, note="no delay")

    def set_state(
        self, alert_id: int, state: str, ts_ms: int, *, value: float | None = None, limit: float | None = None,
        by: str | None = None, note: str = "", detail: str | None = None,
    ) -> Transition:
        """Move an alert to ``state``, record the transition and its audit entry.

        ``value``/``limit`` and ``detail`` (when given) replace the alert's, so the transition carries the
        judgement that caused it (e.g. the day a stability verdict judged).
        """
        with self.tx() as conn:
            row = conn.execute("SELECT state FROM alert_alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None:
                raise KeyError(alert_id)
            sets = ["state = :state", "updated_ms = :ts"]
            if value is not None:
                sets += ["value = :value", "limit_value = :limit"]
            if detail is not None:
                sets += ["detail = :detail"]
            if state == "active":
                sets += ["active_ms = :ts", "fire_count = fire_count + 1", "escalation_level = 0",
                         "acked_by = NULL", "acked_ms = NULL"]
            elif state == "acknowledged" or (state == "closed" and by is not None and row["state"] == "cleared"):
                sets += ["acked_by = :by", "acked_ms = :ts"]
            if state == "cleared":
                sets += ["cleared_ms = :ts", "cleared_by = :by"]
            if state in ("closed", "cancelled"):
                sets += ["closed_ms = :ts"]
            conn.execute(
                f"UPDATE alert_alerts SET {', '.join(sets)} WHERE id = :id",
                {"state": state, "ts": ts_ms, "value": value, "limit": limit, "by": by, "id": alert_id,
                 "detail": detail},
            )
            self._record(alert_id, row["state"], state, ts_ms, value, limit, by, note)
            return self._transition(alert_id, state, ts_ms, value, limit, by)

    def update_judgement(self, alert_id: int, ts_ms: int, *, value: float | None, limit: float | None,
                         detail: str) -> None:
        """A new judgement of an open alert that changes no state (e.g. another failing day): keep it, and
        audit it (the alert row's value and detail change, so the change is on the hash chain)."""
        with self.tx() as conn:
            row = conn.execute("SELECT value, limit_value, detail FROM alert_alerts WHERE id = ?",
                               (alert_id,)).fetchone()
            conn.execute(
                "UPDATE alert_alerts SET value = ?, limit_value = ?, detail = ?, updated_ms = ? WHERE id = ?",
                (value, limit, detail, ts_ms, alert_id),
            )
            before = dict(row) if row is not None else {}
            append_audit(conn, ts_ms, "judgement", "system", f"alert:{alert_id}",
                         {"value": value, "limit": limit, "detail": detail, "before": before})

    def _record(
        self, alert_id: int, old: str | None, new: str, ts_ms: int, value: float | None, limit: float | None,
        by: str | None, note: str,
    ) -> None:
        self.conn.execute(
            "INSERT INTO alert_transitions (alert_id, ts_ms, from_state, to_state, value, limit_value, by, note) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (alert_id, ts_ms, old, new, value, limit, by, note),
        )
        append_audit(self.conn, ts_ms, "transition", by or "system", f"alert:{alert_id}",
                     {"from": old, "to": new, "value": value, "limit": limit, "note": note})

    def _transition(
        self, alert_id: int, state: str, ts_ms: int, value: float | None, limit: float | None, by: str | None
    ) -> Transition:
        row = self.conn.execute("SELECT * FROM alert_alerts WHERE id = ?", (alert_id,)).fetchone()
        return Transition(
            ts_ms=ts_ms, alert=alert_id, rule=row["rule"], severity=row["severity"], room=row["room"],
            sensor=row["sensor"], quantity=row["quantity"], state=state,
            value=row["value"] if value is None else value,
            limit=row["limit_value"] if limit is None else limit, detail=row["detail"], by=by,
            title=row["title_zh"],
        )

    def add_comment(self, alert_id: int, ts_ms: int, by: str, comment: str) -> None:
        """Append a comment (comments are append-only) and audit it."""
        with self.tx() as conn:
            conn.execute("INSERT INTO alert_comments (alert_id, ts_ms, by, comment) VALUES (?,?,?,?)",
                         (alert_id, ts_ms, by, comment))
            append_audit(conn, ts_ms, "comment", by, f"alert:{alert_id}", {"comment": comment})

    def mark_notified(self, alert_id: int, ts_ms: int, *, level: int | None = None) -> None:
        """Remember when the alert was last notified (and its escalation level)."""
        with self.tx() as conn:
            conn.execute("UPDATE alert_alerts SET notified_ms = ? WHERE id = ?", (ts_ms, alert_id))
            if level is not None:
                conn.execute("UPDATE alert_alerts SET escalation_level = ? WHERE id = ?", (level, alert_id))

    def set_manual_clear(self, alert_id: int, flag: bool) -> None:
        """Flag an alert cleared by hand, for the engine to re-check its condition."""
        with self.tx() as conn:
            conn.execute("UPDATE alert_alerts SET manual_clear = ? WHERE id = ?", (int(flag), alert_id))

    def manual_clears(self) -> list[dict[str, Any]]:
        """Alerts cleared by hand whose condition the engine has not re-checked yet."""
        with self._lock:
            return [dict(r) for r in self.conn.execute("SELECT * FROM alert_alerts WHERE manual_clear = 1")]

    def pending_changes(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """What other processes changed for the engine to take, in one query: alerts cleared by hand whose
        condition it has not re-checked yet, and maintenance windows ended early that it has not seen."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT 'alert' AS kind, id FROM alert_alerts WHERE manual_clear = 1 "
                "UNION ALL SELECT 'window', id FROM maintenance_windows WHERE end_unseen = 1"
            ).fetchall()
            if not rows:
                return [], []
            alerts = [a for a in (self.alert(r["id"]) for r in rows if r["kind"] == "alert") if a is not None]
            windows = [w for w in (self.maintenance_window(r["id"]) for r in rows if r["kind"] == "window")
                       if w is not None]
        return alerts, windows

    # -- engine state ----------------------------------------------------------------------------
    def save_condition(self, ident: str, phase: str, since_ms: int, wait_ms: int, alert_id: int | None,
                       held_until: int | None, last: Condition | None) -> None:
        """Persist the lifecycle state of one ``rule:key`` (pending delays survive a restart)."""
        text = json.dumps(last.to_dict()) if last is not None else None
        with self.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO alert_conditions (ident, phase, since_ms, wait_ms, alert_id, held_until, "
                "last) VALUES (?,?,?,?,?,?,?)",
                (ident, phase, since_ms, wait_ms, alert_id, held_until, text),
            )

    def conditions(self) -> list[dict[str, Any]]:
        """Every persisted lifecycle state."""
        with self._lock:
            return [dict(r) for r in self.conn.execute("SELECT * FROM alert_conditions")]

    def save_rule_states(self, states: dict[str, dict[str, Any]], ts_ms: int) -> None:
        """Persist the rules' memory snapshots."""
        with self.tx() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO alert_rule_state (rule, data, saved_ms) VALUES (?,?,?)",
                [(rule, json.dumps(data), ts_ms) for rule, data in states.items()],
            )

    def rule_states(self) -> dict[str, dict[str, Any]]:
        """The rules' memory snapshots."""
        with self._lock:
            return {r["rule"]: json.loads(r["data"]) for r in self.conn.execute("SELECT * FROM alert_rule_state")}

    # -- maintenance -----------------------------------------------------------------------------
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

    # -- notifications ---------------------------------------------------------------------------
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
