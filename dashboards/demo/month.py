"""Writing the demo's month of history: generated, backfilled through the pipeline's checks, judged.

:func:`write_history` is what ``archmon demo`` runs on its fresh database before going live: the readings
of :mod:`dashboards.demo.history` go through :func:`collector.backfill.backfill` into the store, and what
each batch stored goes to a :class:`~dashboards.demo.judge.HistoryJudge`, which judges it with the real
alert engine in simulated time and registers the month's access sessions at their times. The controlled
room's readings (:mod:`dashboards.demo.controlled`) are simulated as the backfill pulls them, with archmon's
controller switching its dehumidifier, so its switch log and audit trail are written alongside.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alerts.model import Transition
from archmon.config import Config
from collector.backfill import BackfillResult, backfill
from collector.store import SqliteStore
from dashboards.demo.controlled import ACTUATOR, ControlledHistory
from dashboards.demo.history import (
    HISTORY_DAYS,
    history_count,
    history_readings,
    history_sessions,
    history_site,
    unregistered_openings,
)
from dashboards.demo.judge import HistoryJudge
from dashboards.demo.site import DemoSite
from devices.simulators.room_physics import RoomPhysics

__all__ = ["HISTORY_SOURCE", "HistorySummary", "write_history"]

HISTORY_SOURCE = "demo-history"
"""The backfill's source label (quarantine, counters)."""


@dataclass(frozen=True)
class HistorySummary:
    """What :func:`write_history` wrote.

    Attributes:
        site: the models the history used (the live part goes on from them).
        start_ms: first moment of the history; end_ms: its end (excluded).
        stored: the backfill's counts.
        transitions: the alert transitions judged, in order.
        acknowledged: alerts the keeper acknowledged.
        sessions: access sessions registered.
        seconds: how long it took.
        controlled: the controlled room as the history left it (the live part goes on from it; None: the
            configuration has no ``annex-dehum`` actuator); plug_on: its dehumidifier's plug at the end.
    """

    site: DemoSite
    start_ms: int
    end_ms: int
    stored: BackfillResult
    transitions: tuple[Transition, ...]
    acknowledged: int
    sessions: int
    seconds: float
    controlled: RoomPhysics | None = None
    plug_on: bool = False

    @property
    def alerts(self) -> int:
        """Alerts that fired in the history."""
        return len({t.alert for t in self.transitions if t.state == "active"})


def write_history(config: Config, db_path: Path, end_ms: int, *,
                  progress: Callable[[BackfillResult, int], None] | None = None) -> HistorySummary:
    """Write and judge ``HISTORY_DAYS`` days of every sensor, ending at ``end_ms``, into a fresh ``db_path``.

    Args:
        config: the demo configuration.
        db_path: its database (no readings and no alerts yet).
        end_ms: the end of the history (the demo's start).
        progress: called after each stored batch with the counts so far and about how many readings
            there are in all; it may raise to stop (what was stored stays stored).
    """
    started = time.perf_counter()
    tz = config.site.tz
    start_ms = end_ms - HISTORY_DAYS * 86_400_000
    site = history_site(end_ms, tz)
    sessions = history_sessions(site, start_ms, end_ms, tz, skip=frozenset(unregistered_openings(end_ms)))
    total = history_count(start_ms, end_ms)
    store = SqliteStore(db_path, tz=tz)
    judge = HistoryJudge(config, db_path, sessions, end_ms=end_ms)
    controlled = None
    readings = history_readings(site, start_ms, end_ms)
    if any(table.get("id") == ACTUATOR for table in config.actuators):
        controlled = ControlledHistory(config, db_path, start_ms, end_ms)
        total += ControlledHistory.count(start_ms, end_ms)
        readings = heapq.merge(readings, controlled.readings(), key=lambda reading: reading.ts_ms)
    try:
        result = backfill(config, store, readings, source=HISTORY_SOURCE,
                          on_stored=judge, progress=None if progress is None else lambda done: progress(done, total))
        transitions = judge.finish(end_ms)
    finally:
        judge.close()
        store.close()
    return HistorySummary(site, start_ms, end_ms, result, tuple(transitions), judge.acknowledged, len(sessions),
                          time.perf_counter() - started, None if controlled is None else controlled.room,
                          controlled is not None and controlled.plug_on)
