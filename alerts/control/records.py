"""What climate control keeps in the shared SQLite file: manual overrides, the switch log and the audit trail.

- ``control_overrides``: a person's ``on``/``off`` until a time (``archmon control``), ended early by
  ``auto`` or by expiring; at most one is active per device.
- ``control_switches``: every confirmed change of a device's state (by a command, at the device, read back
  at start): the run hours of reports, and the "since" of the minimum on/off times after a restart.
- The audit log (``alerts.audit`` hash chain, kind ``control``): every command, confirmation, retry,
  failure, recovery, state read back or changed at the device, and every override set, ended or expired,
  each with who (a person's name, or ``system`` with the loop's reason) in the same transaction as the row
  it explains.

Several processes write it (the service, the CLI): every write is one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerts.audit import SCHEMA as AUDIT_SCHEMA
from alerts.audit import append_audit
from archmon.sqlite import Migration, connect, migrate, schema_version, write_tx

__all__ = ["AUDIT_KIND", "ControlRecords", "OverrideRow", "SwitchRow"]

AUDIT_KIND = "control"

_MIGRATIONS = [
    Migration(
        1,
        AUDIT_SCHEMA + """
        CREATE TABLE IF NOT EXISTS control_overrides (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            actuator TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('on', 'off')),
            start_ms INTEGER NOT NULL,
            until_ms INTEGER NOT NULL,
            by TEXT NOT NULL,
            reason TEXT NOT NULL,
            ended_ms INTEGER,
            ended_by TEXT,
            end_reason TEXT
        );
        CREATE INDEX IF NOT EXISTS control_overrides_open ON control_overrides (actuator) WHERE ended_ms IS NULL;
        CREATE TABLE IF NOT EXISTS control_switches (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            actuator TEXT NOT NULL,
            ts_ms INTEGER NOT NULL,
            state INTEGER NOT NULL,
            how TEXT NOT NULL,
            by TEXT NOT NULL,
            reason TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS control_switches_time ON control_switches (actuator, ts_ms)
        """,
        "climate control: overrides and switch log",
    ),
]


@dataclass(frozen=True, slots=True)
class OverrideRow:
    """A manual override as stored."""

    id: int
    actuator: str
    on: bool
    start_ms: int
    until_ms: int
    by: str
    reason: str
    ended_ms: int | None = None
    ended_by: str | None = None
    end_reason: str | None = None

    def active(self, now_ms: int) -> bool:
        """Whether it holds at ``now_ms``."""
        return self.ended_ms is None and self.start_ms <= now_ms < self.until_ms


@dataclass(frozen=True, slots=True)
class SwitchRow:
    """One confirmed change of a device's state: ``how`` is ``command``, ``external`` or ``readback``."""

    actuator: str
    ts_ms: int
    on: bool
    how: str
    by: str
    reason: str


def _override(row: sqlite3.Row | tuple[Any, ...]) -> OverrideRow:
    ident, actuator, state, start, until, by, reason, ended, ended_by, end_reason = row
    return OverrideRow(ident, actuator, state == "on", start, until, by, reason, ended, ended_by, end_reason)


_OVERRIDE_COLUMNS = "id, actuator, state, start_ms, until_ms, by, reason, ended_ms, ended_by, end_reason"


class ControlRecords:
    """The control tables of one SQLite file (thread-safe: one connection behind a lock).

    Args:
        path: the database file (``storage.sqlite_path``), or ``":memory:"``.
        readonly: open an existing file read-only, without migrating it (reports); see :meth:`open_readonly`.
        durable: False commits without waiting for the disk (WAL ``synchronous=NORMAL``: a power cut may lose
            the newest commits, never corrupt the file): only for generated history (the demo's month).

    Raises:
        archmon.sqlite.SchemaError: not a database, or tables written by a newer archmon.
    """

    def __init__(self, path: Path | str, *, readonly: bool = False, durable: bool = True) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._conn = connect(path, readonly=readonly)
        if readonly:
            return
        if not durable:
            self._conn.execute("PRAGMA synchronous=NORMAL")
        try:
            migrate(self._conn, "control", _MIGRATIONS, where=self.path)
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open_readonly(cls, path: Path | str) -> ControlRecords | None:
        """The control tables of an existing file, read-only (a report never writes); None when the file
        or its control tables do not exist (climate control never ran on it)."""
        try:
            records = cls(path, readonly=True)
        except FileNotFoundError:
            return None
        if schema_version(records._conn, "control") < 1:
            records.close()
            return None
        return records

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    # -- overrides --------------------------------------------------------------------------------
    def set_override(self, actuator: str, on: bool, start_ms: int, until_ms: int, by: str, reason: str) -> int:
        """Put a device under manual control until ``until_ms`` (ending any override it is under); audited.

        Raises:
            ValueError: no name, no reason, or an end not after the start.
        """
        by, reason = by.strip(), reason.strip()
        if not by or not reason:
            raise ValueError("an override needs the name of who sets it and a reason")
        if until_ms <= start_ms:
            raise ValueError("an override must end after it starts")
        with self._lock, write_tx(self._conn) as conn:
            self._end_open(conn, actuator, start_ms, by, "replaced by a new override")
            cursor = conn.execute(
                "INSERT INTO control_overrides (actuator, state, start_ms, until_ms, by, reason) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (actuator, "on" if on else "off", start_ms, until_ms, by, reason))
            ident = int(cursor.lastrowid or 0)
            append_audit(conn, start_ms, AUDIT_KIND, by, f"actuator:{actuator}",
                         {"event": "override", "override": ident, "state": "on" if on else "off",
                          "until_ms": until_ms, "reason": reason})
        return ident

    def end_override(self, actuator: str, now_ms: int, by: str, reason: str) -> OverrideRow | None:
        """Back to automatic control (``archmon control auto``); audited. None when no override was active."""
        with self._lock, write_tx(self._conn) as conn:
            return self._end_open(conn, actuator, now_ms, by.strip() or "unknown", reason.strip() or "back to auto")

    def expire_overrides(self, now_ms: int) -> list[OverrideRow]:
        """Mark the overrides whose time is up as ended (by ``system``, audited once): those just expired."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_OVERRIDE_COLUMNS} FROM control_overrides WHERE ended_ms IS NULL AND until_ms <= ?",
                (now_ms,)).fetchall()
            if not rows:
                return []
            out = []
            with write_tx(self._conn) as conn:
                for row in map(_override, rows):
                    conn.execute("UPDATE control_overrides SET ended_ms = ?, ended_by = 'system', end_reason = "
                                 "'expired' WHERE id = ? AND ended_ms IS NULL", (row.until_ms, row.id))
                    append_audit(conn, row.until_ms, AUDIT_KIND, "system", f"actuator:{row.actuator}",
                                 {"event": "override_expired", "override": row.id, "state": "on" if row.on else "off",
                                  "set_by": row.by})
                    out.append(row)
            return out

    def active_overrides(self, now_ms: int) -> dict[str, OverrideRow]:
        """The override each device is under at ``now_ms`` (newest first wins)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_OVERRIDE_COLUMNS} FROM control_overrides WHERE ended_ms IS NULL AND start_ms <= ? "
                "AND until_ms > ? ORDER BY id", (now_ms, now_ms)).fetchall()
        return {row.actuator: row for row in map(_override, rows)}

    def overrides(self, actuator: str | None = None, *, limit: int = 100) -> list[OverrideRow]:
        """Overrides, newest first."""
        query = f"SELECT {_OVERRIDE_COLUMNS} FROM control_overrides"
        params: tuple[Any, ...] = ()
        if actuator is not None:
            query, params = query + " WHERE actuator = ?", (actuator,)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [_override(row) for row in rows]

    def _end_open(self, conn: sqlite3.Connection, actuator: str, now_ms: int, by: str,
                  reason: str) -> OverrideRow | None:
        rows = conn.execute(f"SELECT {_OVERRIDE_COLUMNS} FROM control_overrides WHERE actuator = ? AND ended_ms IS "
                            "NULL ORDER BY id", (actuator,)).fetchall()
        ended = None
        for row in map(_override, rows):
            conn.execute("UPDATE control_overrides SET ended_ms = ?, ended_by = ?, end_reason = ? WHERE id = ?",
                         (now_ms, by, reason, row.id))
            append_audit(conn, now_ms, AUDIT_KIND, by, f"actuator:{actuator}",
                         {"event": "override_end", "override": row.id, "reason": reason})
            ended = row
        return ended

    # -- switch log and audit ---------------------------------------------------------------------
    def record(self, ts_ms: int, actuator: str, actor: str, payload: dict[str, Any], *,
               switch: SwitchRow | None = None) -> None:
        """One audit entry about a device, with its switch-log row (a confirmed change) in the same transaction."""
        with self._lock, write_tx(self._conn) as conn:
            if switch is not None:
                conn.execute("INSERT INTO control_switches (actuator, ts_ms, state, how, by, reason) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             (switch.actuator, switch.ts_ms, int(switch.on), switch.how, switch.by, switch.reason))
            append_audit(conn, ts_ms, AUDIT_KIND, actor, f"actuator:{actuator}", payload)

    def last_switch(self, actuator: str) -> SwitchRow | None:
        """The newest confirmed state change of a device."""
        with self._lock:
            row = self._conn.execute("SELECT actuator, ts_ms, state, how, by, reason FROM control_switches WHERE "
                                     "actuator = ? ORDER BY ts_ms DESC, seq DESC LIMIT 1", (actuator,)).fetchone()
        return None if row is None else SwitchRow(row[0], row[1], bool(row[2]), row[3], row[4], row[5])

    def switches(self, actuator: str, start_ms: int, end_ms: int) -> list[SwitchRow]:
        """The state changes of a device in ``[start_ms, end_ms)``, oldest first."""
        with self._lock:
            rows = self._conn.execute("SELECT actuator, ts_ms, state, how, by, reason FROM control_switches WHERE "
                                      "actuator = ? AND ts_ms >= ? AND ts_ms < ? ORDER BY ts_ms, seq",
                                      (actuator, start_ms, end_ms)).fetchall()
        return [SwitchRow(r[0], r[1], bool(r[2]), r[3], r[4], r[5]) for r in rows]

    def event_counts(self, actuator: str, start_ms: int, end_ms: int) -> dict[str, int]:
        """How many audit entries of each event (``command``, ``failed``, ``override``...) a device has in
        ``[start_ms, end_ms)``."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT json_extract(payload, '$.event'), COUNT(*) FROM audit_log WHERE kind = ? AND subject = ? "
                "AND ts_ms >= ? AND ts_ms < ? GROUP BY 1", (AUDIT_KIND, f"actuator:{actuator}", start_ms, end_ms))
            return {str(event): int(count) for event, count in rows}

    def changes(self, actuator: str, start_ms: int, end_ms: int) -> int:
        """How many times the device's state changed in ``[start_ms, end_ms)`` (the first state ever read
        back is not a change)."""
        with self._lock:
            before = self._conn.execute("SELECT state FROM control_switches WHERE actuator = ? AND ts_ms < ? "
                                        "ORDER BY ts_ms DESC, seq DESC LIMIT 1", (actuator, start_ms)).fetchone()
        previous = None if before is None else bool(before[0])
        count = 0
        for row in self.switches(actuator, start_ms, end_ms):
            count += previous is not None and row.on != previous
            previous = row.on
        return count

    def _state_before(self, actuator: str, ts_ms: int) -> bool | None:
        """The device's state from the newest switch-log row before ``ts_ms`` (None: none)."""
        with self._lock:
            before = self._conn.execute("SELECT state FROM control_switches WHERE actuator = ? AND ts_ms < ? "
                                        "ORDER BY ts_ms DESC, seq DESC LIMIT 1", (actuator, ts_ms)).fetchone()
        return None if before is None else bool(before[0])

    def starts(self, actuator: str, start_ms: int, end_ms: int) -> int:
        """How many times the device was switched on in ``[start_ms, end_ms)``: changes from off to on, a
        device never seen before counting as off, except a first state read back at a start (it was on
        before archmon knew it, not started then)."""
        previous = self._state_before(actuator, start_ms)
        count = 0
        for row in self.switches(actuator, start_ms, end_ms):
            if row.on and (previous is False or (previous is None and row.how != "readback")):
                count += 1
            previous = row.on
        return count

    def run_ms(self, actuator: str, start_ms: int, end_ms: int) -> int:
        """How long the device was on in ``[start_ms, end_ms)``, from the switch log (the state before the
        first change in the period is the last one before it)."""
        with self._lock:
            before = self._conn.execute("SELECT state FROM control_switches WHERE actuator = ? AND ts_ms < ? "
                                        "ORDER BY ts_ms DESC, seq DESC LIMIT 1", (actuator, start_ms)).fetchone()
        on = bool(before[0]) if before else False
        total, since = 0, start_ms
        for row in self.switches(actuator, start_ms, end_ms):
            if on:
                total += row.ts_ms - since
            on, since = row.on, row.ts_ms
        if on:
            total += end_ms - since
        return total
