"""Time-weighted coverage from the summaries' slot bitmaps (``collector.store._summary``).

A reading covers the time from its own until the next reading, at most a cap (2 × the sensor's expected
interval): the covered time is the union of ``[t, t + cap)`` over the readings. The summaries keep, per
local hour, which 10-second slots hold a reading; dilating those bits by ``cap`` slots gives the covered
slots, so coverage is exact up to one slot at each edge of a gap, for any cap chosen at report time.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from collector.store import SLOT_MS, SummaryHour

__all__ = ["Days", "SeriesCoverage", "Span", "series_coverage"]

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Span:
    """A sensor's time in one room: ``lo <= t < hi`` (hi None: still there)."""

    lo: int
    hi: int | None

    def contains(self, ts_ms: int) -> bool:
        """Whether ``ts_ms`` lies in the span."""
        return self.lo <= ts_ms and (self.hi is None or ts_ms < self.hi)


class Days:
    """The local days of a period: ``starts[i]`` is day i's midnight (UTC ms); ``starts[-1]`` the period's end."""

    def __init__(self, starts: Sequence[int]) -> None:
        self.starts = list(starts)

    def index(self, ts_ms: int) -> int:
        """The day holding ``ts_ms`` (-1 before the period, ``len`` days after it)."""
        return bisect.bisect_right(self.starts, ts_ms) - 1

    def __len__(self) -> int:
        return len(self.starts) - 1


@dataclass(slots=True)
class SeriesCoverage:
    """Covered time of one series in one room.

    Attributes:
        hours: per hour row (start ms) inside the counted window, the time covered by the hour's readings (its
            own covered slots, plus the time its last reading covers past the hour when no row follows).
        days: per day index, the covered time inside that day.
    """

    hours: dict[int, int] = field(default_factory=dict)
    days: dict[int, int] = field(default_factory=dict)

    @property
    def total_ms(self) -> int:
        """All covered time in the counted window."""
        return sum(self.days.values())


def _credit(cov: SeriesCoverage, days: Days, lo: int, hi: int) -> int:
    """Add ``[lo, hi)`` to the day totals (split at midnights); returns the time added."""
    added = 0
    while lo < hi:
        i = days.index(lo)
        if not 0 <= i < len(days):
            break
        end = min(hi, days.starts[i + 1])
        cov.days[i] = cov.days.get(i, 0) + end - lo
        added += end - lo
        lo = end
    return added


def series_coverage(rows: Sequence[SummaryHour], spans: Sequence[Span], cap_ms: int, days: Days, *,
                    count_lo: int, count_hi: int) -> SeriesCoverage:
    """Covered time of one series in one room.

    Args:
        rows: the series' hour rows in this room, oldest first; may start before ``count_lo`` (rows there only
            carry coverage into the window).
        spans: the sensor's spans in this room (coverage never runs past the end of the span it starts in).
        cap_ms: how long one reading covers at most.
        days: the period's days (an hour is cut at the midnight that ends it: the last hour of a 23.5 h day).
        count_lo, count_hi: only covered time inside ``[count_lo, count_hi)`` counts (the period, up to now).
    """
    cov = SeriesCoverage()
    hours, day_totals = cov.hours, cov.days
    k = max(1, cap_ms // SLOT_MS)
    steps = []  # the shifts that widen a bit to k bits (dilate)
    width = 1
    while width < k:
        steps.append(min(width, k - width))
        width += steps[-1]
    starts = days.starts
    n_days = len(days)
    day = -1
    day_end = -(2**62)
    carry_end = -(2**62)
    prev_end = -(2**62)
    prev_start: int | None = None
    single = spans[0].hi if len(spans) == 1 else None
    for row in rows:
        start = row.start_ms
        if start >= day_end:  # rows are in time order: move to the day holding this hour
            day = bisect.bisect_right(starts, start) - 1
            day_end = starts[day + 1] if 0 <= day < n_days else (starts[0] if day < 0 else 2**62)
        end = start + HOUR_MS
        if end > day_end:
            end = day_end
        span_hi = single if len(spans) == 1 else _span_end(spans, start, end)
        if carry_end > prev_end and start > prev_end:  # the last reading before a gap covers into it
            added = _credit(cov, days, max(prev_end, count_lo), min(carry_end, start, count_hi))
            if prev_start is not None and added > 0:
                hours[prev_start] = hours.get(prev_start, 0) + added
        bits = row.present
        covered = bits
        for step in steps:
            covered |= covered << step
        if carry_end > start:
            covered |= (1 << -(-(carry_end - start) // SLOT_MS)) - 1
        lo = start if start >= count_lo else count_lo
        hi = end if end <= count_hi else count_hi
        if span_hi is not None and span_hi < hi:
            hi = span_hi
        lo_slot = -(-(lo - start) // SLOT_MS)
        hi_slot = (hi - start) // SLOT_MS
        if hi_slot > lo_slot:
            ms = ((covered >> lo_slot) & ((1 << (hi_slot - lo_slot)) - 1)).bit_count() * SLOT_MS
            if ms and 0 <= day < n_days:
                hours[start] = hours.get(start, 0) + ms
                day_totals[day] = day_totals.get(day, 0) + ms
        if bits:
            reach = start + (bits.bit_length() - 1 + k) * SLOT_MS
            if span_hi is not None and reach > span_hi:
                reach = span_hi
            if reach > carry_end:
                carry_end = reach
        prev_end, prev_start = end, start if start >= count_lo else None
    if carry_end > prev_end:
        added = _credit(cov, days, max(prev_end, count_lo), min(carry_end, count_hi))
        if prev_start is not None and added > 0:
            hours[prev_start] = hours.get(prev_start, 0) + added
    return cov


def _span_end(spans: Sequence[Span], start: int, end: int) -> int | None:
    """The end of the span an hour's readings belong to (the first one overlapping ``[start, end)``)."""
    for span in spans:
        if span.lo < end and (span.hi is None or span.hi > start):
            return span.hi
    return None
