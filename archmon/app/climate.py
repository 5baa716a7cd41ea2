"""Climate control in ``archmon run``: the ``[[actuators]]`` loops, fed by the store writer, ticked by the
scheduler, read by the ``actuator`` alert rule.

- Readings: every commit's stored readings go to the controller (a dictionary update under its lock: it
  never holds up the writer).
- Time: a scheduler job ticks the controller every :data:`TICK_S` seconds; the first tick connects the
  links (a broker that cannot be reached does not hold up the start) and reads every device's state back.
- Maintenance windows: read through the alert store's read-only connection pool, never waiting on the
  engine.
- Alerts: the engine's ``actuator`` rule is attached to the controller (and a reload's new rule takes the
  attachment over: ``ActuatorRule.adopt``).
- Stop: the links disconnect; devices keep their state (those with ``auto_off_s`` switch themselves off
  within it). A change to ``[[actuators]]`` takes effect at the next start (a reload does not rebuild it).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from archmon.config import Config

__all__ = ["TICK_S", "ClimateService", "build_climate"]

log = logging.getLogger("archmon.app")

TICK_S = 5.0
"""How often the loops decide (and command timeouts, polls and renewals are looked at)."""


class _MaintenanceWindows:
    """``maintenance_until(room, ts)`` over the alert store's reader (never waits on the engine's lock)."""

    def __init__(self, db_path: Path) -> None:
        from alerts.store import AlertReader

        self._reader = AlertReader(db_path)

    def maintenance_until(self, room: str, ts_ms: int) -> int | None:
        ends = [int(w["end_ms"]) for w in self._reader.maintenance_windows(ts_ms, room) if w["start_ms"] <= ts_ms]
        return max(ends) if ends else None

    def close(self) -> None:
        self._reader.close()


class ClimateService:
    """The controller of a running service and what it needs (see the module docstring).

    Args:
        config: the configuration (its ``[[actuators]]``, already checked).
        db_path: the shared database.
    """

    def __init__(self, config: Config, db_path: Path) -> None:
        from alerts.control import ControlRecords, build_runtime

        self.records = ControlRecords(db_path)
        self.maintenance = _MaintenanceWindows(db_path)
        self.runtime = build_runtime(config, records=self.records, maintenance=self.maintenance)
        self.controller = self.runtime.controller
        self._started = False
        self._lock = threading.Lock()
        self.ticks = 0
        self.errors = 0

    def attach(self, engine_rules: Any) -> int:
        """Give the engine's ``actuator`` rule this controller; returns how many rules took it."""
        count = 0
        for rule in engine_rules:
            if getattr(rule, "name", "") == "actuator":
                rule.attach(self.controller)
                count += 1
        return count

    def on_stored(self, result: Any) -> None:
        """Store writer listener: the commit's stored readings."""
        if result.stored:
            self.controller.on_readings(result.stored)

    def start(self, scheduler: Any) -> None:
        """Tick from the scheduler (the first tick connects the links)."""
        from datetime import datetime

        scheduler.add_job(self.tick, "interval", seconds=TICK_S, id="climate-control",
                          next_run_time=datetime.now(scheduler.timezone))

    def tick(self) -> None:
        """One scheduler tick: connect on the first, then decide and act."""
        with self._lock:
            try:
                if not self._started:
                    self._started = True
                    self.runtime.start(wait_s=TICK_S)
                self.controller.tick()
                self.ticks += 1
            except Exception:  # one bad tick must not end the schedule; it is logged with its cause
                self.errors += 1
                log.exception("climate control: tick failed")

    def stop(self) -> None:
        """Disconnect the links and close the files (devices keep their state)."""
        with self._lock:
            self.runtime.stop()
            self.records.close()
            self.maintenance.close()


def build_climate(config: Config, db_path: Path) -> ClimateService | None:
    """The climate service, or None when no actuator is enabled."""
    from alerts.control import load_plans

    if not load_plans(config):
        return None
    return ClimateService(config, db_path)
