"""Per room and quantity: completeness, min/mean/max, time in band, days sufficient and stable, per-day rows.

Inputs are :class:`SensorSlice` values, one per sensor that was in the room during the period, built from
the summaries by :mod:`dashboards.reports.build`. Room figures add the sensors up: covered time over the
time they were expected to report, readings, the extremes; a day is stable when every sensor with enough
data that day meets the stability rule.

Stability (每昼夜波动, JGJ 25-2010 §5.2.3), interpretation A: the day's max − min ≤ the limit;
interpretation B: every value within ± the limit of the set-point (or of the day's mean when the profile
has none). Both need only the day's minimum, maximum and mean, which the summaries keep exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from alerts.profiles import StandardProfile
from collector.store import SeriesRef, SummaryHour
from dashboards.reports.coverage import SeriesCoverage
from dashboards.reports.model import DayQuantity, Excursion, QuantityStats

__all__ = ["SensorSlice", "quantity_figures"]

UNITS = {"temperature": "°C", "humidity": "%RH"}
_EPS = 1e-9


@dataclass(slots=True)
class SensorSlice:
    """One sensor's series of one quantity in one room over the period (and the hours before it that carry
    coverage in).

    Attributes:
        rows: hour rows in the room, oldest first.
        coverage: the covered time (per hour row, per day).
        expected_days: per day index, the time the sensor was expected to report in the room that day.
        out_of_band: per hour row start, its covered time (ms) out of band (absent: none).
        excursions: its excursions in the period.
    """

    sensor: str
    series: SeriesRef | None
    rows: list[SummaryHour]
    coverage: SeriesCoverage
    expected_days: dict[int, int]
    out_of_band: dict[int, int] = field(default_factory=dict)
    excursions: list[Excursion] = field(default_factory=list)


@dataclass(slots=True)
class _Day:
    count: int = 0
    total: float = 0.0
    low: float | None = None
    high: float | None = None

    def add(self, row: SummaryHour) -> None:
        self.count += row.count
        self.total += row.sum
        self.low = row.min if self.low is None else min(self.low, row.min)
        self.high = row.max if self.high is None else max(self.high, row.max)


def _stable(day: _Day, limit: float, interpretation: str, setpoint: float | None) -> bool:
    assert day.low is not None and day.high is not None
    if interpretation == "A":
        return day.high - day.low <= limit + _EPS
    ref = day.total / day.count if setpoint is None else setpoint
    return day.high <= ref + limit + _EPS and day.low >= ref - limit - _EPS


def _pct(part: float, whole: float) -> float | None:
    return None if whole <= 0 else round(100.0 * part / whole, 3)


def quantity_figures(quantity: str, slices: Sequence[SensorSlice], profile: StandardProfile, n_days: int, *,
                     period_lo: int, period_hi: int, day_index: Callable[[int], int], sufficient_pct: float
                     ) -> tuple[QuantityStats, list[DayQuantity]]:
    """The room's figures for one quantity and its per-day rows (one per day of the period).

    Args:
        quantity: ``temperature`` or ``humidity``.
        slices: the room's sensors of that quantity.
        profile: the room's profile (band, stability).
        n_days: days in the period; day_index: ``Days.index`` of the period.
        period_lo, period_hi: the period (UTC ms).
        sufficient_pct: the daily completeness that makes a day count.
    """
    band = profile.band(quantity)
    limit = profile.stability.limit(quantity)
    interpretation = profile.stability.interpretation
    setpoint = profile.stability.setpoint(quantity)
    index = day_index
    per_day: list[list[tuple[_Day, int, int]]] = [[] for _ in range(n_days)]  # (figures, covered, expected)
    in_band_day = [0.0] * n_days
    weight_day = [0.0] * n_days
    readings, total, low, high = 0, 0.0, None, None
    for piece in slices:
        days: dict[int, _Day] = {}
        for row in piece.rows:
            if not period_lo <= row.start_ms < period_hi:
                continue
            i = index(row.start_ms)
            days.setdefault(i, _Day()).add(row)
            readings += row.count
            total += row.sum
            low = row.min if low is None else min(low, row.min)
            high = row.max if high is None else max(high, row.max)
            covered = piece.coverage.hours.get(row.start_ms, 0)
            weight_day[i] += covered
            in_band_day[i] += max(0, covered - piece.out_of_band.get(row.start_ms, 0))
        for i in range(n_days):
            expected = piece.expected_days.get(i, 0)
            covered = piece.coverage.days.get(i, 0)
            if expected or i in days:
                per_day[i].append((days.get(i, _Day()), covered, expected))
    daily: list[DayQuantity] = []
    with_data = sufficient = stable_days = 0
    for i in range(n_days):
        sensors = per_day[i]
        count = sum(d.count for d, _, _ in sensors)
        covered = sum(c for _, c, _ in sensors)
        expected = sum(e for _, _, e in sensors)
        completeness = _pct(covered, expected)
        enough = completeness is not None and completeness >= sufficient_pct
        lows = [d.low for d, _, _ in sensors if d.low is not None]
        highs = [d.high for d, _, _ in sensors if d.high is not None]
        ranges = [d.high - d.low for d, _, _ in sensors if d.low is not None and d.high is not None]
        stable: bool | None = None
        if enough and limit is not None:
            judged = [d for d, c, e in sensors if d.count and e and 100.0 * c / e >= sufficient_pct]
            stable = bool(judged) and all(_stable(d, limit, interpretation, setpoint) for d in judged)
        with_data += count > 0
        sufficient += enough
        stable_days += bool(stable)
        daily.append(DayQuantity(
            readings=count, completeness_pct=completeness, min=min(lows) if lows else None,
            mean=round(sum(d.total for d, _, _ in sensors) / count, 4) if count else None,
            max=max(highs) if highs else None, range=max(ranges) if ranges else None,
            in_band_pct=_pct(in_band_day[i], weight_day[i]), sufficient=enough, stable=stable))
    covered_all = sum(s.coverage.total_ms for s in slices)
    expected_all = sum(sum(s.expected_days.values()) for s in slices)
    excursions = tuple(sorted((e for s in slices for e in s.excursions), key=lambda e: (e.start_ms, e.sensor)))
    stats = QuantityStats(
        quantity=quantity, unit=UNITS.get(quantity, ""), band_low=band.low if band else None,
        band_high=band.high if band else None, stability_limit=limit,
        sensors=tuple(sorted({s.sensor for s in slices})), readings=readings,
        expected_s=expected_all / 1000, covered_s=covered_all / 1000,
        completeness_pct=_pct(covered_all, expected_all), min=low,
        mean=round(total / readings, 4) if readings else None, max=high,
        in_band_s=round(sum(in_band_day) / 1000, 3), in_band_pct=_pct(sum(in_band_day), sum(weight_day)),
        days_in_period=n_days, days_with_data=with_data, days_sufficient=sufficient,
        days_stable=stable_days if limit is not None else None, excursions=excursions)
    return stats, daily
