"""A reload (SIGHUP) changing the ``[[actuators]]`` tables, without a restart: what changed, a removed device
put in its safe state first, every change on the record.

:func:`actuator_changes` compares the running plans with the new ones (a table whose resolved plan differs
in anything — set-points, times, sensors, the way it is switched — is ``changed``; a table now
``enabled = false`` counts as removed). :func:`release` commands each removed device to its configured
``safe_state`` through the running controller (so the command is confirmed, repeated and audited as any
other) and waits, bounded by its confirm timeout and repeats, for the device's report: once it is no
longer configured nothing else would ever switch it. Equipment protection does not hold it back (the
device leaves archmon's care; a compressor's minimum on time is the device's own business from then on).
:func:`record_changes` writes one audit entry per device added, changed or removed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from alerts.control.controller import ClimateController
from alerts.control.driver import Cause
from alerts.control.plan import ActuatorPlan
from alerts.control.records import ControlRecords

__all__ = ["ActuatorChanges", "Released", "actuator_changes", "record_changes", "release"]

REMOVED_REASON = "removed from the configuration by a reload"


@dataclass(frozen=True, slots=True)
class ActuatorChanges:
    """What a reload changes in the actuators (ids in configuration order).

    Attributes:
        added, removed, changed: device ids; keys: per changed device, the table keys that differ.
    """

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    keys: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        """Whether anything changed."""
        return bool(self.added or self.removed or self.changed)


@dataclass(frozen=True, slots=True)
class Released:
    """A removed device and the safe state it was put in: ``confirmed`` when the device reported it."""

    actuator: str
    safe_on: bool
    confirmed: bool


def actuator_changes(running: Sequence[ActuatorPlan], new: Sequence[ActuatorPlan]) -> ActuatorChanges:
    """Compare the running plans with a new configuration's (enabled ones)."""
    old = {plan.id: plan for plan in running}
    fresh = {plan.id: plan for plan in new}
    changed = [ident for ident, plan in fresh.items() if ident in old and old[ident] != plan]
    keys = {}
    for ident in changed:
        before, after = old[ident].config.model_dump(), fresh[ident].config.model_dump()
        keys[ident] = tuple(sorted(k for k in after if after[k] != before.get(k))) or ("resolved settings",)
    return ActuatorChanges(tuple(i for i in fresh if i not in old), tuple(i for i in old if i not in fresh),
                           tuple(changed), keys)


def release(controller: ClimateController, plans: Sequence[ActuatorPlan], *, wait: bool = True) -> list[Released]:
    """Put each device of ``plans`` (removed ones, still in ``controller``) in its configured safe state and
    wait (real time, bounded by its confirm timeout times its tries) for the reports; what each reached."""
    for plan in plans:
        safe_on = plan.config.safe_state == "on"
        controller.command(plan.id, safe_on, Cause("system", "removed", {"safe_state": plan.config.safe_state,
                                                                           "why": REMOVED_REASON}))
    ids = [plan.id for plan in plans]
    if wait and ids:
        bound = max((plan.timing.retries + 1) * plan.timing.confirm_ms / 1000 for plan in plans) + 1.0
        deadline = time.monotonic() + bound
        while any(controller.driver(i).awaiting for i in ids) and time.monotonic() < deadline:
            controller.wait_idle(min(0.5, max(0.0, deadline - time.monotonic())))
            controller.drive(ids)  # repeats and failures fall due in the controller's (real) time
    out = []
    for plan in plans:
        driver, safe_on = controller.driver(plan.id), plan.config.safe_state == "on"
        reported = driver.reported
        out.append(Released(plan.id, safe_on, not driver.awaiting and reported is not None and reported.on == safe_on))
    return out


def record_changes(records: ControlRecords | None, changes: ActuatorChanges, released: Sequence[Released],
                   now_ms: int, *, config_sha256: str = "") -> None:
    """One audit entry per device added, changed (with the keys) or removed (with the safe state reached)."""
    if records is None:
        return
    extra = {"config_sha256": config_sha256} if config_sha256 else {}
    for ident in changes.added:
        records.record(now_ms, ident, "system", {"event": "added", "reason": "reload", **extra})
    for ident in changes.changed:
        records.record(now_ms, ident, "system", {"event": "reconfigured", "reason": "reload",
                                                 "keys": list(changes.keys.get(ident, ())), **extra})
    for item in released:
        records.record(now_ms, item.actuator, "system", {
            "event": "removed", "reason": REMOVED_REASON, "safe_state": "on" if item.safe_on else "off",
            "confirmed": item.confirmed, **extra})
