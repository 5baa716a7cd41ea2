"""Climate control in ``archmon run``: the ``[[actuators]]`` loops, fed by the store writer, ticked by the
scheduler, read by the ``actuator`` alert rule.

- Readings: every commit's stored readings go to the controller (a dictionary update under its lock: it
  never holds up the writer).
- Time: a scheduler job ticks the controller every :data:`TICK_S` seconds; the first tick connects the
  links (a broker that cannot be reached does not hold up the start) and reads every device's state back.
- Maintenance windows: read through the alert store's read-only connection pool, never waiting on the
  engine.
- Alerts: the engine's ``actuator`` rule is attached to this service, which answers with its controller of
  the moment (a reload's new rule takes the attachment over: ``ActuatorRule.adopt``).
- Reload (:meth:`ClimateService.reload`): a configuration whose actuators resolve differently (set-points,
  times, sensors, a device added, removed or disabled) rebuilds the controller and its links without a
  restart: removed devices are put in their safe state first, through the running links; the new controller
  carries over the newest readings and rests, reads every device's state back (the minimum on/off times go
  on from the switch log) and every change is audited (:mod:`alerts.control.reconfigure`).
- Stop: the links disconnect; devices keep their state (those with ``auto_off_s`` switch themselves off
  within it).
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
        """Give the engine's ``actuator`` rule this service (its controller of the moment); returns how many
        rules took it."""
        count = 0
        for rule in engine_rules:
            if getattr(rule, "name", "") == "actuator":
                rule.attach(self)
                count += 1
        return count

    def actuator_health(self) -> Any:
        """The current controller's device health (the ``actuator`` rule's source)."""
        return self.controller.actuator_health()

    def reload(self, config: Config, *, config_sha256: str = "") -> Any:
        """Apply a reloaded configuration's ``[[actuators]]`` (see the module docstring); returns the
        :class:`~alerts.control.reconfigure.ActuatorChanges` (nothing done when it has none).

        Raises:
            ConfigError: the new tables have problems (checked before: the reload is refused then).
        """
        from alerts.control import build_runtime, load_plans
        from alerts.control.reconfigure import actuator_changes, record_changes, release

        plans = load_plans(config)
        with self._lock:  # no tick meanwhile
            changes = actuator_changes(self.controller.plans, plans)
            if not changes.any:
                return changes
            runtime = build_runtime(config, records=self.records, maintenance=self.maintenance, plans=plans)
            old = {plan.id: plan for plan in self.controller.plans}
            released = release(self.controller, [old[i] for i in changes.removed], wait=self._started)
            self.runtime.stop()
            runtime.controller.carry_over(self.controller)
            self.runtime, self.controller = runtime, runtime.controller
            record_changes(self.records, changes, released, self.controller.clock(), config_sha256=config_sha256)
            for item in released:
                (log.info if item.confirmed else log.warning)(
                    "climate control: %s removed by the reload, put %s%s", item.actuator,
                    "on" if item.safe_on else "off", "" if item.confirmed else " (NOT confirmed by the device)")
            log.info("climate control reloaded: added %s, changed %s, removed %s", list(changes.added),
                     list(changes.changed), list(changes.removed))
            if self._started:
                self.runtime.start(wait_s=TICK_S)
        return changes

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
