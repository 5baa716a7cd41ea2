"""Computing a :class:`~dashboards.reports.model.ComplianceReport` from the store's summaries, the alert store
and the access register. Nothing here reads raw readings: a report over years, or after raw retention
deleted the readings, costs what its summaries cost (``bench/bench_report.py``).

Which sensors count for a room: every sensor assigned to it (``sensor_rooms``) at some time of the period,
for that time (a sensor's first assignment starts at its first stored reading: before that it was not
installed as far as archmon knows), plus configured sensors of the room that never stored anything (they
were expected all period and covered nothing).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from alerts.profiles import StandardProfile
from alerts.site import load_settings as load_alert_settings
from alerts.site import room_profiles
from alerts.store import AlertReader
from archmon.config import Config, RoomConfig, SensorConfig
from archmon.errors import ConfigError
from collector.store import RoomAssignment, SqliteStore, SummaryHour, SummaryReader
from dashboards.reports.calibration import calibration_table, config_records, recorded_calibrations
from dashboards.reports.control import ControlSource, room_control
from dashboards.reports.coverage import Days, SeriesCoverage, Span, series_coverage
from dashboards.reports.duty import duty_summary
from dashboards.reports.events import access_summary, alert_log
from dashboards.reports.excursions import BandBins, find_excursions
from dashboards.reports.model import CalibrationRecord, ComplianceReport, DailyRow, ReportPeriod, RoomReport
from dashboards.reports.preservation import preservation
from dashboards.reports.quantities import SensorSlice, quantity_figures
from dashboards.reports.settings import ReportSettings, load_settings

__all__ = ["ReportRequest", "build_report", "report_period"]

HOUR_MS = 3_600_000
QUANTITIES = ("temperature", "humidity")
_MEASURES = {"temperature_humidity": QUANTITIES, "temperature": ("temperature",), "humidity": ("humidity",)}
DEFAULT_INTERVAL_S = 300.0


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """What to report on.

    Attributes:
        from_date, to_date: the first and last calendar day (site zone), both included.
        rooms: room ids (None: every configured room).
        lang: ``zh`` or ``en`` for names and labels.
        generated_by: who asks for it (shown on the cover).
        now_ms: the time of the report (default: now); time after it is not expected to be covered.
    """

    from_date: dt.date
    to_date: dt.date
    rooms: tuple[str, ...] | None = None
    lang: str = "zh"
    generated_by: str = ""
    now_ms: int | None = None


def _midnight(day: dt.date, tz: ZoneInfo) -> int:
    return round(dt.datetime.combine(day, dt.time(0), tzinfo=tz).timestamp() * 1000)


def report_period(from_date: dt.date, to_date: dt.date, tz: ZoneInfo) -> tuple[ReportPeriod, Days, list[dt.date]]:
    """The period, its days' midnights and its dates.

    Raises:
        ConfigError: ``to_date`` before ``from_date``.
    """
    if to_date < from_date:
        raise ConfigError(f"--to ({to_date}) is before --from ({from_date})")
    dates = [from_date + dt.timedelta(days=i) for i in range((to_date - from_date).days + 1)]
    starts = [_midnight(day, tz) for day in dates] + [_midnight(to_date + dt.timedelta(days=1), tz)]
    return ReportPeriod(from_date, to_date, tz.key, starts[0], starts[-1]), Days(starts), dates


def _expected(spans: Sequence[Span], days: Days, lo: int, hi: int) -> dict[int, int]:
    """Per day index, the time inside ``spans`` ∩ ``[lo, hi)``."""
    out: dict[int, int] = {}
    for span in spans:
        a, b = max(lo, span.lo), min(hi, hi if span.hi is None else span.hi)
        while a < b:
            i = days.index(a)
            end = min(b, days.starts[i + 1])
            out[i] = out.get(i, 0) + end - a
            a = end
    return out


def _spans(assignments: Sequence[RoomAssignment], room: str) -> list[Span]:
    return [Span(a.from_ms, a.to_ms) for a in assignments if a.room == room]


class _Builder:
    """One report's computation over one snapshot of the summaries."""

    def __init__(self, config: Config, reader: SummaryReader, settings: ReportSettings, period: ReportPeriod,
                 days: Days, now_ms: int) -> None:
        self.config, self.reader, self.settings = config, reader, settings
        self.period, self.days, self.now_ms = period, days, now_ms
        self.tz = ZoneInfo(period.tz)
        self.sensors = {s.id: s for s in config.sensors}
        self.assignments = reader.assignments()
        self.series = reader.series()

    def _cap_ms(self, sensor: str) -> int:
        known = self.sensors.get(sensor)
        return int(2 * (known.expected_interval_s if known else DEFAULT_INTERVAL_S) * 1000)

    def slices(self, room: RoomConfig, quantity: str, profile: StandardProfile) -> list[SensorSlice]:
        """The room's sensors of one quantity, with coverage, in-band counts and excursions."""
        lo, hi = self.period.start_ms, self.period.end_ms
        count_hi = min(hi, self.now_ms)
        band = profile.band(quantity)
        bins = BandBins.of(band.low if band else None, band.high if band else None)
        timing = profile.timing
        clear_delay_s = band.clear_delay_s if band and band.clear_delay_s is not None else timing.clear_delay_s
        out: list[SensorSlice] = []
        seen: set[str] = set()
        for ref in self.series:
            if ref.quantity != quantity:
                continue
            spans = _spans(self.assignments.get(ref.sensor, []), room.id)
            if not any(s.lo < hi and (s.hi is None or s.hi > lo) for s in spans):
                continue
            seen.add(ref.sensor)
            cap = self._cap_ms(ref.sensor)
            rows = self.reader.hours(ref, lo - (cap // HOUR_MS + 1) * HOUR_MS, hi, room=room.id)
            cover = series_coverage(rows, spans, cap, self.days, count_lo=lo, count_hi=count_hi)
            excursions, out_of_band = find_excursions(self.reader, ref, room.id, rows, cover.hours, bins,
                                                      clear_delay_ms=int(clear_delay_s * 1000), start_ms=lo, end_ms=hi,
                                                      cap_ms=cap)
            out.append(SensorSlice(ref.sensor, ref, rows, cover, _expected(spans, self.days, lo, count_hi),
                                   out_of_band, excursions))
        for sensor in self.config.sensors:  # configured here, never stored anything: expected, not covered
            if (sensor.room == room.id and sensor.enabled and quantity in _MEASURES.get(sensor.kind, ())
                    and sensor.id not in seen and sensor.id not in self.assignments):
                out.append(SensorSlice(sensor.id, None, [], SeriesCoverage(),
                                       _expected([Span(lo, None)], self.days, lo, count_hi)))
        return out

    def door_rows(self, room: RoomConfig) -> dict[str, list[SummaryHour]]:
        """Hour rows of the room's door sensors in the period."""
        out = {}
        lo, hi = self.period.start_ms, self.period.end_ms
        for ref in self.series:
            if ref.quantity == "door" and any(a.room == room.id for a in self.assignments.get(ref.sensor, [])):
                out[ref.sensor] = self.reader.hours(ref, lo, hi, room=room.id, high=True)
        return out


def _room_sensors(config: Config, room: str, slices: Iterable[SensorSlice]) -> list[SensorConfig]:
    ids = {s.sensor for s in slices} | {s.id for s in config.sensors if s.room == room}
    return [s for s in config.sensors if s.id in ids]


def build_report(config: Config, store: SqliteStore, request: ReportRequest, *, alerts: AlertReader | None = None,
                 db_path: Path | None = None, calibration: Iterable[CalibrationRecord] | None = None
                 ) -> ComplianceReport:
    """Compute the report.

    Args:
        config: the site's configuration (rooms, sensors, profiles, ``[reports]``, working hours).
        store: the readings store (only its summaries are read).
        request: the period, rooms and language.
        alerts: the alert store's reader (None: no alert log, no unregistered entries).
        db_path: the shared file holding the access register and the climate-control records (None: no
            sessions; control records from the store's file).
        calibration: calibration records (None: those stated in the config and those recorded with
            ``archmon calibration add``, read through ``alerts``).

    Raises:
        ConfigError: an unknown room, a bad ``[reports]`` or ``[alerts]`` table, or an empty period.
    """
    settings = load_settings(config)
    alert_settings = load_alert_settings(config)
    profiles = room_profiles(config, alert_settings)
    known = {room.id: room for room in config.rooms}
    wanted = list(request.rooms) if request.rooms else list(known)
    unknown = [room for room in wanted if room not in known]
    if unknown:
        raise ConfigError(f"unknown room(s) {unknown}; known: {sorted(known)}")
    tz = config.site.tz
    period, days, dates = report_period(request.from_date, request.to_date, tz)
    now_ms = request.now_ms if request.now_ms is not None else time.time_ns() // 1_000_000
    records = list(config_records(config) + recorded_calibrations(alerts) if calibration is None else calibration)
    rooms = []
    control = ControlSource(config, db_path if db_path is not None else store.path)
    with contextlib.closing(control), store.summaries() as reader:
        if not reader.available:
            raise ConfigError(f"{store.path} has no summaries yet (written by an older archmon and opened read-only): "
                              "start archmon (run) on it once to migrate it, then report again")
        builder = _Builder(config, reader, settings, period, days, now_ms)
        for room_id in wanted:
            room, profile = known[room_id], profiles[room_id]
            slices = {q: builder.slices(room, q, profile) for q in QUANTITIES}
            figures = {q: quantity_figures(q, slices[q], profile, len(days), period_lo=period.start_ms,
                                           period_hi=period.end_ms, day_index=days.index,
                                           sufficient_pct=settings.sufficient_pct) for q in QUANTITIES}
            log = alert_log(alerts, room_id, period.start_ms, period.end_ms)
            devices, device_days = room_control(control, room_id, slices, days, count_hi=min(period.end_ms, now_ms))
            rooms.append(RoomReport(
                id=room_id, name_zh=room.name_zh, name_en=room.name_en, profile=profile.id,
                profile_name_zh=profile.name_zh, profile_name_en=profile.name_en, profile_source=profile.source,
                stability_interpretation=profile.stability.interpretation,
                quantities={q: figures[q][0] for q in QUANTITIES},
                daily=tuple(DailyRow(day, {q: figures[q][1][i] for q in QUANTITIES}, device_days[i])
                            for i, day in enumerate(dates)),
                alerts=log,
                access=access_summary(builder.door_rows(room), log, db_path, room_id, period.start_ms, period.end_ms,
                                      hours=alert_settings.working_hours, tz=tz),
                calibration=calibration_table(_room_sensors(config, room_id, slices["temperature"]), records,
                                              interval_months=alert_settings.calibration.interval_for,
                                              last_day=period.to_date),
                duty=duty_summary(slices["temperature"], slices["humidity"], dates, times=settings.duty_times,
                                  tolerance_min=settings.duty_tolerance_min, tz=tz, now_ms=now_ms),
                preservation=preservation(slices["temperature"], slices["humidity"], profile.mould,
                                          period_lo=period.start_ms, period_hi=period.end_ms),
                control=devices))
    return ComplianceReport(site=config.site.name, period=period, generated_ms=now_ms,
                            generated_by=request.generated_by, lang=request.lang,
                            sufficient_pct=settings.sufficient_pct, rooms=tuple(rooms))
