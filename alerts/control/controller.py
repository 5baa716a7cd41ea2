"""The climate controller: every device's loop, driver and record, in time driven by :meth:`tick`.

Readings come in through :meth:`ClimateController.on_readings` (the store writer's stored readings, or a
simulator); devices' reports through :meth:`on_device` (from a link's thread); time moves only through
:meth:`tick`, so tests and the benchmark run a week of simulated time in seconds and the service ticks
every few seconds. Each tick, per device: the followed value (mean or worst of the fresh sensors), the
active override (``control_overrides``, also set by another process: ``archmon control``), whether the
room is under maintenance (the alert store's windows), the loop's decision, the driver's commands and
timers; then every driver event is written to the audit log (and confirmed changes to the switch log).

The controller is also what the ``actuator`` alert rule reads (:meth:`actuator_health`): "not responding"
per device, and "no effect" when a device runs under automatic control and the value does not improve by
``effect_min`` within ``effect_window_s``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from alerts.control.driver import ActuatorDriver, Cause, DriverEvent, Link
from alerts.control.loop import ControlLoop, Decision, LoopInputs, OverrideView
from alerts.control.plan import ActuatorPlan
from alerts.control.records import ControlRecords, SwitchRow
from archmon.domain import Reading
from devices.actuators import Availability, SwitchReport

__all__ = ["ActuatorHealth", "ActuatorStatus", "ClimateController", "MaintenanceSource"]

log = logging.getLogger(__name__)

HealthState = Literal["unknown", "ok", "down"]
Problem = Literal["not_responding", "no_effect"]


class MaintenanceSource(Protocol):
    """Where maintenance windows are (``alerts.store.AlertStore``)."""

    def maintenance_until(self, room: str, ts_ms: int) -> int | None: ...


@dataclass(frozen=True, slots=True)
class ActuatorHealth:
    """One problem a device may have, for the ``actuator`` alert rule.

    Attributes:
        actuator: the device's id; room: its room.
        problem: ``not_responding`` or ``no_effect``.
        state: ``down`` (the problem holds), ``ok``, ``unknown`` (not judged yet).
        detail: what was seen, for people.
    """

    actuator: str
    room: str
    problem: Problem
    state: HealthState
    detail: str = ""

    @property
    def down(self) -> bool:
        """Whether the problem holds."""
        return self.state == "down"


@dataclass(frozen=True, slots=True)
class ActuatorStatus:
    """What a device is doing, for the dashboard and ``archmon control status``.

    Attributes:
        actuator, room, label: which device.
        on: its confirmed state (None: not known); since_ms: since when.
        want: the loop's last wish; reason: why (a ``loop.REASONS`` code).
        value: the followed value it decided on (None: stale).
        override: the override it is under, if any.
        responding: False while not responding; detail: why.
        commands: commands (and repeats) sent since start.
    """

    actuator: str
    room: str
    label: str
    on: bool | None
    since_ms: int | None
    want: bool | None
    reason: str
    value: float | None
    override: OverrideView | None
    responding: bool
    detail: str
    commands: int


@dataclass(slots=True)
class _Effect:
    ref_ms: int | None = None
    ref_value: float | None = None
    state: HealthState = "unknown"
    detail: str = ""


@dataclass(slots=True)
class _Device:
    plan: ActuatorPlan
    loop: ControlLoop
    driver: ActuatorDriver
    since_ms: int | None = None
    decision: Decision | None = None
    value: float | None = None
    override: OverrideView | None = None
    effect: _Effect = field(default_factory=_Effect)


class ClimateController:
    """Runs every configured device's control loop (see the module docstring).

    Args:
        plans: the actuators (``alerts.control.plan.load_plans``).
        links: each actuator id's link (``alerts.control.runtime`` builds them).
        records: where overrides, the switch log and the audit trail live (None: nowhere, for pure tests).
        clock: the time in ms (simulated in tests).
        maintenance: the maintenance windows (None: none).
    """

    def __init__(self, plans: Iterable[ActuatorPlan], links: Mapping[str, Link], *, records: ControlRecords | None,
                 clock: Callable[[], int], maintenance: MaintenanceSource | None = None) -> None:
        self.records = records
        self.clock = clock
        self.maintenance = maintenance
        self._lock = threading.RLock()
        self._settled = threading.Condition(self._lock)
        now = clock()
        self._devices: dict[str, _Device] = {
            plan.id: _Device(plan, ControlLoop(plan.loop, now), ActuatorDriver(plan.id, links[plan.id], plan.timing))
            for plan in plans
        }
        self._latest: dict[tuple[str, str], tuple[int, float]] = {}
        self._wanted = {(s.id, d.plan.config.quantity) for d in self._devices.values() for s in d.plan.sensors}
        self.manual: dict[str, OverrideView] = {}  # overrides without records (pure tests)

    @property
    def actuators(self) -> list[str]:
        """The devices' ids."""
        return list(self._devices)

    # -- inputs -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Read every device's state back (call once its link is connected)."""
        with self._lock:
            now = self.clock()
            for device in self._devices.values():
                device.driver.start(now)
            self._drain(now)

    def on_readings(self, readings: Iterable[Reading]) -> None:
        """Newly stored readings (only those of followed sensors are kept: the newest per series)."""
        wanted = self._wanted
        with self._lock:
            latest = self._latest
            for reading in readings:
                key = (reading.sensor, reading.quantity)
                if key in wanted:
                    held = latest.get(key)
                    if held is None or reading.ts_ms >= held[0]:
                        latest[key] = (reading.ts_ms, reading.value)

    def on_device(self, actuator: str, message: SwitchReport | Availability) -> None:
        """A device's report or availability (from a link, any thread)."""
        with self._lock:
            device = self._devices.get(actuator)
            if device is None:
                return
            now = self.clock()
            if isinstance(message, SwitchReport):
                device.driver.report(message.on, message.via, now)
            else:
                device.driver.availability(message.online, message.via, now)
            self._drain(now)
            self._settled.notify_all()

    def tick(self, now_ms: int | None = None) -> None:
        """Decide and act for every device at ``now_ms`` (default: the clock)."""
        with self._lock:
            now = self.clock() if now_ms is None else now_ms
            overrides = self._overrides(now)
            paused = self._paused(now)
            for ident, device in self._devices.items():
                plan = device.plan
                device.value = self._value(plan, now)
                device.override = overrides.get(ident)
                reported = device.driver.reported
                decision = device.loop.decide(LoopInputs(
                    now_ms=now, value=device.value, on=reported.on if reported else None, since_ms=device.since_ms,
                    override=device.override, paused=plan.config.room in paused))
                device.decision = decision
                if decision.want is not None:
                    device.driver.want(decision.want, self._cause(device, decision), now)
                device.driver.tick(now)
                self._watch_effect(device, now)
            self._drain(now)

    def command(self, actuator: str, on: bool, cause: Cause) -> None:
        """Bring one device to ``on`` now, outside its loop (a reload putting a removed device in its safe
        state); confirmed, repeated and audited as every command."""
        with self._lock:
            now = self.clock()
            driver = self._devices[actuator].driver
            driver.want(on, cause, now)
            driver.tick(now)
            self._drain(now)

    def drive(self, actuators: Iterable[str]) -> None:
        """Only the drivers' time-driven work (repeats, failures) of some devices, no loop decisions."""
        with self._lock:
            now = self.clock()
            for ident in actuators:
                self._devices[ident].driver.tick(now)
            self._drain(now)

    def carry_over(self, previous: ClimateController) -> None:
        """Take over what a controller replaced by a reload knew: the newest readings of the sensors followed
        (so the loops do not see them as stale), and which devices rest after a maximum run."""
        with previous._lock:
            latest = dict(previous._latest)
            resting = {ident: device.loop.resting for ident, device in previous._devices.items()}
        with self._lock:
            self._latest.update({key: value for key, value in latest.items() if key in self._wanted})
            for ident, device in self._devices.items():
                if resting.get(ident):
                    device.loop.resting = True

    @property
    def plans(self) -> list[ActuatorPlan]:
        """The devices' plans, in configuration order."""
        return [device.plan for device in self._devices.values()]

    # -- outputs ----------------------------------------------------------------------------------
    def idle(self) -> bool:
        """Whether no command or state query waits for a device's report."""
        with self._lock:
            return not any(d.driver.awaiting for d in self._devices.values())

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait (real time, at most ``timeout_s``) until no command or query waits for a report; whether it
        came to that. For simulated time: the clock must not pass a deadline the broker has yet to answer."""
        with self._settled:
            return self._settled.wait_for(lambda: not any(d.driver.awaiting for d in self._devices.values()),
                                          timeout_s)

    def actuator_health(self) -> list[ActuatorHealth]:
        """Every device's "not responding" and "no effect" state (the ``actuator`` rule's source)."""
        out = []
        with self._lock:
            for ident, device in self._devices.items():
                driver, room = device.driver, device.plan.config.room
                state: HealthState = "down" if driver.down else "ok" if driver.reported is not None else "unknown"
                out.append(ActuatorHealth(ident, room, "not_responding", state, driver.down_detail))
                out.append(ActuatorHealth(ident, room, "no_effect", device.effect.state, device.effect.detail))
        return out

    def status(self) -> list[ActuatorStatus]:
        """What every device is doing."""
        out = []
        with self._lock:
            for ident, device in self._devices.items():
                reported, decision = device.driver.reported, device.decision
                out.append(ActuatorStatus(
                    ident, device.plan.config.room, device.plan.config.label, reported.on if reported else None,
                    device.since_ms, decision.want if decision else None, decision.reason if decision else "",
                    device.value, device.override, not device.driver.down, device.driver.down_detail,
                    device.driver.commands_sent))
        return out

    def driver(self, actuator: str) -> ActuatorDriver:
        """One device's driver (tests, diagnostics)."""
        return self._devices[actuator].driver

    # -- internals --------------------------------------------------------------------------------
    def _value(self, plan: ActuatorPlan, now: int) -> float | None:
        quantity = plan.config.quantity
        fresh = []
        for sensor in plan.sensors:
            held = self._latest.get((sensor.id, quantity))
            if held is not None and now - held[0] <= sensor.stale_after_ms:
                fresh.append(held[1])
        if len(fresh) < plan.config.min_sensors:
            return None
        if plan.config.aggregate == "mean":
            return sum(fresh) / len(fresh)
        return max(fresh) if plan.loop.lowers else min(fresh)

    def _overrides(self, now: int) -> dict[str, OverrideView]:
        if self.records is None:
            return {k: v for k, v in self.manual.items() if v.until_ms > now}
        self.records.expire_overrides(now)
        return {ident: OverrideView(row.on, row.until_ms, row.by, row.reason)
                for ident, row in self.records.active_overrides(now).items()}

    def _paused(self, now: int) -> set[str]:
        if self.maintenance is None:
            return set()
        rooms = {device.plan.config.room for device in self._devices.values()}
        return {room for room in rooms if self.maintenance.maintenance_until(room, now) is not None}

    def _cause(self, device: _Device, decision: Decision) -> Cause:
        plan = device.plan
        if decision.reason == "override" and device.override is not None:
            return Cause(device.override.by, "override", {"override_reason": device.override.reason,
                                                          "until_ms": device.override.until_ms})
        details: dict[str, object] = {"value": None if device.value is None else round(device.value, 2),
                                      "start_at": plan.loop.start_at, "stop_at": plan.loop.stop_at,
                                      "sensors": [s.id for s in plan.sensors], "aggregate": plan.config.aggregate}
        return Cause("system", decision.reason, details)

    def _watch_effect(self, device: _Device, now: int) -> None:
        config, effect = device.plan.config, device.effect
        reported, decision = device.driver.reported, device.decision
        automatic = decision is not None and decision.reason in ("demand", "hold", "min_on")
        if not config.effect_window_s or not (reported and reported.on and automatic) or device.value is None:
            effect.ref_ms = effect.ref_value = None
            if reported is not None and not reported.on and effect.state == "down":
                effect.state, effect.detail = "ok", ""
            return
        if effect.ref_ms is None or effect.ref_value is None:
            effect.ref_ms, effect.ref_value = max(now, device.since_ms or now), device.value
            return
        if now - effect.ref_ms < config.effect_window_s * 1000:
            return
        gain = effect.ref_value - device.value if device.plan.loop.lowers else device.value - effect.ref_value
        if gain + 1e-9 >= config.effect_min:
            effect.state, effect.detail = "ok", ""
        else:
            effect.state = "down"
            effect.detail = (f"{config.quantity} went from {effect.ref_value:.1f} to {device.value:.1f} in "
                             f"{config.effect_window_s / 60:g} min of running (expected {config.effect_min:g} better)")
        effect.ref_ms, effect.ref_value = now, device.value

    def _drain(self, now: int) -> None:
        for device in self._devices.values():
            for event in device.driver.take_events():
                self._apply(device, event)

    def _apply(self, device: _Device, event: DriverEvent) -> None:
        ident = device.plan.id
        switch = None
        if event.kind in ("confirmed", "external", "readback") and event.on is not None:
            how = {"confirmed": "command", "external": "external", "readback": "readback"}[event.kind]
            by = event.cause.actor if event.cause else "device"
            reason = event.cause.reason if event.cause else event.kind
            if event.kind == "readback":
                last = self.records.last_switch(ident) if self.records is not None else None
                if last is not None and last.on == event.on:
                    device.since_ms = last.ts_ms  # as it was before the restart: min on/off count from then
                else:
                    device.since_ms = event.ts_ms
                    switch = SwitchRow(ident, event.ts_ms, event.on, how, by, reason)
            else:
                device.since_ms = event.ts_ms
                switch = SwitchRow(ident, event.ts_ms, event.on, how, by, reason)
        if event.kind in ("failed", "offline", "external"):
            log.warning("actuator %s: %s %s", ident, event.kind, event.detail)
        if self.records is None:
            return
        payload: dict[str, object] = {"event": event.kind}
        if event.on is not None:
            payload["state"] = "on" if event.on else "off"
        if event.attempt:
            payload["attempt"] = event.attempt
        if event.detail:
            payload["detail"] = event.detail
        if event.latency_ms is not None:
            payload["latency_ms"] = event.latency_ms
        actor = "device" if event.kind in ("readback", "external", "offline", "online", "recovered") else "system"
        if event.cause is not None:
            actor = event.cause.actor
            payload["reason"] = event.cause.reason
            if event.cause.details:
                payload.update(event.cause.details)
        self.records.record(event.ts_ms, ident, actor, payload, switch=switch)
