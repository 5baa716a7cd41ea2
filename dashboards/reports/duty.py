"""The 1987 logging duty (《档案库房技术管理暂行规定》): indoor readings at least twice a day, at fixed duty times
(``[reports] duty_times``, default 08:00 and 14:00), checked from the summaries' slot bitmaps.

A duty time counts as logged when one of the room's temperature/humidity sensors has a reading within the
tolerance of it. The value shown beside it is the mean of the local hour holding that nearest reading (the
summaries keep hourly means, not single raw values); a duty time without a reading has no value, never an
invented one. Duty times after the report was made are not expected yet.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence

from collector.store import SLOT_MS, SummaryHour
from dashboards.reports.model import DutyCheck, DutySummary
from dashboards.reports.quantities import SensorSlice

__all__ = ["duty_summary"]

HOUR_MS = 3_600_000


def _nearest(rows: Sequence[SummaryHour], starts: Sequence[int], at_ms: int, tolerance_ms: int
             ) -> tuple[int, SummaryHour] | None:
    """``(distance, row)`` of the reading nearest ``at_ms`` within the tolerance (slot centres), or None."""
    best: tuple[int, SummaryHour] | None = None
    lo, hi = at_ms - tolerance_ms, at_ms + tolerance_ms
    for i in range(max(0, bisect.bisect_left(starts, lo - HOUR_MS)), bisect.bisect_right(starts, hi)):
        row = rows[i]
        first = max(0, -(-(lo - row.start_ms) // SLOT_MS))
        last = (hi - row.start_ms) // SLOT_MS
        if last < first:
            continue
        bits = (row.present >> first) & ((1 << (last - first + 1)) - 1)
        if not bits:
            continue
        target = max(0, min(last - first, (at_ms - row.start_ms) // SLOT_MS - first))
        after = bits >> target
        before = bits & ((1 << target) - 1)
        for slot in ((after & -after).bit_length() - 1 + target if after else None,
                     before.bit_length() - 1 if before else None):
            if slot is not None:
                distance = abs(row.start_ms + (slot + first) * SLOT_MS + SLOT_MS // 2 - at_ms)
                if best is None or distance < best[0]:
                    best = (distance, row)
    return best


def duty_summary(temperature: Sequence[SensorSlice], humidity: Sequence[SensorSlice], dates: Sequence[dt.date], *,
                 times: Sequence[dt.time], tolerance_min: float, tz: dt.tzinfo, now_ms: int) -> DutySummary:
    """Every duty time of the period up to ``now_ms``: logged or not, with the hourly means beside it."""
    tolerance = int(tolerance_min * 60_000)
    indexed = [(s, [r.start_ms for r in s.rows]) for s in (*temperature, *humidity)]
    kinds = {id(s): "t" for s in temperature} | {id(s): "rh" for s in humidity}
    checks = []
    for day in dates:
        for moment in times:
            at = round(dt.datetime.combine(day, moment, tzinfo=tz).timestamp() * 1000)
            if at > now_ms:
                continue
            found: dict[str, tuple[int, SummaryHour]] = {}
            for piece, starts in indexed:
                near = _nearest(piece.rows, starts, at, tolerance)
                kind = kinds[id(piece)]
                if near is not None and (kind not in found or near[0] < found[kind][0]):
                    found[kind] = near
            t, rh = found.get("t"), found.get("rh")
            checks.append(DutyCheck(
                date=day, time=moment.strftime("%H:%M"), scheduled_ms=at, present=bool(found),
                temperature=None if t is None else round(t[1].sum / t[1].count, 2),
                humidity=None if rh is None else round(rh[1].sum / rh[1].count, 2)))
    return DutySummary(times=tuple(m.strftime("%H:%M") for m in times), tolerance_min=tolerance_min,
                       expected=len(checks), present=sum(c.present for c in checks), checks=tuple(checks))
