"""The compliance report's data: one named type per part, computed by :mod:`dashboards.reports.build` from the
store's summaries (never from raw readings) and rendered by the JSON and CSV writers (a PDF renderer and the
monthly 温湿度登记表 read the same types). The parts drawn from the site's records (duty readings, alerts,
access, calibrations) are in :mod:`dashboards.reports.model_records` and exported here too. The JSON keys of
each part are in ``docs/reports.md``.

Times are UTC epoch milliseconds (``*_ms``), dates are calendar days in the site's zone, durations are in
seconds (``*_s``); a value that could not be computed (no data, out-of-range input) is None, never a made-up
number.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from dashboards.reports.model_records import (
    AccessSessionEntry,
    AccessSummary,
    AlertComment,
    AlertEntry,
    CalibrationEntry,
    CalibrationRecord,
    DutyCheck,
    DutySummary,
)

__all__ = [
    "AccessSessionEntry",
    "AccessSummary",
    "AlertComment",
    "AlertEntry",
    "CalibrationEntry",
    "CalibrationRecord",
    "ComplianceReport",
    "ControlledDevice",
    "DailyRow",
    "DayControl",
    "DayQuantity",
    "DutyCheck",
    "DutySummary",
    "Excursion",
    "Preservation",
    "QuantityStats",
    "ReportPeriod",
    "RoomReport",
    "Verdict",
]

Verdict = Literal["good", "ok", "risk"]


@dataclass(frozen=True, slots=True)
class ReportPeriod:
    """Whole calendar days ``from_date`` … ``to_date`` (both included) in zone ``tz``.

    Attributes:
        start_ms: local midnight starting ``from_date``; end_ms: local midnight after ``to_date`` (excluded).
    """

    from_date: dt.date
    to_date: dt.date
    tz: str
    start_ms: int
    end_ms: int

    @property
    def seconds(self) -> int:
        """Length of the period in seconds (DST days included as they are)."""
        return (self.end_ms - self.start_ms) // 1000

    @property
    def days(self) -> int:
        """Number of calendar days."""
        return (self.to_date - self.from_date).days + 1


@dataclass(frozen=True, slots=True)
class Excursion:
    """A stretch of one sensor's readings outside the band (on one side), merged with the next one when less
    than the band's clear delay apart.

    Attributes:
        sensor: the sensor.
        side: ``high`` (above the band) or ``low``.
        start_ms: the first reading out of band; end_ms: the last reading out of band.
        duration_s: time covered by the out-of-band readings (time-weighted, as ``in_band_pct``).
        extreme: the highest (``high``) or lowest (``low``) value reached.
        readings: out-of-band readings in it.
    """

    sensor: str
    side: Literal["high", "low"]
    start_ms: int
    end_ms: int
    duration_s: float
    extreme: float
    readings: int


@dataclass(frozen=True, slots=True)
class QuantityStats:
    """One quantity (temperature or humidity) of one room over the period.

    Attributes:
        quantity: ``temperature`` or ``humidity``; unit: ``°C`` or ``%RH``.
        band_low, band_high: the profile's band (None: no limit on that side).
        stability_limit: the 24 h stability limit (None: not judged).
        sensors: the sensors counted.
        readings: readings stored in the period.
        expected_s: time the sensors were expected to report (their time in this room within the period,
            up to the time of the report); covered_s: time covered by readings (a reading covers the time
            until the next, at most 2 × the sensor's expected interval).
        completeness_pct: covered_s / expected_s.
        min, mean, max: of the readings (mean: arithmetic, of all readings, to 4 decimals).
        in_band_s: covered time inside the band; in_band_pct: in_band_s / covered_s.
        days_in_period, days_with_data, days_sufficient (≥ the sufficient-coverage share), days_stable
            (sufficient days meeting the stability rule as interpreted; None when not judged).
        excursions: out-of-band stretches, oldest first.
    """

    quantity: str
    unit: str
    band_low: float | None
    band_high: float | None
    stability_limit: float | None
    sensors: tuple[str, ...]
    readings: int
    expected_s: float
    covered_s: float
    completeness_pct: float | None
    min: float | None
    mean: float | None
    max: float | None
    in_band_s: float
    in_band_pct: float | None
    days_in_period: int
    days_with_data: int
    days_sufficient: int
    days_stable: int | None
    excursions: tuple[Excursion, ...] = ()


@dataclass(frozen=True, slots=True)
class DayQuantity:
    """One quantity of one room on one day.

    Attributes:
        readings: readings that day; completeness_pct: covered / expected time that day.
        min, mean, max: of the day's readings (mean to 4 decimals: sums of floats depend on their order);
            range: the largest max − min of one sensor (日较差).
        in_band_pct: covered time in band / covered time.
        sufficient: completeness at least the sufficient share; stable: the stability rule met (None: not
            sufficient or not judged).
    """

    readings: int
    completeness_pct: float | None
    min: float | None
    mean: float | None
    max: float | None
    range: float | None
    in_band_pct: float | None
    sufficient: bool
    stable: bool | None


@dataclass(frozen=True, slots=True)
class DayControl:
    """One switched device on one day: hours on and times switched on (from the switch log)."""

    run_hours: float
    starts: int


@dataclass(frozen=True, slots=True)
class DailyRow:
    """One calendar day of one room: the per-day table (CSV rows, the register, range bars).

    Attributes:
        control: per actuator id of the room, its day (empty: the room has no switched device).
    """

    date: dt.date
    quantities: dict[str, DayQuantity]
    control: dict[str, DayControl] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ControlledDevice:
    """One device archmon switches in the room (climate control, ``[[actuators]]``) over the period, and how
    well its loop held the band.

    Attributes:
        actuator: its id; name_zh, name_en: its names; kind: how it is switched (``zigbee2mqtt``...).
        controls: ``humidity_down`` …; quantity: what it follows; enabled: as configured now.
        start_at, stop_at: the set-points; band_low, band_high: the room's band of ``quantity``.
        sensors: the sensors its loop follows.
        run_s, run_hours: time on within the period (up to the time of the report), from the switch log.
        starts: times switched on; switches: state changes of any kind; commands: commands sent;
            failures: times declared not responding; overrides: manual overrides set.
        covered_s: time covered by the followed sensors' readings (as ``QuantityStats.covered_s``, summed
            over those sensors); in_band_s: the part of it inside the band; held_band_pct: in_band_s /
            covered_s (None: no data). From the summaries, never raw readings.
    """

    actuator: str
    name_zh: str
    name_en: str
    kind: str
    controls: str
    quantity: str
    enabled: bool
    start_at: float
    stop_at: float
    band_low: float | None
    band_high: float | None
    sensors: tuple[str, ...]
    run_s: float
    run_hours: float
    starts: int
    switches: int
    commands: int
    failures: int
    overrides: int
    covered_s: float
    in_band_s: float
    held_band_pct: float | None


@dataclass(frozen=True, slots=True)
class Preservation:
    """Preservation metrics of one room from the hourly means of its temperature/humidity sensors.

    Attributes:
        hours: sensor-hours with both a temperature and a humidity mean (two sensors: up to twice the hours).
        twpi_years: time-weighted preservation index; pi_min_years / pi_max_years: the range of hourly PI;
            pi_verdict: the TWPI's band (< 45 risk, 45–75 ok, ≥ 75 good).
        mould_max_exposure_h: longest run of hours in the mould-risk zone (RH ≥ the profile's mould RH
            within its temperature range).
        emc_min_pct / emc_max_pct: equilibrium moisture content range; emc_mechanical: risk outside
            5–12.5 %; emc_corrosion: by the maximum, < 7 good, 7–10.5 ok, ≥ 10.5 risk.
    """

    hours: int
    twpi_years: float | None
    pi_min_years: float | None
    pi_max_years: float | None
    pi_verdict: Verdict | None
    mould_max_exposure_h: float | None
    emc_min_pct: float | None
    emc_max_pct: float | None
    emc_mechanical: Verdict | None
    emc_corrosion: Verdict | None


@dataclass(frozen=True, slots=True)
class RoomReport:
    """Everything the report says about one room."""

    id: str
    name_zh: str
    name_en: str
    profile: str
    profile_name_zh: str
    profile_name_en: str
    profile_source: str
    stability_interpretation: str
    quantities: dict[str, QuantityStats]
    daily: tuple[DailyRow, ...]
    alerts: tuple[AlertEntry, ...]
    access: AccessSummary
    calibration: tuple[CalibrationEntry, ...]
    duty: DutySummary
    preservation: Preservation
    control: tuple[ControlledDevice, ...] = ()


@dataclass(frozen=True, slots=True)
class ComplianceReport:
    """A compliance report for a period and a set of rooms.

    Attributes:
        site: the site's name; lang: ``zh`` or ``en`` (names and labels; keys never change).
        generated_ms: when it was computed; generated_by: who asked for it.
        sufficient_pct: the daily coverage that makes a day count as having enough data.
    """

    site: str
    period: ReportPeriod
    generated_ms: int
    generated_by: str
    lang: str
    sufficient_pct: float
    rooms: tuple[RoomReport, ...] = field(default_factory=tuple)
