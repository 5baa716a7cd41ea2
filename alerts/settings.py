"""Site-level alert settings: the ``[alerts]`` table of ``archmon.toml``, validated with pydantic.

Environmental limits live in the standard profiles (see :mod:`alerts.profiles`); this table holds what
is about the site: rule switches and severities, stale/battery/stuck/door parameters, working hours and
holidays, repeat and escalation intervals, and site-wide profile overrides.

Example::

    [alerts]
    language = "zh"
    close_after_s = 3600
    [alerts.rules.rate]
    enabled = false
    [alerts.rules.stale]
    close_after_s = 600
    [alerts.stale]
    factor = 3
    [alerts.working_hours]
    start = "08:30"
    end = "17:30"
    holidays = [2024-10-01, 2024-10-02]
    [alerts.profiles.paper]
    humidity = { high = 65 }
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "SEVERITIES",
    "AccessSettings",
    "AlertSettings",
    "BatterySettings",
    "CalibrationSettings",
    "DoorSettings",
    "NotifySettings",
    "RuleSettings",
    "SensorCalibration",
    "Severity",
    "StabilitySettings",
    "StaleSettings",
    "StuckSettings",
    "WorkingHours",
    "stale_after_ms",
    "stale_settings",
]

Severity = Literal["critical", "major", "minor", "warning"]
SEVERITIES: tuple[Severity, ...] = ("critical", "major", "minor", "warning")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleSettings(_Model):
    """Switch a rule off, change its severity or how long its cleared alerts stay open.

    Attributes:
        enabled: whether the rule runs at all.
        severity: severity of its alerts (None: the rule's default).
        close_after_s: this rule's cleared alerts close after so many seconds (None: the site's
            ``alerts.close_after_s``).
    """

    enabled: bool = True
    severity: Severity | None = None
    close_after_s: float | None = Field(default=None, ge=0)


class StaleSettings(_Model):
    """A sensor is stale after ``factor`` × its expected interval without a reading (at least ``min_timeout_s``)."""

    factor: float = Field(default=3.0, gt=1)
    min_timeout_s: float = Field(default=0.0, ge=0)


def stale_after_ms(expected_interval_s: float, stale: StaleSettings) -> int:
    """How long a sensor may stay silent before it is stale: ``factor`` × its expected interval, at least
    ``min_timeout_s``. The one definition, used by the stale rule and by ``archmon status``."""
    return int(max(stale.factor * expected_interval_s, stale.min_timeout_s) * 1000)


def stale_settings(config: Any) -> StaleSettings:
    """The ``[alerts.stale]`` table of a configuration (defaults where it is absent).

    Raises:
        pydantic.ValidationError: the table is invalid (``check-config`` names the key).
    """
    table = config.alerts.get("stale", {}) if isinstance(config.alerts, dict) else {}
    return StaleSettings.model_validate(table)


class BatterySettings(_Model):
    """Battery low below ``low`` %, cleared at ``low + clear_margin``."""

    low: float = Field(default=20.0, gt=0, le=100)
    clear_margin: float = Field(default=5.0, ge=0)


class StuckSettings(_Model):
    """A quantity that always varies reports the same value (within ``tolerance``) for ``hours``."""

    hours: float = Field(default=6.0, gt=0)
    tolerance: float = Field(default=0.0, ge=0)
    quantities: list[str] = Field(default_factory=lambda: ["temperature", "humidity"])


class StabilitySettings(_Model):
    """The day verdict (24 h stability) needs data: readings spanning at least ``min_coverage`` of the day
    (first to last reading, as a fraction of the local day); a day with less is "insufficient data"."""

    min_coverage: float = Field(default=0.8, ge=0, le=1)


class AccessSettings(_Model):
    """The unregistered-entry rule (``[alerts.access]``): an access session opened at most ``grace_s`` after a
    door opening still registers it (the keeper opens the door, then the session at the terminal inside)."""

    grace_s: float = Field(default=60.0, ge=0, le=3600)


class SensorCalibration(_Model):
    """One sensor's own calibration terms (``[alerts.calibration.sensors.<id>]``).

    Attributes:
        interval_months: its calibration interval (None: the site's).
        required: whether it must be calibrated at all (None: if it measures temperature or humidity).
    """

    interval_months: int | None = Field(default=None, ge=1, le=120)
    required: bool | None = None


CALIBRATED_KINDS = frozenset({"temperature_humidity", "temperature", "humidity", "multi"})
"""Sensor kinds that measure temperature or humidity: instruments that need calibrating by default."""


class CalibrationSettings(_Model):
    """The calibration-due rule (``[alerts.calibration]``, see ``docs/calibration.md``).

    Attributes:
        interval_months: months from a calibration to the next one due (1987 rules: periodic calibration).
        warn_before_days: the warning comes this many days before the due date.
        uncalibrated: one site-wide warning while an instrument that needs calibrating has no calibration on
            record (neither ``archmon calibration add`` nor a ``calibrated_on`` in its ``[sensors.calibration]``).
        sensors: per sensor id, its own interval or whether it needs calibrating.
    """

    interval_months: int = Field(default=12, ge=1, le=120)
    warn_before_days: int = Field(default=30, ge=0, le=365)
    uncalibrated: bool = True
    sensors: dict[str, SensorCalibration] = Field(default_factory=dict)

    def interval_for(self, sensor_id: str) -> int:
        """The sensor's calibration interval in months."""
        own = self.sensors.get(sensor_id)
        return own.interval_months if own is not None and own.interval_months is not None else self.interval_months

    def required(self, sensor_id: str, kind: str) -> bool:
        """Whether the sensor must be calibrated (its own setting, else whether its kind measures T or RH)."""
        own = self.sensors.get(sensor_id)
        return own.required if own is not None and own.required is not None else kind in CALIBRATED_KINDS


class DoorSettings(_Model):
    """A door open longer than ``open_max_s`` raises an alert."""

    open_max_s: float = Field(default=600.0, gt=0)


class WorkingHours(_Model):
    """Site working hours in the site's time zone, with holidays and make-up working days (调休).

    Attributes:
        start: ``HH:MM`` start of the working day.
        end: ``HH:MM`` end of the working day (before ``start``: the shift ends the next morning).
        weekdays: ISO weekdays that are working days (1 = Monday).
        holidays: dates that are not working days even on a weekday.
        workdays: dates that are working days even on a weekend (调休上班).
    """

    start: dt.time = dt.time(8, 30)
    end: dt.time = dt.time(17, 30)
    weekdays: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5])
    holidays: list[dt.date] = Field(default_factory=list)
    workdays: list[dt.date] = Field(default_factory=list)

    @field_validator("weekdays")
    @classmethod
    def _iso_weekdays(cls, value: list[int]) -> list[int]:
        bad = [day for day in value if not 1 <= day <= 7]
        if bad:
            raise ValueError(f"weekdays are 1 (Monday) .. 7 (Sunday), got {bad}")
        return value

    def is_working_time(self, moment: dt.datetime) -> bool:
        """Whether a local (site zone) time falls inside working hours.

        ``start`` after ``end`` is a shift across midnight (night shift, e.g. 22:00-06:00): the part after
        midnight belongs to the shift that started the day before, so that day must be a working day.
        """
        now = moment.time()
        if self.start <= self.end:
            if not self.start <= now < self.end:
                return False
            day = moment.date()
        elif now >= self.start:
            day = moment.date()
        elif now < self.end:
            day = moment.date() - dt.timedelta(days=1)
        else:
            return False
        if day in self.workdays:
            return True
        return day.isoweekday() in self.weekdays and day not in self.holidays


