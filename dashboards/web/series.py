"""Chart data for a room: a quantity of each of its sensors over a range, downsampled to the chart's width.

Up to two days come from the raw readings; longer ranges from the **hour rollups** (a year of one-minute
readings is 525,600 rows per series but only 8,760 hour buckets). Either way the range is cut into at
most ``width`` equal slots (never finer than the data: one minute for raw, one hour for rollups), and each
slot sends its mean, min and max, so the browser receives at most a few thousand points and the chart's
envelope still shows every extreme. The same function feeds the page's table view, at a coarser width.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from archmon.climate import dew_point
from dashboards.web import queries
from dashboards.web.context import WebContext

__all__ = ["MAX_WIDTH", "RANGES", "SeriesData", "SlotSeries", "room_series"]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
RANGES: dict[str, int] = {"24h": DAY_MS, "7d": 7 * DAY_MS, "30d": 30 * DAY_MS, "1y": 365 * DAY_MS}
RAW_UP_TO_MS = 2 * DAY_MS
MAX_WIDTH = 4000
Resolution = Literal["raw", "hour"]


@dataclass
class SlotSeries:
    """One sensor's values per slot (None: no data in the slot)."""

    sensor: str
    mean: list[float | None]
    min: list[float | None]
    max: list[float | None]


@dataclass
class SeriesData:
    """What a chart (and the table view) draws."""

    room: str
    quantity: str
    start_ms: int
    end_ms: int
    step_ms: int
    resolution: Resolution
    x_ms: list[int]
    series: list[SlotSeries]
    dew_point: list[SlotSeries] = field(default_factory=list)
    band: dict[str, float | None] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def points(self) -> int:
        """Values sent (means, mins and maxes of every series)."""
        return sum(3 * len(s.mean) for s in self.series) + sum(len(s.mean) for s in self.dew_point)

    def to_json(self) -> dict[str, Any]:
        """The API's form (times in epoch seconds, as uPlot takes them)."""
        def rounded(values: list[float | None]) -> list[float | None]:
            return [None if v is None else round(v, 2) for v in values]

        return {
            "room": self.room, "quantity": self.quantity, "start_ms": self.start_ms, "end_ms": self.end_ms,
            "step_ms": self.step_ms, "resolution": self.resolution, "x": [t / 1000 for t in self.x_ms],
            "series": [{"sensor": s.sensor, "mean": rounded(s.mean), "min": rounded(s.min), "max": rounded(s.max)}
                       for s in self.series],
            "dew_point": [{"sensor": s.sensor, "mean": rounded(s.mean)} for s in self.dew_point],
            "band": self.band, "events": self.events, "points": self.points,
        }


class _Slots:
    """Accumulates (ts, min, max, sum, count) into equal slots."""

    def __init__(self, start_ms: int, step_ms: int, count: int) -> None:
        self.start, self.step, self.count = start_ms, step_ms, count
        self.lo: list[float | None] = [None] * count
        self.hi: list[float | None] = [None] * count
        self.sum = [0.0] * count
        self.n = [0] * count

    def add(self, ts: int, lo: float, hi: float, total: float, n: int) -> None:
        i = (ts - self.start) // self.step
        if 0 <= i < self.count:
            old_lo, old_hi = self.lo[i], self.hi[i]
            self.lo[i] = lo if old_lo is None or lo < old_lo else old_lo
            self.hi[i] = hi if old_hi is None or hi > old_hi else old_hi
            self.sum[i] += total
            self.n[i] += n

    def result(self, sensor: str) -> SlotSeries:
        mean = [self.sum[i] / self.n[i] if self.n[i] else None for i in range(self.count)]
        return SlotSeries(sensor, mean, self.lo, self.hi)


Row = tuple[int, float, float, float, int]  # (ts, min, max, sum, count)


def _read(ctx: WebContext, sensor: str, quantity: str, start: int, end: int, resolution: Resolution) -> list[Row]:
    if resolution == "raw":
        return [(ts, v, v, v, 1) for ts, v in ctx.store.series(sensor, quantity, start, end)]
    return [(max(b.start_ms, start), b.min, b.max, b.sum, b.count)
            for b in ctx.store.buckets(sensor, quantity, start - start % HOUR_MS, end, "hour")]


