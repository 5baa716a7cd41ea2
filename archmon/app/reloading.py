"""A reload (SIGHUP) of the running service: read the file, plan it (:mod:`archmon.reload`), switch every
part, log, count and audit it; swap the alert rules at their place in the alert feed's order; find the open
alerts of sensors a reload removes.

The swap is queued, never waited for: its place in the feed fixes which readings the old rules judge (those
stored before the reload) and which the new ones (every later one), so a reload returns at once even while
the engine works through a backlog or waits for a stalled database. A reload that fails after its swap was
queued cancels it; if the swap already ran, the old rules are swapped back, again in the feed's order.

Climate control (``[[actuators]]``) follows an applied reload: :meth:`Reloading._reload_climate` rebuilds its
controller when a device's plan changed, was added or removed (a removed one put in its safe state first;
:mod:`archmon.app.climate`), and starts climate control when a reload adds the first actuator.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archmon.app.checks import check_references
from archmon.config import Config, load_config
from archmon.errors import ConfigError
from archmon.reload import ReloadOutcome, plan_reload
from collector._mqtt_client import validate_filter
from collector.modbus import ModbusSource, bus_devices
from collector.mqtt import MqttSource
from collector.routing import Router
from collector.sources import SourceCheck, check_sources

if TYPE_CHECKING:
    from archmon.app.audit import AuditQueue
    from archmon.app.feed import AlertFeed
    from collector.pipeline import Pipeline
    from collector.source import Source

__all__ = ["AlertSwap", "Reloading", "open_alerts_of"]

log = logging.getLogger("archmon.app")


class Reloading:
    """The reload of :class:`~archmon.app.service.Service` (a mixin: these are its methods)."""

    config: Config
    db_path: Path
    alerts: Any
    audit: AuditQueue
    pipeline: Pipeline
    on_reload: list[Callable[[Config], None]]
    _alert_feed: AlertFeed
    _checked: SourceCheck
    _sources: dict[str, Source]
    _reload_lock: threading.Lock
    _stopping: threading.Event
    _started: bool
    _service_counts: dict[str, int]
    _service_gauges: dict[str, int]
    report_stats: Callable[..., None]
    control: Any
    writer: Any
    scheduler: Any

    def reload(self, path: Path | None = None) -> ReloadOutcome:
        """Read the configuration file again and apply what a running service can change (see
        :mod:`archmon.reload`); a file with problems is refused and the running configuration stays.

        Never raises for a bad file: the outcome says what happened; it is logged and audited either way
        (audited through :class:`~archmon.app.audit.AuditQueue`, so also during a store stall). Returns at
        once: the alert rules are swapped at their place in the alert feed, not waited for. Once a stop was
        asked for, nothing is applied any more.
        """
        file = Path(path or self.config.path or "archmon.toml")
        with self._reload_lock:
            try:
                if self._stopping.is_set():
                    outcome = ReloadOutcome(str(file), "", applied=False, skipped=True)
                    outcome.log(log)
                    return outcome
                try:
                    digest = hashlib.sha256(file.read_bytes()).hexdigest()
                except OSError:
                    digest = ""
                removed: list[str] = []
                try:
                    new = load_config(file)
                    plan = plan_reload(self.config, new)
                    checked = check_sources(plan.config)
                    problems = (check_references(new, secrets=False)
                                or check_references(plan.config, checked=checked, secrets=False))
                    if problems:
                        raise ConfigError(problems)
                    if self._stopping.is_set():
                        outcome = ReloadOutcome(str(file), digest, applied=False, skipped=True)
                        outcome.log(log)
                        return outcome
                    removed = sorted({s.id for s in self.config.sensors} - {s.id for s in plan.config.sensors})
                    if plan.changed:  # (an unchanged file: nothing to switch, the engine not even asked)
                        self._apply(plan.config, checked, removed=removed)
                except ConfigError as exc:
                    outcome = ReloadOutcome(str(file), digest, applied=False, problems=list(exc.problems))
                except Exception as exc:  # a bug must cost the reload, never the running service
                    log.exception("reload of %s failed", file)
                    outcome = ReloadOutcome(str(file), digest, applied=False,
                                            problems=[f"{file}: internal error: {type(exc).__name__}: {exc}"])
                else:
                    outcome = ReloadOutcome(str(file), digest, applied=True, plan=plan,
                                            open_alerts_of_removed=open_alerts_of(self.db_path, removed))
                self._record_reload(outcome)
            finally:  # the refusal entries of swaps it queued follow this reload's own (or go now)
                for swap in self._queued_swaps:
                    swap.recorded.set()
                self._queued_swaps.clear()
            config = self.config
            if outcome.applied and not self._stopping.is_set():
                self._reload_climate(config, digest)
        if outcome.applied:
            for listener in self.on_reload:
                try:
                    listener(config)
                except Exception:
                    log.exception("reload: listener %r failed", listener)
        return outcome

    def _apply(self, config: Config, checked: SourceCheck, *, removed: Sequence[str] = ()) -> None:
        """Switch every part to ``config``. What can refuse it is worked out first; if a step fails after
        all, every part switched so far goes back (the alert rules too, in the feed's order) and it raises."""
        brokers = {i: s for i, s in self._sources.items() if isinstance(s, MqttSource)}
        buses = {i: s for i, s in self._sources.items() if isinstance(s, ModbusSource)}
        router = Router(config, checked.configs)
        topics = {i: [validate_filter(t, f"mqtt ({i}) topics") for t in router.mqtt_topics(i)] for i in brokers}
        devices = {i: bus_devices(config, i) for i in buses}
        old, old_checked = self.config, self._checked
        old_topics = {i: list(b.topics) for i, b in brokers.items()}
        old_devices = {i: list(b.devices) for i, b in buses.items()}
        swap = self._swap_alerts(config, removed)
        try:
            self.pipeline.reconfigure(config, checked.configs)
            if not self._stopping.is_set():  # a stopping source is not asked to subscribe any more
                for source_id, broker in brokers.items():
                    broker.set_topics(topics[source_id])
            for source_id, bus in buses.items():
                bus.set_devices(devices[source_id])
            from alerts.notify import reload_notifier  # never raises; [notify] turned on waits for a restart

            self.notifier = reload_notifier(self.notifier, config)
        except BaseException:
            if swap is None or swap.cancel():  # done here, or too late to cancel: swap back
                self._swap_alerts(old, ())
            self.pipeline.reconfigure(old, old_checked.configs)
            for source_id, broker in brokers.items():
                if list(broker.topics) != old_topics[source_id]:
                    broker.set_topics(old_topics[source_id])
            for source_id, bus in buses.items():
                bus.set_devices(old_devices[source_id])
            raise
        self.config, self._checked = config, checked

    def _reload_climate(self, config: Config, digest: str) -> None:
        """Climate control after an applied reload (see the module docstring); a failure is logged and
        audited, never raised: the rest of the reload stands and the running devices keep their loops."""
        from archmon.app.climate import build_climate

        try:
            if self.control is not None:
                self.control.reload(config, config_sha256=digest)
                return
            control = build_climate(config, self.db_path)
            if control is None:
                return
            self.writer.add_listener(control.on_stored)
            self.control = control
            if self._started and self._alert_feed.alive:  # after the queued swap: the new rules take it
                self._alert_feed.call("attach-climate", lambda: control.attach(self.alerts.engine.rules))
                control.start(self.scheduler)
            else:
                control.attach(self.alerts.engine.rules)
                if self._started:
                    control.start(self.scheduler)
            log.info("reload: climate control started for %d device(s)", len(control.controller.plans))
        except Exception as exc:  # (the tables were checked with the rest: a bug or an unreachable secret)
            log.exception("reload: climate control not reloaded; its devices go on as before")
            self.audit.submit("control", "system", "service", {"event": "reload_control_failed",
                                                               "problem": f"{type(exc).__name__}: {exc}"[:500]})

    def _swap_alerts(self, config: Config, removed: Sequence[str]) -> AlertSwap | None:
        """Swap the alert rules in the alert feed's order: readings stored before the reload are judged by the
        rules they were stored under, every later one by the new rules, none twice. Not waited for (a
        running service); before the start or after the stop, done here (and a refusal raises)."""
        swap = AlertSwap(self.alerts, config, on_failure=self._alert_swap_failed, removed=removed)
        if not self._started or not self._alert_feed.alive:
            self.alerts.reload(config)
            return None
        waiting = self._alert_feed.queued()
        self._queued_swaps.append(swap)
        self._alert_feed.call("reload", swap.run)
        if waiting:
            log.info("reload: the new alert rules apply once the alert engine is through the %d commit(s) stored "
                     "before the reload", waiting)
        return swap

    def _alert_swap_failed(self, exc: BaseException, swapped: bool) -> None:
        """The alert service's reload raised (on the feed's thread): it refused the configuration everything
        else took, or it took it and only its own audit entry failed (a stalled database)."""
        problem = f"{type(exc).__name__}: {exc}"[:500]
        if swapped:  # the service's own audit entry of this reload is on its way (AuditQueue)
            log.warning("reload: the alert engine took the new rules; its own audit entry of them failed: %s", problem)
            return
        log.error("reload: the alert engine refused the new rules and goes on with the old ones: %s", problem)
        self._service_counts["reload_alert_failures"] += 1
        self.audit.submit("config", "system", "service", {"event": "reload_alerts_failed", "problem": problem})

    def _record_reload(self, outcome: ReloadOutcome) -> None:
        """Log, count (persisted with the next report) and audit (retried until the file takes it)."""
        outcome.log(log)
        plan = outcome.plan
        self._service_counts["reloads" if outcome.applied else "reloads_refused"] += 1
        self._service_gauges["last_reload"] = int(outcome.applied)
        self._service_gauges["restart_needed"] = len(plan.restart_needed) if plan else 0
        self.audit.submit("config", "system", "service", outcome.audit_payload())
        if self._started and not self._stopping.is_set():  # status shows it soon (never waiting for the engine)
            self.report_stats(timeout_s=0, alerts=False)


class AlertSwap:
    """``alerts.reload(config)``, run once on the alert feed's thread unless cancelled first.

    Args:
        alerts: the ``AlertService``.
        config: the configuration to swap in.
        on_failure: called (on the feed's thread) with the exception when ``alerts.reload`` raised, and whether
            the engine took ``config`` all the same (its own audit entry failed after the swap, on a stalled
            database).
        removed: sensors the reload removed; their open alerts are closed after the swap if the alert service
            can (``AlertService.close_alerts_of_removed``).
    """

    def __init__(self, alerts: Any, config: Config, *, on_failure: Callable[[BaseException, bool], None],
                 removed: Collection[str] = ()) -> None:
        self._alerts = alerts
        self.config = config
        self._on_failure = on_failure
        self._removed = sorted(removed)
        self._lock = threading.Lock()
        self._cancelled = False
        self._started = False
        self.recorded = threading.Event()

    def run(self) -> None:
        """Swap the rules (on the feed's thread); a failure goes to ``on_failure``, never further."""
        with self._lock:
            if self._cancelled:
                return
            self._started = True
        try:
            if self._alerts.config is not self.config:
                self._alerts.reload(self.config)
            close = getattr(self._alerts, "close_alerts_of_removed", None)
            if close is not None and self._removed:
                close(self._removed, by="system", reason="sensor removed from the configuration by a reload")
        except Exception as exc:
            # The reload's own audit entry first (it is submitted right after the swap was queued); bounded,
            # so a reload stuck elsewhere never holds the alert feed.
            self.recorded.wait(10)
            self._on_failure(exc, self._alerts.config is self.config)

    def cancel(self) -> bool:
        """Do not swap after all; True if it is too late (the swap ran or is running: swap back)."""
        with self._lock:
            self._cancelled = True
            return self._started


def open_alerts_of(db_path: Path, sensors: Collection[str]) -> list[str]:
    """The open (pending, active, acknowledged) alerts of ``sensors``, one line each
    (``alert 12 band th2 active``); none when the alert tables cannot be read (read-only, never waits)."""
    if not sensors:
        return []
    from alerts.store import AlertReader

    wanted = set(sensors)
    try:
        with AlertReader(db_path) as reader:
            rows = reader.alerts(active_only=True, limit=100_000)
    except (sqlite3.Error, OSError) as exc:
        log.debug("reload: open alerts not read: %s", exc)
        return []
    return [f"alert {row['id']} {row['rule']} {row['sensor']} {row['state']}" for row in reversed(rows)
            if row.get("sensor") in wanted]