class NotifySettings(_Model):
    """Repeat and escalation timers for notification requests.

    Attributes:
        repeat_s: per severity, repeat an unacknowledged active alert every so many seconds (0: never).
        escalation_after_s: an alert still unacknowledged this long after it fired escalates to level
            1, 2, ... (one entry per level).
        escalate: severities that escalate at all.
    """

    repeat_s: dict[Severity, float] = Field(
        default_factory=lambda: {"critical": 900.0, "major": 3600.0, "minor": 0.0, "warning": 0.0}
    )
    escalation_after_s: list[float] = Field(default_factory=lambda: [1800.0, 3600.0])
    escalate: list[Severity] = Field(default_factory=lambda: ["critical", "major"])

    @field_validator("escalation_after_s")
    @classmethod
    def _increasing(cls, value: list[float]) -> list[float]:
        if any(v <= 0 for v in value) or value != sorted(value):
            raise ValueError(f"must be positive and increasing, got {value}")
        return value


class AlertSettings(_Model):
    """The validated ``[alerts]`` table.

    Attributes:
        language: language of alert titles (None: the site's language).
        tick_s: period of the live service's timer tick (delays, stale detection, daily verdicts).
        close_after_s: a cleared alert that nobody acknowledged closes after this many seconds without
            firing again (0: at the clear); until then the condition returning re-opens the same alert.
        rules: per rule name (see ``alerts.rules.RULES``): enabled and severity.
        profiles: site-wide overrides per profile id, merged under each room's own overrides.
    """

    language: Literal["zh", "en"] | None = None
    tick_s: float = Field(default=1.0, gt=0, le=60)
    close_after_s: float = Field(default=3600.0, ge=0)
    rules: dict[str, RuleSettings] = Field(default_factory=dict)
    stale: StaleSettings = StaleSettings()
    battery: BatterySettings = BatterySettings()
    stuck: StuckSettings = StuckSettings()
    stability: StabilitySettings = StabilitySettings()
    door: DoorSettings = DoorSettings()
    access: AccessSettings = AccessSettings()
    calibration: CalibrationSettings = CalibrationSettings()
    working_hours: WorkingHours = WorkingHours()
    notify: NotifySettings = NotifySettings()
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def rule(self, name: str) -> RuleSettings:
        """Settings of one rule (defaults if the site does not mention it)."""
        return self.rules.get(name, RuleSettings())

    def close_after_ms(self, name: str) -> int:
        """How long a cleared alert of rule ``name`` stays open (ms): the rule's setting, else the site's."""
        own = self.rule(name).close_after_s
        return int((self.close_after_s if own is None else own) * 1000)
