"""What the engine persists of its own state: each ``rule:key``'s lifecycle phase, small rule markers, and
per series the newest reading it has judged (``alert_judged``: what a restart judges again, see
:mod:`alerts.catchup`).

Mixin of :class:`~alerts.store.AlertStore`. Rolling windows and per-sensor rule memory are not persisted:
the engine rebuilds them from the readings store at start (see :mod:`alerts.rebuild`). What is written here
is small and written only when it changes (a phase change, a day judged), inside the transaction of the
change that caused it; :attr:`EngineMemory.state_writes` keeps the size of the largest single write.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, NamedTuple

from alerts.model import Condition

__all__ = ["EngineMemory", "JudgedThrough", "StateWrites"]


@dataclass(slots=True)
class StateWrites:
    """Writes of engine state since the store was opened.

    Attributes:
        count: rows written.
        max_bytes: the largest single write (the row's text and numbers, as SQLite stores them).
        max_us: the longest single write's duration (µs), inside the caller's transaction.
    """

    count: int = 0
    max_bytes: int = 0
    max_us: int = 0

    def note(self, size: int, started: float) -> None:
        self.count += 1
        self.max_bytes = max(self.max_bytes, size)
        self.max_us = max(self.max_us, int((time.perf_counter() - started) * 1e6))


class JudgedThrough(NamedTuple):
    """The newest reading of one series the engine has judged (``ts_ms``)."""

    sensor: str
    quantity: str
    ts_ms: int


class EngineMemory:
    """Mixin: ``alert_conditions`` (lifecycle phases) and ``alert_rule_state`` (small per-rule markers)."""

    conn: sqlite3.Connection
    _lock: threading.RLock
    tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    state_writes: StateWrites

    def save_condition(self, ident: str, phase: str, since_ms: int, wait_ms: int, alert_id: int | None,
                       held_until: int | None, last: Condition | None) -> None:
        """Persist the lifecycle state of one ``rule:key`` (pending delays survive a restart)."""
        started = time.perf_counter()
        text = json.dumps(last.to_dict()) if last is not None else None
        with self.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO alert_conditions (ident, phase, since_ms, wait_ms, alert_id, held_until, "
                "last) VALUES (?,?,?,?,?,?,?)",
                (ident, phase, since_ms, wait_ms, alert_id, held_until, text),
            )
        self.state_writes.note(len(ident) + len(phase) + len(text or "") + 5 * 8, started)

    def conditions(self) -> list[dict[str, Any]]:
        """Every persisted lifecycle state."""
        with self._lock:
            return [dict(r) for r in self.conn.execute("SELECT * FROM alert_conditions")]

    def save_rule_state(self, rule: str, data: dict[str, Any], ts_ms: int) -> None:
        """Persist one rule's small marker (e.g. the last day the stability rule judged)."""
        started = time.perf_counter()
        text = json.dumps(data)
        with self.tx() as conn:
            conn.execute("INSERT OR REPLACE INTO alert_rule_state (rule, data, saved_ms) VALUES (?,?,?)",
                         (rule, text, ts_ms))
        self.state_writes.note(len(rule) + len(text) + 8, started)

    def rule_states(self) -> dict[str, dict[str, Any]]:
        """Every rule's persisted marker (files from before rebuilding may hold old full snapshots)."""
        with self._lock:
            return {r["rule"]: json.loads(r["data"]) for r in self.conn.execute("SELECT * FROM alert_rule_state")}

    def save_judged(self, rows: Iterable[JudgedThrough]) -> int:
        """Persist how far the engine has judged some series (never moving one back); returns the rows."""
        rows = list(rows)
        if rows:
            with self.tx() as conn:
                conn.executemany("INSERT INTO alert_judged (sensor, quantity, ts_ms) VALUES (?,?,?) ON CONFLICT "
                                 "(sensor, quantity) DO UPDATE SET ts_ms = max(ts_ms, excluded.ts_ms)", rows)
        return len(rows)

    def judged(self) -> dict[tuple[str, str], int]:
        """``(sensor, quantity) -> ts_ms`` of every series the engine has judged."""
        with self._lock:
            return {(r[0], r[1]): int(r[2]) for r in self.conn.execute("SELECT sensor, quantity, ts_ms FROM "
                                                                        "alert_judged")}
