"""The 1987 logging duty (《档案库房技术管理暂行规定》): indoor readings at least twice a day, at fixed duty times
(``[reports] duty_times``, default 08:00 and 14:00), checked from the summaries' slot bitmaps.

A duty time counts as logged when one of the room's temperature/humidity sensors has a reading within the
tolerance of it. The value shown beside it is that reading, the one nearest the duty time, as stored: the
summaries keep each hour's first and last reading, and the reading nearest a whole hour is the last one
before it or the first one after it, so for duty times on a whole hour (08:00, 14:00) it is always known.
For a duty time inside an hour holding readings on both sides of it, the nearest reading is known only
when it is that hour's first or last; otherwise (and for hours summarised before the readings were kept)
the duty time is logged but its value is not shown. Never an hourly mean, never an invented value. Duty
times after the report was made are not expected yet.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from collector.store import SLOT_MS, SummaryHour
from dashboards.reports.model import DutyCheck, DutySummary
from dashboards.reports.quantities import SensorSlice

__all__ = ["duty_summary"]

HOUR_MS = 3_600_000


class _Near(NamedTuple):
    """The reading nearest a duty time: how far (ms), and its value (None: logged, value not kept)."""

    distance: int
    value: float | None


def _nearest_slot(rows: Sequence[SummaryHour], starts: Sequence[int], at_ms: int, tolerance_ms: int
                  ) -> tuple[int, SummaryHour, int] | None:
    """``(distance, row, slot)`` of the slot nearest ``at_ms`` holding a reading within the tolerance (slot
    centres), or None."""
    best: tuple[int, SummaryHour, int] | None = None
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
                    best = (distance, row, slot + first)
    return best


def _edges(row: SummaryHour) -> list[tuple[int, float]]:
    if row.first_ms is None or row.last_ms is None or row.first_value is None or row.last_value is None:
        return []
    return [(row.first_ms, row.first_value), (row.last_ms, row.last_value)]


def _nearest(rows: Sequence[SummaryHour], starts: Sequence[int], at_ms: int, tolerance_ms: int) -> _Near | None:
    """The stored reading nearest ``at_ms`` within the tolerance, or None (see the module docstring)."""
    i = bisect.bisect_right(starts, at_ms) - 1  # the row starting at or before the duty time
    straddled = False
    candidates: list[tuple[int, float]] = []
    if i >= 0:
        row = rows[i]
        edges = _edges(row)
        if not edges:
            straddled = True
        elif edges[1][0] <= at_ms:  # all its readings before: its last is the last one before
            candidates.append(edges[1])
        elif edges[0][0] >= at_ms:  # all after (the row starts at the duty time): its first is the first after
            candidates.append(edges[0])
            if i > 0:
                candidates += _edges(rows[i - 1])[1:]
        else:
            straddled = True
    if i + 1 < len(rows) and not (i >= 0 and not straddled and candidates and candidates[0][0] >= at_ms):
        candidates += _edges(rows[i + 1])[:1]
    if straddled:  # readings on both sides inside one hour: only its first or last reading is known exactly
        slot = _nearest_slot(rows, starts, at_ms, tolerance_ms)
        if slot is None:
            return None
        distance, near_row, index = slot
        for ts, value in _edges(near_row):
            if (ts - near_row.start_ms) // SLOT_MS == index:
                return _Near(abs(ts - at_ms), value)
        return _Near(distance, None)
    found = [(abs(ts - at_ms), value) for ts, value in candidates if abs(ts - at_ms) <= tolerance_ms]
    return _Near(*min(found, key=lambda c: c[0])) if found else None


def duty_summary(temperature: Sequence[SensorSlice], humidity: Sequence[SensorSlice], dates: Sequence[dt.date], *,
                 times: Sequence[dt.time], tolerance_min: float, tz: dt.tzinfo, now_ms: int) -> DutySummary:
    """Every duty time of the period up to ``now_ms``: logged or not, with the reading nearest it beside it."""
    tolerance = int(tolerance_min * 60_000)
    indexed = [(s, [r.start_ms for r in s.rows]) for s in (*temperature, *humidity)]
    kinds = {id(s): "t" for s in temperature} | {id(s): "rh" for s in humidity}
    checks = []
    for day in dates:
        for moment in times:
            at = round(dt.datetime.combine(day, moment, tzinfo=tz).timestamp() * 1000)
            if at > now_ms:
                continue
            found: dict[str, _Near] = {}
            for piece, starts in indexed:
                near = _nearest(piece.rows, starts, at, tolerance)
                kind = kinds[id(piece)]
                if near is not None and (kind not in found or near.distance < found[kind].distance):
                    found[kind] = near
            t, rh = found.get("t"), found.get("rh")
            checks.append(DutyCheck(
                date=day, time=moment.strftime("%H:%M"), scheduled_ms=at, present=bool(found),
                temperature=None if t is None or t.value is None else round(t.value, 2),
                humidity=None if rh is None or rh.value is None else round(rh.value, 2)))
    return DutySummary(times=tuple(m.strftime("%H:%M") for m in times), tolerance_min=tolerance_min,
                       expected=len(checks), present=sum(c.present for c in checks), checks=tuple(checks))
