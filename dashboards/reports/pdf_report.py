"""The printed compliance report (PDF): a :class:`~dashboards.reports.model.ComplianceReport` laid out for an
inspector, in the report's language.

Cover (site, period, the standards and the stability interpretation applied, generated at and by, page count,
the SHA-256 of the report's data and the audit log's head), a pass/fail summary per room (criteria stated on
the page, thresholds from ``[reports]``), then per room: key figures, charts (values with the band shaded,
daily ranges against the stability limit), the day-by-day table, excursions, alerts with what was done,
duty readings, doors and access, calibration, preservation metrics with each band explained; a signature
block at the end. Charts come from the summaries (:mod:`dashboards.reports.chart_data`), never raw readings.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from alerts.profiles import StandardProfile
from alerts.site import load_settings as load_alert_settings
from alerts.site import room_profiles
from archmon.config import Config
from collector.store import SqliteStore
from dashboards.reports.build import report_period
from dashboards.reports.chart_data import HOURLY_DAYS, ChartKey, chart_lines
from dashboards.reports.charts import DayRange, range_chart, value_chart
from dashboards.reports.json_format import report_to_json
from dashboards.reports.model import ComplianceReport, QuantityStats, RoomReport
from dashboards.reports.pdf_render import FONT_FAMILY, RenderedPdf, render_pdf
from dashboards.reports.print_text import PrintText
from dashboards.reports.settings import ReportSettings, load_settings

__all__ = ["AuditHead", "RoomVerdict", "data_digest", "render_report_pdf", "room_verdict", "templates"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
QUANTITIES = ("temperature", "humidity")


@functools.cache
def templates() -> Environment:
    """The printed documents' Jinja2 environment (autoescaped)."""
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                       trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The audit log's last entry when the report was made (printed on the cover: a chain rewritten later from
    some entry on no longer ends in this hash)."""

    entries: int
    head: str


@dataclass(frozen=True, slots=True)
class RoomVerdict:
    """A room's pass/fail per criterion (None: no data to judge) and overall."""

    completeness: bool | None
    in_band: bool | None
    stable: bool | None
    duty: bool | None
    calibration: bool | None

    @property
    def overall(self) -> bool:
        """Every criterion met (a criterion without data is not met)."""
        return all(v is True for v in (self.completeness, self.in_band, self.stable, self.duty, self.calibration))


def _at_least(value: float | None, threshold: float) -> bool | None:
    return None if value is None else value >= threshold - 1e-9


def room_verdict(room: RoomReport, settings: ReportSettings) -> RoomVerdict:
    """Judge a room against the printed criteria (thresholds from ``[reports]``)."""
    stats = [room.quantities[q] for q in QUANTITIES if q in room.quantities]
    completeness = [_at_least(s.completeness_pct, settings.pass_completeness_pct) for s in stats]
    in_band = [_at_least(s.in_band_pct, settings.pass_in_band_pct) for s in stats]
    judged = [s for s in stats if s.days_stable is not None]
    stable: bool | None = None
    if judged:
        stable = None if all(s.days_sufficient == 0 for s in judged) else all(
            s.days_stable == s.days_sufficient for s in judged)
    duty = None if room.duty.expected == 0 else room.duty.missing == 0
    calibration = None if not room.calibration else all(c.overdue is False for c in room.calibration)

    def both(values: list[bool | None]) -> bool | None:
        return None if not values or any(v is None for v in values) else all(values)

    return RoomVerdict(both(completeness), both(in_band), stable, duty, calibration)


