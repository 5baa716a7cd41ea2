"""The compliance report's parts drawn from the site's records rather than its readings' figures: the duty
readings (值班记录, twice a day), the alerts and how they were handled, the doors and the access register
(三不查阅), the calibrations. Part of :mod:`dashboards.reports.model` (which exports them too); the same
conventions: UTC epoch milliseconds (``*_ms``), local calendar days, seconds (``*_s``), None for what could not
be computed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AccessSessionEntry",
    "AccessSummary",
    "AlertComment",
    "AlertEntry",
    "CalibrationEntry",
    "CalibrationRecord",
    "DutyCheck",
    "DutySummary",
]


@dataclass(frozen=True, slots=True)
class DutyCheck:
    """One duty reading time of one day (the 1987 rule: readings at least twice a day).

    Attributes:
        date: the day; time: the duty time (``HH:MM``, local); scheduled_ms: that instant.
        present: a reading of the room's temperature/humidity sensors within the tolerance of it.
        temperature, humidity: the mean of the local hour holding the nearest reading (None: none).
    """

    date: dt.date
    time: str
    scheduled_ms: int
    present: bool
    temperature: float | None
    humidity: float | None


@dataclass(frozen=True, slots=True)
class DutySummary:
    """The twice-daily logging duty over the period: every duty time up to the report's time."""

    times: tuple[str, ...]
    tolerance_min: float
    expected: int
    present: int
    checks: tuple[DutyCheck, ...]

    @property
    def missing(self) -> int:
        """Duty times without a reading."""
        return self.expected - self.present


@dataclass(frozen=True, slots=True)
class AlertComment:
    """An acknowledgement or comment on an alert (append-only)."""

    time_ms: int
    by: str
    comment: str


@dataclass(frozen=True, slots=True)
class AlertEntry:
    """One alert of the room active at some time in the period, with how it was handled.

    Attributes:
        time_to_ack_s: from the alert becoming active to its acknowledgement (None: not acknowledged).
    """

    id: int
    rule: str
    severity: str
    state: str
    sensor: str | None
    quantity: str | None
    title_zh: str
    title_en: str
    value: float | None
    limit: float | None
    opened_ms: int
    active_ms: int | None
    acked_ms: int | None
    acked_by: str | None
    cleared_ms: int | None
    closed_ms: int | None
    time_to_ack_s: float | None
    comments: tuple[AlertComment, ...] = ()


@dataclass(frozen=True, slots=True)
class AccessSessionEntry:
    """One registered entry (access register, 三不查阅) overlapping the period."""

    id: int
    people: tuple[str, ...]
    purpose: str
    approval: str
    opened_ms: int
    opened_by: str
    closed_ms: int | None
    closed_by: str | None


@dataclass(frozen=True, slots=True)
class AccessSummary:
    """Doors and the access register of one room over the period.

    Attributes:
        door_sensors: the room's door sensors with data.
        openings: door openings (closed → open) seen in the summaries.
        after_hours_openings: openings outside the site's working hours.
        unregistered_entries: ``unregistered_entry`` alerts (a door opened without an open access session).
        sessions: access sessions overlapping the period, oldest first.
    """

    door_sensors: tuple[str, ...]
    openings: int
    after_hours_openings: int
    unregistered_entries: int
    sessions: tuple[AccessSessionEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class CalibrationRecord:
    """One calibration of one sensor quantity: from the sensor's config today, from the calibration records of
    the state store once they exist (issue 9 point 7; ``source`` says which)."""

    sensor: str
    quantity: str
    calibrated_on: dt.date
    certificate: str | None = None
    offset: float | None = None
    by: str | None = None
    source: Literal["config", "records"] = "config"


@dataclass(frozen=True, slots=True)
class CalibrationEntry:
    """One instrument (sensor quantity) in the calibration table.

    Attributes:
        last_calibrated: the newest calibration on or before the period's last day (None: no record).
        due: last_calibrated + the calibration interval; overdue: due on or before the period's last day
            (None: no record).
    """

    sensor: str
    name: str
    quantity: str
    last_calibrated: dt.date | None
    certificate: str | None
    due: dt.date | None
    overdue: bool | None
    source: str | None
