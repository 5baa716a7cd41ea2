"""The lines of the printed report's charts, from the summaries kept forever (never raw readings).

Up to :data:`HOURLY_DAYS` days: one point per sensor and local hour (the hour's mean; its min and max kept
for the envelope); longer periods: one point per sensor and day (the day's mean of the hourly sums, with the
day's lowest and highest). A sensor counts for a room for the hours it was assigned there (the summaries
are split at room-assignment boundaries already).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from collector.store import SqliteStore, SummaryHour
from dashboards.reports.charts import ChartLine, ChartPoint
from dashboards.reports.model import ComplianceReport

__all__ = ["HOURLY_DAYS", "ChartKey", "chart_lines"]

HOURLY_DAYS = 62
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class ChartKey:
    """Which chart: a room and a quantity."""

    room: str
    quantity: str


def _hourly(rows: Iterable[SummaryHour]) -> tuple[ChartPoint, ...]:
    return tuple(ChartPoint(r.start_ms, r.sum / r.count, r.min, r.max) for r in rows if r.count)


def _daily(rows: Iterable[SummaryHour], day_starts: list[int]) -> tuple[ChartPoint, ...]:
    days: dict[int, list[float]] = {}
    for r in rows:
        if not r.count:
            continue
        i = bisect.bisect_right(day_starts, r.start_ms) - 1
        if i < 0 or i >= len(day_starts) - 1:
            continue
        acc = days.setdefault(i, [0.0, 0.0, r.min, r.max])
        acc[0] += r.sum
        acc[1] += r.count
        acc[2], acc[3] = min(acc[2], r.min), max(acc[3], r.max)
    return tuple(ChartPoint(day_starts[i] + DAY_MS // 2, s / c, lo, hi) for i, (s, c, lo, hi) in sorted(days.items()))


def chart_lines(store: SqliteStore, report: ComplianceReport, day_starts: list[int]) -> dict[ChartKey, list[ChartLine]]:
    """Every room's and quantity's lines, read in one snapshot of the summaries.

    Args:
        store: the readings store (summaries only).
        report: the report the charts belong to (its rooms, sensors and period).
        day_starts: the local midnights of the period's days and of the day after it.
    """
    period = report.period
    hourly = period.days <= HOURLY_DAYS
    out: dict[ChartKey, list[ChartLine]] = {}
    with store.summaries() as reader:
        refs = {(ref.sensor, ref.quantity): ref for ref in reader.series()}
        for room in report.rooms:
            for quantity, stats in room.quantities.items():
                lines = []
                for sensor in stats.sensors:
                    ref = refs.get((sensor, quantity))
                    if ref is None:
                        continue
                    rows = reader.hours(ref, period.start_ms, period.end_ms, room=room.id)
                    if hourly:
                        lines.append(ChartLine(sensor, _hourly(rows), gap_ms=2 * HOUR_MS))
                    else:
                        lines.append(ChartLine(sensor, _daily(rows, day_starts), gap_ms=2 * DAY_MS, envelope=True))
                out[ChartKey(room.id, quantity)] = lines
    return out
