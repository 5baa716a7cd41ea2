"""The climate-control part of the compliance report: per switched device its run hours and starts, per loop
the share of time the followed quantity was inside the band (issue 12, point 4).

Run time and starts come from the switch log (``control_switches``, every confirmed change of a device's
state, kept forever; :class:`alerts.control.ControlRecords`), so any past period is reported whether or not
archmon runs now; time after the report's moment is not counted. The share of time in band comes from the
same hour summaries as the room's ``in_band_pct`` (:class:`~dashboards.reports.quantities.SensorSlice`),
restricted to the sensors the loop follows: covered time in band over covered time, added up over those
sensors (with one followed sensor this is exactly the time the loop's input was in band; with several it
is their time-weighted share, not the time their mean or worst value was: summaries do not keep how the
sensors' readings lined up in time). Nothing here reads raw readings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from alerts.control import ActuatorPlan, ControlRecords, load_plans
from archmon.config import Config
from dashboards.reports.coverage import Days
from dashboards.reports.model import ControlledDevice, DayControl
from dashboards.reports.quantities import SensorSlice

__all__ = ["ControlSource", "held_band", "room_control"]

HOUR_MS = 3_600_000


class ControlSource:
    """The site's actuators and their records for one report (read-only; nothing when there are none).

    Args:
        config: the site's configuration (every ``[[actuators]]`` table, disabled ones too: a device
            disabled now may have run in the period).
        db_path: the shared file (None: no records, every device reported as never on).

    Raises:
        ConfigError: the ``[[actuators]]`` tables have problems (as ``archmon check-config`` lists them).
    """

    def __init__(self, config: Config, db_path: Path | None) -> None:
        self.plans: list[ActuatorPlan] = load_plans(config, disabled=True) if config.actuators else []
        self.records = ControlRecords.open_readonly(db_path) if self.plans and db_path is not None else None

    def close(self) -> None:
        """Close the records."""
        if self.records is not None:
            self.records.close()

    def of_room(self, room: str) -> list[ActuatorPlan]:
        """The room's devices, in configuration order."""
        return [plan for plan in self.plans if plan.config.room == room]


def held_band(slices: Sequence[SensorSlice], sensors: Sequence[str], lo: int, hi: int) -> tuple[float, float]:
    """``(covered_ms, in_band_ms)`` of the given sensors' hours starting in ``[lo, hi)``: each hour's covered
    time, less its covered time out of band (as the room's ``in_band_pct``: each reading weighs the time it
    covers)."""
    wanted = set(sensors)
    covered = in_band = 0.0
    for piece in slices:
        if piece.sensor not in wanted:
            continue
        for row in piece.rows:
            if not lo <= row.start_ms < hi or not row.count:
                continue
            weight = piece.coverage.hours.get(row.start_ms, 0)
            covered += weight
            in_band += max(0, weight - piece.out_of_band.get(row.start_ms, 0))
    return covered, in_band


def room_control(source: ControlSource, room: str, slices: Mapping[str, Sequence[SensorSlice]], days: Days, *,
                 count_hi: int) -> tuple[tuple[ControlledDevice, ...], list[dict[str, DayControl]]]:
    """The room's devices over the period of ``days`` and, per day, each device's run hours and starts.

    Args:
        source: the actuators and their records.
        room: the room's id.
        slices: per quantity, the room's sensor slices (``build``'s).
        days: the period's days (midnights, the last one the period's end).
        count_hi: the report's moment, or the period's end if earlier: later time is not counted.
    """
    starts = days.starts
    lo, hi = starts[0], starts[-1]
    end = min(hi, count_hi)
    records = source.records
    devices: list[ControlledDevice] = []
    daily: list[dict[str, DayControl]] = [{} for _ in range(len(starts) - 1)]
    for plan in source.of_room(room):
        table = plan.config
        ident = plan.id
        if records is not None and end > lo:
            run_ms = records.run_ms(ident, lo, end)
            counts = records.event_counts(ident, lo, end)
            started, changes = records.starts(ident, lo, end), records.changes(ident, lo, end)
            for i, day_lo in enumerate(starts[:-1]):
                day_hi = min(starts[i + 1], end)
                if day_hi <= day_lo:
                    daily[i][ident] = DayControl(0.0, 0)
                    continue
                daily[i][ident] = DayControl(round(records.run_ms(ident, day_lo, day_hi) / HOUR_MS, 3),
                                             records.starts(ident, day_lo, day_hi))
        else:
            run_ms, counts, started, changes = 0, {}, 0, 0
            for row in daily:
                row[ident] = DayControl(0.0, 0)
        followed = [sensor.id for sensor in plan.sensors]
        covered, in_band = held_band(slices.get(table.quantity, ()), followed, lo, hi)
        devices.append(ControlledDevice(
            actuator=ident, name_zh=table.name_zh, name_en=table.name_en, kind=table.kind, controls=table.controls,
            quantity=table.quantity, enabled=table.enabled, start_at=plan.loop.start_at, stop_at=plan.loop.stop_at,
            band_low=plan.band.low, band_high=plan.band.high, sensors=tuple(followed), run_s=run_ms / 1000,
            run_hours=round(run_ms / HOUR_MS, 3), starts=started, switches=changes,
            commands=counts.get("command", 0), failures=counts.get("failed", 0), overrides=counts.get("override", 0),
            covered_s=round(covered / 1000, 3), in_band_s=round(in_band / 1000, 3),
            held_band_pct=None if covered <= 0 else round(100.0 * in_band / covered, 3)))
    return tuple(devices), daily
