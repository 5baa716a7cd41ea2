"""The monthly 温湿度登记表: one A4 sheet per room and month in the layout archive rooms keep by hand — date,
the morning and afternoon duty readings (time, temperature, RH, the outdoor values where an outdoor sensor
exists), within limits yes/no, measures taken, recorder — filled from the report's duty data.

Values are the report's duty checks (:mod:`dashboards.reports.duty`): the reading nearest the duty time
within the tolerance, as measured. A duty time without a reading leaves its cells empty (shaded, explained
in the notes), never filled in. "Within limits" compares the day's duty readings with the band: 否 when one
is outside it; a day missing a duty reading is never 是 — the cell names the missing times (缺 08:00) —
and it is empty when no duty time of the day was expected yet. Measures are the alert comments
(acknowledgements) of the room made that day. The outdoor values come from the room named by ``[reports] outdoor_room``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from alerts.store import AlertReader
from archmon.config import Config
from archmon.errors import ConfigError
from collector.store import SqliteStore
from dashboards.reports.build import ReportRequest, build_report
from dashboards.reports.model import ComplianceReport, DutyCheck, RoomReport
from dashboards.reports.pdf_render import FONT_FAMILY, RenderedPdf, render_pdf
from dashboards.reports.print_text import PrintText
from dashboards.reports.settings import load_settings

__all__ = ["DutyCell", "Register", "RegisterRow", "RegisterSheet", "build_register", "month_days",
           "register_sheet", "render_register_pdf"]

MEASURE_CHARS = 70


def month_days(month: str) -> tuple[dt.date, dt.date]:
    """The first and last day of ``YYYY-MM``.

    Raises:
        ConfigError: not that form.
    """
    match = re.fullmatch(r"(\d{4})-(\d{2})", month.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ConfigError(f"--month must be YYYY-MM, got {month!r}")
    year, number = int(match.group(1)), int(match.group(2))
    return dt.date(year, number, 1), dt.date(year, number, calendar.monthrange(year, number)[1])


@dataclass(frozen=True, slots=True)
class DutyCell:
    """One duty time of one day on the sheet (None: no reading; the cell stays empty)."""

    time: str
    present: bool
    temperature: float | None
    humidity: float | None
    outdoor_temperature: float | None
    outdoor_humidity: float | None


@dataclass(frozen=True, slots=True)
class RegisterRow:
    """One day of the sheet.

    Attributes:
        within: every duty reading of the day inside the band: False when one is outside it, None when one is
            missing (``missing``) or none was expected yet, True only when all are there and inside.
        missing: the day's expected duty times (``HH:MM``) without a reading or without its value.
        measures: the room's alert comments made that day (``#id by: text``), oldest first.
        recorder: who recorded the day's readings (``archmon``: taken automatically; empty without readings).
    """

    date: dt.date
    cells: tuple[DutyCell, ...]
    within: bool | None
    measures: tuple[str, ...]
    recorder: str
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RegisterSheet:
    """One room's month."""

    room: RoomReport
    rows: tuple[RegisterRow, ...]
    times: tuple[str, ...]
    outdoor: bool
    outdoor_sensors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Register:
    """The register of one month for some rooms."""

    month: str
    report: ComplianceReport
    sheets: tuple[RegisterSheet, ...]
    tolerance_min: float


def _inside(value: float | None, low: float | None, high: float | None) -> bool | None:
    if value is None:
        return None
    return (low is None or value >= low - 1e-9) and (high is None or value <= high + 1e-9)


