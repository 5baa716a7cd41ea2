"""Every SQL the dashboard runs on the alert engine's tables (``alert_*``, ``notification_queue``,
``audit_log``), in one module so it can move to the alert store's read API in one place.

Reads only, on read-only WAL connections (:class:`archmon.sqlite.ReaderPool`): never waits on the engine.
A file on which the alert engine never ran has no alert tables: the functions then return nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ACTIVE_STATES",
    "AlertFilter",
    "alert",
    "alert_markers",
    "alert_room",
    "alerts",
    "audit_entries",
    "comments",
    "notifications",
    "open_alerts_by_room",
    "ranges_24h",
    "transitions",
]

ACTIVE_STATES = ("active", "acknowledged")
StateFilter = Literal["active", "open", "history", "all"]
_STATES: dict[str, tuple[str, ...]] = {
    "active": ACTIVE_STATES,
    "open": ("pending", "active", "acknowledged", "cleared"),
    "history": ("cleared", "closed"),
    "all": ("pending", "active", "acknowledged", "cleared", "closed"),
}
SEVERITY_ORDER = "CASE severity WHEN 'critical' THEN 0 WHEN 'major' THEN 1 WHEN 'minor' THEN 2 ELSE 3 END"


def _has(conn: sqlite3.Connection, table: str) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    return found is not None


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" for _ in values)


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """What the alerts page and API list: by room, severity and state, newest first."""

    room: str | None = None
    severity: str | None = None
    state: StateFilter = "active"
    limit: int = 200
    offset: int = 0


def open_alerts_by_room(conn: sqlite3.Connection) -> dict[str, list[dict[str, Any]]]:
    """Active and acknowledged alerts per room, most severe first (the overview's cards)."""
    if not _has(conn, "alert_alerts"):
        return {}
    cursor = conn.execute(
        "SELECT id, rule, room, sensor, quantity, severity, state, title_zh, title_en, active_ms, value,"
        f" limit_value FROM alert_alerts WHERE state IN ({_marks(ACTIVE_STATES)})"
        f" ORDER BY {SEVERITY_ORDER}, id DESC", ACTIVE_STATES)
    out: dict[str, list[dict[str, Any]]] = {}
    for row in _rows(cursor):
        out.setdefault(row["room"], []).append(row)
    return out


def alerts(conn: sqlite3.Connection, flt: AlertFilter) -> tuple[list[dict[str, Any]], int]:
    """Alerts matching the filter (alerts cancelled before they fired are left out) and their total count."""
    if not _has(conn, "alert_alerts"):
        return [], 0
    states = _STATES[flt.state]
    where = [f"state IN ({_marks(states)})", "(fire_count > 0 OR state = 'pending')"]
    params: list[Any] = list(states)
    if flt.room:
        where.append("room = ?")
        params.append(flt.room)
    if flt.severity:
        where.append("severity = ?")
        params.append(flt.severity)
    clause = " AND ".join(where)
    total = int(conn.execute(f"SELECT count(*) FROM alert_alerts WHERE {clause}", params).fetchone()[0])
    order = f"{SEVERITY_ORDER}, id DESC" if flt.state == "active" else "id DESC"
    cursor = conn.execute(f"SELECT * FROM alert_alerts WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?",
                          (*params, flt.limit, flt.offset))
    return _rows(cursor), total


def alert(conn: sqlite3.Connection, alert_id: int) -> dict[str, Any] | None:
    """One alert row, or None."""
    if not _has(conn, "alert_alerts"):
        return None
    rows = _rows(conn.execute("SELECT * FROM alert_alerts WHERE id = ?", (alert_id,)))
    return rows[0] if rows else None


def alert_room(conn: sqlite3.Connection, alert_id: int) -> str | None:
    """The room of an alert (live updates of an acknowledgement event that names only the alert)."""
    row = alert(conn, alert_id)
    return None if row is None else str(row["room"])


def transitions(conn: sqlite3.Connection, alert_id: int) -> list[dict[str, Any]]:
    """An alert's transitions, oldest first."""
    if not _has(conn, "alert_transitions"):
        return []
    return _rows(conn.execute("SELECT * FROM alert_transitions WHERE alert_id = ? ORDER BY id", (alert_id,)))


def comments(conn: sqlite3.Connection, alert_id: int) -> list[dict[str, Any]]:
    """An alert's comments, oldest first."""
    if not _has(conn, "alert_comments"):
        return []
    return _rows(conn.execute("SELECT * FROM alert_comments WHERE alert_id = ? ORDER BY id", (alert_id,)))


def notifications(conn: sqlite3.Connection, alert_id: int) -> list[dict[str, Any]]:
    """The notification requests queued for an alert and their status, oldest first."""
    if not _has(conn, "notification_queue"):
        return []
    return _rows(conn.execute(
        "SELECT id, transition, severity, route, level, created_ms, status FROM notification_queue"
        " WHERE alert_id = ? ORDER BY id", (alert_id,)))


def alert_markers(conn: sqlite3.Connection, room: str, start_ms: int, end_ms: int,
                  limit: int = 500) -> list[dict[str, Any]]:
    """The newest ``limit`` alerts of a room that fired within ``[start_ms, end_ms)`` (chart markers), oldest
    first."""
    if not _has(conn, "alert_alerts"):
        return []
    newest = _rows(conn.execute(
        "SELECT id, rule, severity, state, title_zh, title_en, coalesce(active_ms, opened_ms) AS ts_ms"
        " FROM alert_alerts WHERE room = ? AND fire_count > 0 AND coalesce(active_ms, opened_ms) >= ?"
        " AND coalesce(active_ms, opened_ms) < ? ORDER BY ts_ms DESC, id DESC LIMIT ?",
        (room, start_ms, end_ms, limit)))
    return newest[::-1]


def audit_entries(conn: sqlite3.Connection, *, kinds: Sequence[str] | None = None, subject: str | None = None,
                  limit: int = 100) -> list[dict[str, Any]]:
    """The newest audit entries (of some kinds, about one subject), newest first."""
    if not _has(conn, "audit_log"):
        return []
    where, params = ["1 = 1"], []
    if kinds:
        where.append(f"kind IN ({_marks(kinds)})")
        params.extend(kinds)
    if subject:
        where.append("subject = ?")
        params.append(subject)
    return _rows(conn.execute(
        f"SELECT seq, ts_ms, kind, actor, subject, payload FROM audit_log WHERE {' AND '.join(where)}"
        " ORDER BY seq DESC LIMIT ?", (*params, limit)))


def ranges_24h(conn: sqlite3.Connection, since_ms: int) -> dict[tuple[str, str], tuple[float, float]]:
    """Per (sensor, quantity) of temperature and humidity, the min and max of the hour rollups starting at or
    after ``since_ms`` (the store's read API has no bulk rollup read; this one query serves 200 rooms)."""
    if not _has(conn, "rollup_hour"):
        return {}
    rows = conn.execute(
        "SELECT s.sensor, s.quantity, min(b.min), max(b.max) FROM series s JOIN rollup_hour b ON b.series_id = s.id"
        " WHERE s.quantity IN ('temperature', 'humidity') AND b.start_ms >= ? GROUP BY s.id", (since_ms,)).fetchall()
    return {(str(a), str(b)): (float(c), float(d)) for a, b, c, d in rows}