def _spacing(rows: list[Row]) -> int:
    """The median time between readings (the data's own resolution)."""
    if len(rows) < 2:
        return 60_000
    gaps = sorted(b[0] - a[0] for a, b in itertools.pairwise(rows))
    return max(gaps[len(gaps) // 2], 1)


def _slotted(rows: list[Row], start: int, step: int, count: int, sensor: str) -> SlotSeries:
    slots = _Slots(start, step, count)
    for row in rows:
        slots.add(*row)
    return slots.result(sensor)


def room_series(ctx: WebContext, room_id: str, quantity: str, start_ms: int, end_ms: int, *,
                width: int = 1200, events: bool = True) -> SeriesData:
    """The chart data of ``quantity`` (temperature or humidity) in a room over ``[start_ms, end_ms)``.

    Args:
        width: at most this many slots (the chart's width in pixels); clamped to 10..``MAX_WIDTH``. A slot is
            never shorter than the data's own spacing (readings every 10 min give 10-min slots), so a line
            has no holes where there is data.
        events: also door openings, alerts and access sessions in the range (chart markers).
    """
    width = max(10, min(MAX_WIDTH, int(width)))
    span = max(end_ms - start_ms, 60_000)
    sensors = [s for s in ctx.room_sensors(room_id) if s.kind in ("temperature_humidity", quantity, "multi")]
    resolution: Resolution = "raw" if span <= RAW_UP_TO_MS else "hour"
    rows = {s.id: _read(ctx, s.id, quantity, start_ms, end_ms, resolution) for s in sensors}
    rows = {sensor: found for sensor, found in rows.items() if found}
    native = max((_spacing(r) for r in rows.values()), default=60_000) if resolution == "raw" else HOUR_MS
    step = max(native, math.ceil(span / width))
    count = math.ceil(span / step)
    x = [start_ms + i * step + step // 2 for i in range(count)]
    out = [_slotted(found, start_ms, step, count, sensor) for sensor, found in rows.items()]
    dew: list[SlotSeries] = []
    if quantity == "temperature":
        for series in out:
            humidity = _read(ctx, series.sensor, "humidity", start_ms, end_ms, resolution)
            if humidity:
                rh = _slotted(humidity, start_ms, step, count, series.sensor).mean
                td = [None if t is None or h is None else dew_point(t, h) for t, h in zip(series.mean, rh, strict=True)]
                dew.append(SlotSeries(series.sensor, td, td, td))
    room = ctx.room(room_id)
    band: dict[str, float | None] = {}
    if room is not None:
        from alerts.site import load_settings, room_profiles

        profile = room_profiles(ctx.config, load_settings(ctx.config)).get(room_id)
        limits = profile.band(quantity) if profile else None
        if limits is not None:
            band = {"low": limits.low, "high": limits.high}
    data = SeriesData(room_id, quantity, start_ms, end_ms, step, resolution, x, out, dew, band)
    if events:
        data.events = room_events(ctx, room_id, start_ms, end_ms, resolution)
    return data


def room_events(ctx: WebContext, room_id: str, start_ms: int, end_ms: int, resolution: Resolution,
                limit: int = 500) -> dict[str, list[dict[str, Any]]]:
    """Chart markers: door openings (raw transitions; hours with an opening for long ranges), alerts that
    fired, access sessions overlapping the range."""
    doors: list[dict[str, Any]] = []
    for sensor in ctx.room_sensors(room_id):
        if sensor.kind not in ("door", "multi"):
            continue
        if resolution == "raw":
            last = 0.0
            for ts, value in ctx.store.series(sensor.id, "door", start_ms, end_ms):
                if value >= 1 and last < 1:
                    doors.append({"ts": ts / 1000, "sensor": sensor.id})
                last = value
        else:
            for b in ctx.store.buckets(sensor.id, "door", start_ms - start_ms % HOUR_MS, end_ms, "hour"):
                if b.max >= 1:
                    doors.append({"ts": b.start_ms / 1000, "sensor": sensor.id, "hour": True})
    doors.sort(key=lambda d: d["ts"])
    with ctx.readers.read() as conn:
        fired = queries.alert_markers(conn, room_id, start_ms, end_ms, limit)
    alerts = [{"ts": a["ts_ms"] / 1000, "id": a["id"], "severity": a["severity"], "rule": a["rule"],
               "title_zh": a["title_zh"], "title_en": a["title_en"]} for a in fired]
    sessions = [{"start": s.opened_ms / 1000, "end": None if s.closed_ms is None else s.closed_ms / 1000,
                 "id": s.id, "people": list(s.people), "approval": s.approval}
                for s in reversed(ctx.access.sessions(room=room_id, start_ms=start_ms, end_ms=end_ms, limit=limit))]
    return {"door": doors[-limit:], "alerts": alerts, "sessions": sessions}
