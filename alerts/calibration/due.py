"""When an instrument's calibration falls due, and the calibration table of reports and the sensors page.

An instrument's **last calibration** is its recorded calibration with the latest date (``archmon calibration
add``); without one, the latest ``calibrated_on`` of its ``[sensors.calibration.*]`` config tables. It is
**due** on that date plus the interval (``[alerts.calibration] interval_months``, default 12, per sensor
overridable; a day missing in the month, 31 March + 1 month, falls on the month's last day), from 00:00 in
the site's zone; it is **due soon** from ``warn_before_days`` (default 30) days before. Instruments that
need calibrating are those measuring temperature or humidity, unless ``[alerts.calibration.sensors.<id>]
required`` says otherwise.
"""

from __future__ import annotations

import calendar
import datetime as dt
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from alerts.settings import CalibrationSettings
from alerts.site import configured_calibration, load_settings
from alerts.store._calibration import CalibrationRecord, read_latest
from archmon.config import Config
from archmon.sqlite import connect

__all__ = ["CalibrationRow", "CalibrationStatus", "DueDates", "LastCalibration", "add_months", "calibration_rows",
           "calibration_table", "due_dates", "last_calibration", "local_day", "read_calibration_table"]

DAY_MS = 86_400_000
CalibrationStatus = Literal["ok", "due_soon", "overdue", "never", "not_required"]
"""``ok``; ``due_soon`` (inside the warning days); ``overdue`` (from the due date on); ``never`` (needs calibrating,
none on record); ``not_required`` (no calibration needed and none on record)."""


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus ``months`` calendar months; a day the target month lacks becomes its last day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def local_day(ts_ms: int, tz: ZoneInfo) -> dt.date:
    """The calendar day of ``ts_ms`` in the site's zone."""
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz).date()


def _midnight_ms(day: dt.date, tz: ZoneInfo) -> int:
    return int(dt.datetime.combine(day, dt.time(), tzinfo=tz).timestamp() * 1000)


class DueDates(NamedTuple):
    """When one calibration runs out.

    Attributes:
        due_on: the date the next calibration is due.
        warn_from_ms: 00:00 (site zone) ``warn_before_days`` before it: due soon from then.
        due_ms: 00:00 (site zone) of ``due_on``: overdue from then.
    """

    due_on: dt.date
    warn_from_ms: int
    due_ms: int

    def status(self, at_ms: int) -> Literal["ok", "due_soon", "overdue"]:
        """The calibration's status at ``at_ms``."""
        return "overdue" if at_ms >= self.due_ms else "due_soon" if at_ms >= self.warn_from_ms else "ok"

    def next_change_ms(self, at_ms: int) -> int | None:
        """When the status seen at ``at_ms`` changes next (None: overdue stays overdue)."""
        return self.warn_from_ms if at_ms < self.warn_from_ms else self.due_ms if at_ms < self.due_ms else None

    def days_left(self, at_ms: int) -> float:
        """Days from ``at_ms`` to the due time (negative: overdue for so long)."""
        return round((self.due_ms - at_ms) / DAY_MS, 2)


def due_dates(last_on: dt.date, interval_months: int, warn_before_days: int, tz: ZoneInfo) -> DueDates:
    """The due dates of a calibration made on ``last_on`` (see the module docstring)."""
    due_on = add_months(last_on, interval_months)
    return DueDates(due_on, _midnight_ms(due_on - dt.timedelta(days=warn_before_days), tz), _midnight_ms(due_on, tz))


class LastCalibration(NamedTuple):
    """An instrument's last calibration.

    Attributes:
        calibrated_on: its date.
        certificate: its certificate number (None: the config names none).
        source: ``record`` (``archmon calibration add``) or ``config`` (``[sensors.calibration]``).
        record_id: the record's id (``record`` only).
    """

    calibrated_on: dt.date
    certificate: str | None
    source: Literal["record", "config"]
    record_id: int | None = None


def last_calibration(record: CalibrationRecord | None, configured: Any) -> LastCalibration | None:
    """The last calibration from the latest record, else from the config's ``ConfiguredCalibration``."""
    if record is not None:
        return LastCalibration(record.calibrated_on, record.certificate, "record", record.id)
    if configured is not None:
        return LastCalibration(configured.calibrated_on, configured.certificate, "config")
    return None


