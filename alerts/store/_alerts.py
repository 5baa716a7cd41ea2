"""Alert rows, their append-only transitions and comments, and what people changed for the engine to take.

Mixin of :class:`~alerts.store.AlertStore`; every change is audited in the same transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, NamedTuple

from alerts.audit import append_audit
from alerts.model import Condition, Transition
from alerts.store._schema import OPEN as _OPEN

__all__ = ["AlertRows", "PendingChanges"]


class PendingChanges(NamedTuple):
    """What other processes (or people through the store) changed for the engine to take.

    Attributes:
        alerts: alerts cleared by hand whose condition the engine has not re-checked yet.
        windows: maintenance windows ended early that it has not seen.
        calibrations: ids of calibration records it has not taken (``calibration_records.unseen``).
    """

    alerts: list[dict[str, Any]]
    windows: list[dict[str, Any]]
    calibrations: list[int]


class AlertRows:
    """Mixin: ``alert_alerts``, ``alert_transitions`` and ``alert_comments``."""

    conn: sqlite3.Connection
    _lock: threading.RLock
    tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    maintenance_window: Callable[[int], dict[str, Any] | None]

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

    def pending_changes(self) -> PendingChanges:
        """What other processes changed for the engine to take, in one query (see :class:`PendingChanges`)."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT 'alert' AS kind, id FROM alert_alerts WHERE manual_clear = 1 "
                "UNION ALL SELECT 'window', id FROM maintenance_windows WHERE end_unseen = 1 "
                "UNION ALL SELECT 'calibration', id FROM calibration_records WHERE unseen = 1"
            ).fetchall()
            if not rows:
                return PendingChanges([], [], [])
            alerts = [a for a in (self.alert(r["id"]) for r in rows if r["kind"] == "alert") if a is not None]
            windows = [w for w in (self.maintenance_window(r["id"]) for r in rows if r["kind"] == "window")
                       if w is not None]
        return PendingChanges(alerts, windows, [int(r["id"]) for r in rows if r["kind"] == "calibration"])
