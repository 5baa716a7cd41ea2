"""The calibration table: each instrument of a room, its last calibration, certificate, due date and whether it
was overdue by the end of the period.

Records come from the sensors' ``calibration`` tables in the config (``calibrated_on``, ``certificate``) and
from the calibration history of the state store (``archmon calibration add``; ``source = "records"``, which
wins over a config date of the same day). The interval is the alert rule's (``[alerts.calibration]
interval_months``, per sensor where set), so the report and the "calibration due" alert agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from alerts.calibration import add_months
from archmon.config import Config, SensorConfig
from dashboards.reports.model import CalibrationEntry, CalibrationRecord

__all__ = ["calibration_table", "config_records", "recorded_calibrations"]

_MEASURED = {"temperature_humidity": ("temperature", "humidity"), "temperature": ("temperature",),
             "humidity": ("humidity",)}


def config_records(config: Config) -> list[CalibrationRecord]:
    """The calibrations the config states (sensors' ``calibration.<quantity>.calibrated_on``); a date that is
    not ISO ``YYYY-MM-DD`` is skipped (the table then shows no record for it)."""
    out = []
    for sensor in config.sensors:
        for quantity, cal in sensor.calibration.items():
            if not cal.calibrated_on:
                continue
            try:
                day = dt.date.fromisoformat(cal.calibrated_on)
            except ValueError:
                continue
            out.append(CalibrationRecord(sensor.id, quantity, day, cal.certificate, cal.offset, None, "config"))
    return out


def recorded_calibrations(alerts: Any) -> list[CalibrationRecord]:
    """The calibration history of the state store (an ``AlertReader``; None: none) as report records, one per
    quantity a record corrects (temperature and humidity)."""
    if alerts is None or not hasattr(alerts, "calibration_records"):
        return []
    out = []
    for rec in alerts.calibration_records():
        for quantity, offset in (("temperature", rec.offset_temperature), ("humidity", rec.offset_humidity)):
            out.append(CalibrationRecord(rec.sensor, quantity, rec.calibrated_on, rec.certificate, offset, rec.by,
                                         "records"))
    return out


def calibration_table(sensors: Sequence[SensorConfig], records: Iterable[CalibrationRecord], *,
                      interval_months: int | Callable[[str], int],
                      last_day: dt.date) -> tuple[CalibrationEntry, ...]:
    """One row per measuring quantity of each sensor (temperature/humidity; other quantities when they have a
    record), with its newest calibration on or before ``last_day`` (a recorded one over a config date of the
    same day); ``interval_months`` is a number or a function of the sensor id. Due dates use the alert rule's month
    arithmetic (:func:`alerts.calibration.add_months`), so report and alert name the same day."""
    interval = interval_months if callable(interval_months) else (lambda _sensor: interval_months)
    newest: dict[tuple[str, str], CalibrationRecord] = {}
    for record in records:
        key = (record.sensor, record.quantity)
        if record.calibrated_on > last_day:
            continue
        old = newest.get(key)
        if old is None or (record.calibrated_on, record.source == "records") >= (old.calibrated_on,
                                                                                 old.source == "records"):
            newest[key] = record
    out = []
    for sensor in sorted(sensors, key=lambda s: s.id):
        quantities = set(_MEASURED.get(sensor.kind, ())) | {q for s, q in newest if s == sensor.id}
        for quantity in sorted(quantities):
            record = newest.get((sensor.id, quantity))
            due = None if record is None else add_months(record.calibrated_on, interval(sensor.id))
            out.append(CalibrationEntry(
                sensor=sensor.id, name=sensor.name, quantity=quantity,
                last_calibrated=None if record is None else record.calibrated_on,
                certificate=None if record is None else record.certificate, due=due,
                overdue=None if due is None else due <= last_day, source=None if record is None else record.source))
    return tuple(out)