@dataclass(frozen=True, slots=True)
class CalibrationRow:
    """One instrument in the calibration table (reports, the sensors page).

    Attributes:
        instrument: the sensor id; name: its configured name; room: its room id; kind: its configured kind.
        last_calibrated_on: date of its last calibration (None: none on record).
        certificate: that calibration's certificate number.
        source: where the last calibration comes from (``record``, ``config``; None: none).
        interval_months: its calibration interval.
        due_on: the date the next calibration is due (None: no calibration on record).
        status: see :data:`CalibrationStatus`.
        overdue: the calibration has run out, or an instrument that needs calibrating has none on record.
        days_left: days from ``at_ms`` to the due time (negative: overdue; None: no due date).
    """

    instrument: str
    name: str
    room: str
    kind: str
    last_calibrated_on: dt.date | None
    certificate: str | None
    source: Literal["record", "config"] | None
    interval_months: int
    due_on: dt.date | None
    status: CalibrationStatus
    overdue: bool
    days_left: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (dates as ``YYYY-MM-DD``)."""
        return {"instrument": self.instrument, "name": self.name, "room": self.room, "kind": self.kind,
                "last_calibrated_on": self.last_calibrated_on.isoformat() if self.last_calibrated_on else None,
                "certificate": self.certificate, "source": self.source, "interval_months": self.interval_months,
                "due_on": self.due_on.isoformat() if self.due_on else None, "status": self.status,
                "overdue": self.overdue, "days_left": self.days_left}


def calibration_rows(config: Config, latest: Mapping[str, CalibrationRecord], at_ms: int, *,
                     settings: CalibrationSettings | None = None) -> list[CalibrationRow]:
    """The calibration table at ``at_ms`` from each sensor's latest record (in config order).

    Lists every enabled sensor that needs calibrating or has a calibration on record.

    Args:
        config: the site configuration.
        latest: each sensor's latest record (``read_latest``).
        at_ms: the moment the statuses are for.
        settings: the ``[alerts.calibration]`` settings (default: read from ``config``).

    Raises:
        ConfigError: invalid ``[alerts]`` settings (when ``settings`` is not given).
    """
    terms = settings if settings is not None else load_settings(config).calibration
    tz = config.site.tz
    rows = []
    for sensor in config.sensors:
        if not sensor.enabled:
            continue
        last = last_calibration(latest.get(sensor.id), configured_calibration(sensor))
        required = terms.required(sensor.id, sensor.kind)
        if last is None and not required:
            continue
        months = terms.interval_for(sensor.id)
        if last is None:
            rows.append(CalibrationRow(sensor.id, sensor.name, sensor.room, sensor.kind, None, None, None, months,
                                       None, "never", True, None))
            continue
        dates = due_dates(last.calibrated_on, months, terms.warn_before_days, tz)
        status = dates.status(at_ms)
        rows.append(CalibrationRow(sensor.id, sensor.name, sensor.room, sensor.kind, last.calibrated_on,
                                   last.certificate, last.source, months, dates.due_on, status, status == "overdue",
                                   dates.days_left(at_ms)))
    return rows


def read_calibration_table(conn: sqlite3.Connection, config: Config, at_ms: int) -> list[CalibrationRow]:
    """:func:`calibration_rows` from the records on an open connection (the dashboard's read pool): the last
    calibration is the latest dated on or before ``at_ms``'s day in the site's zone (a report of a past
    period shows the instruments as they stood at its end)."""
    return calibration_rows(config, read_latest(conn, until=local_day(at_ms, config.site.tz)), at_ms)


def calibration_table(db_path: Path | str, config: Config, at_ms: int) -> list[CalibrationRow]:
    """The calibration table of the site at ``at_ms`` (for reports): see :class:`CalibrationRow`.

    Args:
        db_path: the shared SQLite file (read-only; a missing file or one without records reads as no
            records: instruments are then listed from the config alone).
        config: the site configuration.
        at_ms: the moment the statuses are for (a report's end, or now).

    Raises:
        ConfigError: invalid ``[alerts]`` settings.
    """
    path = Path(db_path)
    if not path.is_file():
        return calibration_rows(config, {}, at_ms)
    conn = connect(path, readonly=True)
    try:
        return read_calibration_table(conn, config, at_ms)
    finally:
        conn.close()
