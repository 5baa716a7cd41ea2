"""The report's per-day table as CSV: one row per room and day, temperature and humidity side by side, the
duty times, then the climate control of the room (hours its switched devices ran that day, added up, and
how many times they were switched on; empty for a room without such devices). UTF-8 with a byte-order
mark, so spreadsheet programs show the Chinese headers and names; empty cells where a figure is unavailable;
yes/no (是/否) for verdicts."""

from __future__ import annotations

import csv
from typing import TextIO

from dashboards.reports.model import ComplianceReport, DayQuantity

__all__ = ["csv_columns", "write_csv"]

_QUANTITY_COLUMNS = ("readings", "completeness_pct", "min", "mean", "max", "range", "in_band_pct", "sufficient",
                     "stable")
_LABELS = {
    "zh": {"room": "库房", "room_name": "库房名称", "date": "日期", "temperature": "温度", "humidity": "湿度",
           "readings": "读数", "completeness_pct": "完整率%", "min": "最低", "mean": "平均", "max": "最高",
           "range": "日较差", "in_band_pct": "达标时间%", "sufficient": "数据充足", "stable": "24h稳定",
           "duty": "值班", "present": "有记录", "yes": "是", "no": "否", "control_hours": "调控设备运行小时",
           "control_starts": "调控设备启动次数"},
    "en": {"room": "room", "room_name": "room name", "date": "date", "temperature": "temperature",
           "humidity": "humidity", "readings": "readings", "completeness_pct": "completeness %", "min": "min",
           "mean": "mean", "max": "max", "range": "daily range", "in_band_pct": "in band %",
           "sufficient": "enough data", "stable": "stable 24 h", "duty": "duty", "present": "logged", "yes": "yes",
           "no": "no", "control_hours": "controlled devices run h", "control_starts": "controlled devices starts"},
}


def csv_columns(report: ComplianceReport) -> list[str]:
    """The header of the per-day table in the report's language."""
    labels = _LABELS.get(report.lang, _LABELS["en"])
    head = [labels["room"], labels["room_name"], labels["date"]]
    for quantity in ("temperature", "humidity"):
        head += [f"{labels[quantity]} {labels[column]}" for column in _QUANTITY_COLUMNS]
    times = report.rooms[0].duty.times if report.rooms else ()
    for moment in times:
        head += [f"{labels['duty']} {moment} {labels['present']}", f"{labels['duty']} {moment} {labels['temperature']}",
                 f"{labels['duty']} {moment} {labels['humidity']}"]
    return [*head, labels["control_hours"], labels["control_starts"]]


def _cell(value: object, labels: dict[str, str]) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return labels["yes"] if value else labels["no"]
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def write_csv(report: ComplianceReport, out: TextIO) -> int:
    """Write the per-day table; returns the rows written (without the header)."""
    labels = _LABELS.get(report.lang, _LABELS["en"])
    writer = csv.writer(out, lineterminator="\r\n")
    out.write("\ufeff")
    writer.writerow(csv_columns(report))
    rows = 0
    for room in report.rooms:
        name = room.name_zh if report.lang == "zh" else room.name_en
        checks = {(c.date, c.time): c for c in room.duty.checks}
        for day in room.daily:
            line = [room.id, name or room.name_zh or room.name_en, day.date.isoformat()]
            for quantity in ("temperature", "humidity"):
                figures: DayQuantity | None = day.quantities.get(quantity)
                line += [_cell(None if figures is None else getattr(figures, column), labels)
                         for column in _QUANTITY_COLUMNS]
            for moment in room.duty.times:
                check = checks.get((day.date, moment))
                line += ["" if check is None else _cell(check.present, labels),
                         "" if check is None else _cell(check.temperature, labels),
                         "" if check is None else _cell(check.humidity, labels)]
            devices = day.control.values()
            line += ["", ""] if not room.control else [_cell(round(sum(d.run_hours for d in devices), 3), labels),
                                                       str(sum(d.starts for d in devices))]
            writer.writerow(line)
            rows += 1
    return rows
