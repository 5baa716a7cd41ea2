"""What a period's report says about each switched device: run hours, switches, overrides, failures.

Built from the switch log and the audit trail only (``alerts.control.records``), so a report can be made
for any past period whether or not archmon runs; the compliance report (``dashboards``) and
``archmon control status`` read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from alerts.control.plan import ActuatorPlan
from alerts.control.records import ControlRecords

__all__ = ["DeviceSummary", "device_summaries"]


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    """One device over one period.

    Attributes:
        actuator, room, label, controls: which device.
        run_hours: hours on within the period.
        starts: times switched on (``ControlRecords.starts``).
        switches: confirmed state changes (by command, at the device, read back changed).
        commands: commands sent (each confirmed or failed); failures: times it was declared not responding.
        overrides: manual overrides set in the period.
    """

    actuator: str
    room: str
    label: str
    controls: str
    run_hours: float
    starts: int
    switches: int
    commands: int
    failures: int
    overrides: int


def device_summaries(records: ControlRecords, plans: list[ActuatorPlan], start_ms: int,
                     end_ms: int) -> list[DeviceSummary]:
    """Every device's summary for ``[start_ms, end_ms)``, in configuration order."""
    out = []
    for plan in plans:
        counts = records.event_counts(plan.id, start_ms, end_ms)
        out.append(DeviceSummary(
            plan.id, plan.config.room, plan.config.label, plan.config.controls,
            round(records.run_ms(plan.id, start_ms, end_ms) / 3_600_000, 2), records.starts(plan.id, start_ms, end_ms),
            records.changes(plan.id, start_ms, end_ms), counts.get("command", 0), counts.get("failed", 0),
            counts.get("override", 0)))
    return out