def data_digest(report: ComplianceReport) -> str:
    """SHA-256 of the report's data as canonical JSON (the same figures give the same digest)."""
    text = json.dumps(report_to_json(report), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _interpretation(t: PrintText, room: RoomReport) -> str:
    limits = {q: room.quantities[q].stability_limit for q in QUANTITIES if q in room.quantities}
    if all(v is None for v in limits.values()):
        return t("interp_none")
    return t(f"interp_{room.stability_interpretation}",
             t=t.value(limits.get("temperature"), "temperature", digits=0) if limits.get("temperature") else "—",
             rh=t.value(limits.get("humidity"), "humidity", digits=0) if limits.get("humidity") else "—")


def _room_view(t: PrintText, room: RoomReport, profile: StandardProfile, lines: dict[ChartKey, Any],
               day_starts: list[int], report: ComplianceReport, settings: ReportSettings) -> dict[str, Any]:
    period = report.period
    dates = [d.date for d in room.daily]
    charts = []
    for quantity in QUANTITIES:
        stats: QuantityStats = room.quantities[quantity]
        name = t(quantity)
        key = "chart_values" if period.days <= HOURLY_DAYS else "chart_daily_values"
        charts.append({"caption": t(key, q=name), "svg": value_chart(
            lines.get(ChartKey(room.id, quantity), []), start_ms=period.start_ms, end_ms=period.end_ms,
            day_starts=day_starts[:-1], dates=dates, band_low=stats.band_low, band_high=stats.band_high,
            unit=t.unit(quantity), title=t(key, q=name), legend_extra=t("excursions"))})
        limit = stats.stability_limit
        caption = (t("chart_range", q=name, limit=t.value(limit, quantity, digits=0)) if limit is not None
                   else t("chart_range_nolimit", q=name))
        ranges = [DayRange(d.date, d.quantities[quantity].range if quantity in d.quantities else None)
                  for d in room.daily]
        charts.append({"caption": caption, "svg": range_chart(ranges, limit=limit, unit=t.unit(quantity),
                                                                title=caption, tz=t.tz)})
    measures = [c for a in room.alerts for c in a.comments]
    return {
        "room": room, "name": t.name(room.name_zh, room.name_en, room.id),
        "profile_name": t.name(room.profile_name_zh, room.profile_name_en, room.profile),
        "interpretation": _interpretation(t, room), "verdict": room_verdict(room, settings),
        "charts": charts, "mould_rh": t.value(profile.mould.rh, "humidity", digits=0),
        "missing_duty": [c for c in room.duty.checks if not c.present], "measures": measures,
        "daily_table": period.days <= HOURLY_DAYS,
    }


def _page_css(t: PrintText) -> str:
    """The footer's "page X of Y" as a CSS ``content`` value with the page counters."""
    text = t("page_of", page="\x00", pages="\x01").replace('"', '\\"')
    return '"' + text.replace("\x00", '" counter(page) "').replace("\x01", '" counter(pages) "') + '"'


def render_report_pdf(config: Config, store: SqliteStore, report: ComplianceReport, *,
                      audit: AuditHead | None = None) -> RenderedPdf:
    """The printed report of ``report`` (see the module docstring).

    Args:
        config: the site's configuration (profiles' mould limits, ``[reports]`` criteria and names).
        store: the readings store the report was built from (its summaries give the charts).
        report: the report's data.
        audit: the audit log's head to print on the cover (None: not printed).

    Raises:
        ConfigError: WeasyPrint, Pango or the CJK font are missing; a bad ``[reports]`` table.
    """
    settings = load_settings(config)
    profiles = room_profiles(config, load_alert_settings(config))
    tz = ZoneInfo(report.period.tz)
    t = PrintText(report.lang, tz)
    _period, days, _dates = report_period(report.period.from_date, report.period.to_date, tz)
    lines = chart_lines(store, report, list(days.starts))
    rooms = [_room_view(t, room, profiles[room.id], lines, list(days.starts), report, settings)
             for room in report.rooms]
    duty_times = "、".join(report.rooms[0].duty.times) if report.rooms and t.lang == "zh" else ", ".join(
        report.rooms[0].duty.times if report.rooms else ())
    context = {
        "t": t, "report": report, "rooms": rooms, "settings": settings, "font": FONT_FAMILY,
        "lang_tag": "zh-CN" if t.lang == "zh" else "en", "digest": data_digest(report), "audit": audit,
        "generated_at": t.when(report.generated_ms), "duty_times": duty_times,
        "period_text": f"{report.period.from_date.isoformat()} — {report.period.to_date.isoformat()}",
        "page_css": _page_css(t),
        "today": dt.datetime.fromtimestamp(report.generated_ms / 1000, tz).date().isoformat(),
    }
    template = templates().get_template("report.html")
    return render_pdf(lambda pages: template.render(**context, pages=pages))
