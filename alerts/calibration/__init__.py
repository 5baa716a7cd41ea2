"""Calibration records (校准记录): recorded calibrations, when they fall due, and the calibration table.

- :mod:`alerts.calibration.records`: :func:`record_calibration` (``archmon calibration add``, audited) and
  :class:`RecordedCorrections` (the ingest pipeline's view of the history);
- :mod:`alerts.calibration.due`: due dates and :func:`calibration_table` (reports, the sensors page);
- the rule ``calibration_due`` (:mod:`alerts.rules.calibration_due`), attached by :func:`attach_calibrations`;
- what a record does to readings: :mod:`collector.calibration`. See ``docs/calibration.md``.
"""

from __future__ import annotations

from typing import Any

from alerts.calibration.due import (
    CalibrationRow,
    CalibrationStatus,
    DueDates,
    LastCalibration,
    add_months,
    calibration_rows,
    calibration_table,
    due_dates,
    read_calibration_table,
)
from alerts.calibration.records import CalibrationError, RecordedCorrections, measured_quantities, record_calibration
from alerts.store._calibration import CalibrationRecord

__all__ = ["CalibrationError", "CalibrationRecord", "CalibrationRow", "CalibrationStatus", "DueDates",
           "LastCalibration", "RecordedCorrections", "add_months", "attach_calibrations", "calibration_rows",
           "calibration_table", "due_dates", "measured_quantities", "read_calibration_table", "record_calibration"]


def attach_calibrations(engine: Any) -> int:
    """Give the engine's calibration-due rule the records of the engine's own store; returns how many rules
    took them.

    The rule is inert until then (a replay of old readings raises no calibration alerts). The live service
    attaches it once, after building its first engine; a reload's engine takes it over (``adopt``).
    """
    from alerts.rules.calibration_due import CalibrationDueRule

    count = 0
    for rule in getattr(engine, "rules", []):
        if isinstance(rule, CalibrationDueRule):
            rule.attach(engine.store)
            count += 1
    return count