def register_sheet(room: RoomReport, outdoor: RoomReport | None, t: PrintText) -> RegisterSheet:
    """The sheet of one room from its report (and the outdoor room's, for the outdoor values)."""
    tz = t.tz
    outdoor_checks: dict[tuple[dt.date, str], DutyCheck] = (
        {(c.date, c.time): c for c in outdoor.duty.checks} if outdoor is not None else {})
    own = {(c.date, c.time): c for c in room.duty.checks}
    t_stats, rh_stats = room.quantities["temperature"], room.quantities["humidity"]
    rows = []
    for day in room.daily:
        cells = []
        verdicts: list[bool] = []
        missing: list[str] = []
        for moment in room.duty.times:
            check = own.get((day.date, moment))
            out = outdoor_checks.get((day.date, moment))
            present = check is not None and check.present
            cell = DutyCell(moment, present, check.temperature if present else None,
                            check.humidity if present else None,
                            out.temperature if out is not None and out.present else None,
                            out.humidity if out is not None and out.present else None)
            cells.append(cell)
            if check is not None and (not present or (cell.temperature is None and cell.humidity is None)):
                missing.append(moment)  # expected (not after the register was made), no reading or no value
            for verdict in (_inside(cell.temperature, t_stats.band_low, t_stats.band_high),
                            _inside(cell.humidity, rh_stats.band_low, rh_stats.band_high)):
                if verdict is not None:
                    verdicts.append(verdict)
        measures = []
        for alert in room.alerts:
            for comment in alert.comments:
                if dt.datetime.fromtimestamp(comment.time_ms / 1000, tz).date() == day.date:
                    measures.append((comment.time_ms, f"#{alert.id} {comment.by}{t('colon')}{comment.comment}"))
        within = False if not all(verdicts) else (True if verdicts and not missing else None)
        rows.append(RegisterRow(day.date, tuple(cells), within, tuple(text for _, text in sorted(measures)),
                                "archmon" if any(c.present for c in cells) else "", tuple(missing)))
    sensors = tuple(sorted(set(outdoor.quantities["temperature"].sensors)
                           | set(outdoor.quantities["humidity"].sensors))) if outdoor else ()
    return RegisterSheet(room, tuple(rows), room.duty.times, outdoor is not None, sensors)


def build_register(config: Config, store: SqliteStore, month: str, *, rooms: Sequence[str] | None = None,
                   lang: str | None = None, generated_by: str = "", now_ms: int | None = None,
                   alerts: AlertReader | None = None, db_path: object = None) -> Register:
    """The register's data for ``month`` (``YYYY-MM``) from the report of that month.

    Args:
        rooms: the rooms (default: every room but the outdoor room).
        lang: ``zh``/``en`` (default: the site's).
        now_ms: the time of the register (duty times after it are not expected yet).
        alerts, db_path: as for :func:`~dashboards.reports.build.build_report`.

    Raises:
        ConfigError: a bad month, an unknown room or outdoor room.
    """
    first, last = month_days(month)
    settings = load_settings(config)
    known = [r.id for r in config.rooms]
    outdoor = settings.outdoor_room or None
    if outdoor is not None and outdoor not in known:
        raise ConfigError(f"reports.outdoor_room: no room {outdoor!r} (rooms: {known})")
    wanted = list(rooms) if rooms else [r for r in known if r != outdoor]
    asked = list(dict.fromkeys([*wanted, *([outdoor] if outdoor else [])]))
    request = ReportRequest(first, last, tuple(asked), lang or config.site.language, generated_by, now_ms)
    report = build_report(config, store, request, alerts=alerts, db_path=db_path)  # type: ignore[arg-type]
    by_id = {room.id: room for room in report.rooms}
    t = PrintText(report.lang, ZoneInfo(report.period.tz))
    outdoor_room = by_id.get(outdoor) if outdoor else None
    sheets = tuple(register_sheet(by_id[r], outdoor_room if r != outdoor else None, t) for r in wanted)
    return Register(month, report, sheets, settings.duty_tolerance_min)


def render_register_pdf(register: Register) -> RenderedPdf:
    """The register as PDF: one A4 landscape sheet per room.

    Raises:
        ConfigError: WeasyPrint, Pango or the CJK font are missing.
    """
    from dashboards.reports.pdf_report import templates

    report = register.report
    t = PrintText(report.lang, ZoneInfo(report.period.tz))
    first, _ = month_days(register.month)
    month_text = f"{first.year} 年 {first.month} 月" if t.lang == "zh" else first.strftime("%B %Y")
    template = templates().get_template("register.html")
    context = {"t": t, "register": register, "report": report, "font": FONT_FAMILY, "month_text": month_text,
               "lang_tag": "zh-CN" if t.lang == "zh" else "en", "generated_at": t.when(report.generated_ms),
               "measure_chars": MEASURE_CHARS}
    return render_pdf(lambda pages: template.render(**context, pages=pages), counted=False)
