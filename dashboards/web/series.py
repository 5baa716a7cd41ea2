"""Chart data for a room: a quantity of each of its sensors over a range, downsampled to the chart's width.

Up to two days come from the raw readings; longer ranges from the **hour rollups** (a year of one-minute
readings is 525,600 rows per series but only 8,760 hour buckets). Either way the range is cut into at
most ``width`` equal slots (never finer than the data: one minute for raw, one hour for rollups), and each
slot sends its mean, min and max, so the browser receives at most a few thousand points and the chart's
envelope still shows every extreme. The same function feeds the page's table view, whose rows are
local calendar slots in the site's zone (:func:`table_edges`: days for a year, 6 h for 30 days, hours for
7 days, 15 min for a day).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from archmon.climate import dew_point
from archmon.timeutil import from_ms
from dashboards.web import queries
from dashboards.web.context import WebContext
from dashboards.web.devices import room_runs

__all__ = ["MAX_TS_MS", "MAX_WIDTH", "RANGES", "TABLE_SLOTS", "Aggregate", "SeriesData", "SlotSeries", "room_series",
           "table_edges"]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
RANGES: dict[str, int] = {"24h": DAY_MS, "7d": 7 * DAY_MS, "30d": 30 * DAY_MS, "1y": 365 * DAY_MS}
RAW_UP_TO_MS = 2 * DAY_MS
MAX_WIDTH = 4000
MAX_TS_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the latest time a series request may name."""
Resolution = Literal["raw", "hour"]
TABLE_SLOTS: dict[str, tuple[int, int]] = {"24h": (96, 15), "7d": (168, 60), "30d": (120, 360), "1y": (365, 1440)}
"""Per range: rows of the table view and their length in local minutes (15 min, 1 h, 6 h, 1 day)."""


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
    starts_ms: list[int] = field(default_factory=list)
    """Where each slot starts (slots of the table view are local calendar slots, not all equally long)."""

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


class Aggregate(NamedTuple):
    """Readings of one series within a stretch of time: a raw reading (count 1) or an hour rollup."""

    ts_ms: int
    min: float
    max: float
    sum: float
    count: int


class _Slots:
    """Accumulates aggregates into the slots between consecutive ``edges``."""

    def __init__(self, edges: Sequence[int]) -> None:
        self.edges = edges
        self.count = len(edges) - 1
        steps = {b - a for a, b in itertools.pairwise(edges)}
        self.step = steps.pop() if len(steps) == 1 else None  # equal slots: arithmetic, not a search
        self.lo: list[float | None] = [None] * self.count
        self.hi: list[float | None] = [None] * self.count
        self.sum = [0.0] * self.count
        self.n = [0] * self.count

    def add(self, row: Aggregate) -> None:
        ts = row.ts_ms
        i = (ts - self.edges[0]) // self.step if self.step else bisect.bisect_right(self.edges, ts) - 1
        if 0 <= i < self.count:
            old_lo, old_hi = self.lo[i], self.hi[i]
            self.lo[i] = row.min if old_lo is None or row.min < old_lo else old_lo
            self.hi[i] = row.max if old_hi is None or row.max > old_hi else old_hi
            self.sum[i] += row.sum
            self.n[i] += row.count

    def result(self, sensor: str) -> SlotSeries:
        mean = [self.sum[i] / self.n[i] if self.n[i] else None for i in range(self.count)]
        return SlotSeries(sensor, mean, self.lo, self.hi)


def _read(ctx: WebContext, sensor: str, quantity: str, start: int, end: int,
          resolution: Resolution) -> list[Aggregate]:
    if resolution == "raw":
        return [Aggregate(ts, v, v, v, 1) for ts, v in ctx.store.series(sensor, quantity, start, end)]
    return [Aggregate(max(b.start_ms, start), b.min, b.max, b.sum, b.count)
            for b in ctx.store.buckets(sensor, quantity, start - start % HOUR_MS, end, "hour")]


def _spacing(rows: list[Aggregate]) -> int:
    """The median time between readings (the data's own resolution)."""
    if len(rows) < 2:
        return 60_000
    gaps = sorted(b.ts_ms - a.ts_ms for a, b in itertools.pairwise(rows))
    return max(gaps[len(gaps) // 2], 1)


def _slotted(rows: list[Aggregate], edges: Sequence[int], sensor: str) -> SlotSeries:
    slots = _Slots(edges)
    for row in rows:
        slots.add(row)
    return slots.result(sensor)


def table_edges(span: str, end_ms: int, tz: ZoneInfo) -> list[int]:
    """The table view's slots for range ``span`` ending with the slot that holds ``end_ms``: local calendar
    slots of the site's zone (midnight to midnight for a year, 00/06/12/18 h for 30 days...), as
    ``rows + 1`` increasing edges (a day across a DST change is 23 or 25 h long)."""
    rows, minutes = TABLE_SLOTS[span]
    per_day = 1440 // minutes
    today = from_ms(end_ms).astimezone(tz).date()
    days = math.ceil(rows / per_day) + 2
    midnights = [datetime.combine(today - timedelta(days=n), datetime.min.time()) for n in range(days, -2, -1)]
    edges = sorted({int((midnight + timedelta(minutes=i * minutes)).replace(tzinfo=tz).timestamp() * 1000)
                    for midnight in midnights for i in range(per_day)})
    top = bisect.bisect_right(edges, end_ms)  # edges[top] ends the slot holding end_ms
    return edges[top - rows:top + 1]


def room_series(ctx: WebContext, room_id: str, quantity: str, start_ms: int, end_ms: int, *,
                width: int = 1200, events: bool = True, edges: Sequence[int] | None = None) -> SeriesData:
    """The chart data of ``quantity`` (temperature or humidity) in a room over ``[start_ms, end_ms)``.

    Args:
        width: at most this many slots (the chart's width in pixels); clamped to 10..``MAX_WIDTH``. A slot is
            never shorter than the data's own spacing (readings every 10 min give 10-min slots), so a line
            has no holes where there is data.
        events: also door openings, alerts and access sessions in the range (chart markers).
        edges: the slots' edges instead (the table view's local calendar slots, :func:`table_edges`); the
            range is then ``[edges[0], edges[-1])``.
    """
    if edges is not None:
        start_ms, end_ms = edges[0], edges[-1]
    width = max(10, min(MAX_WIDTH, int(width)))
    span = max(end_ms - start_ms, 60_000)
    sensors = [s for s in ctx.room_sensors(room_id) if s.kind in ("temperature_humidity", quantity, "multi")]
    resolution: Resolution = "raw" if span <= RAW_UP_TO_MS else "hour"
    rows = {s.id: _read(ctx, s.id, quantity, start_ms, end_ms, resolution) for s in sensors}
    rows = {sensor: found for sensor, found in rows.items() if found}
    if edges is None:
        native = max((_spacing(r) for r in rows.values()), default=60_000) if resolution == "raw" else HOUR_MS
        step = max(native, math.ceil(span / width))
        edges = [start_ms + i * step for i in range(math.ceil(span / step) + 1)]
    else:
        step = span // (len(edges) - 1)
    x = [(a + b) // 2 for a, b in itertools.pairwise(edges)]
    out = [_slotted(found, edges, sensor) for sensor, found in rows.items()]
    dew: list[SlotSeries] = []
    if quantity == "temperature":
        for series in out:
            humidity = _read(ctx, series.sensor, "humidity", start_ms, end_ms, resolution)
            if humidity:
                rh = _slotted(humidity, edges, series.sensor).mean
                td = [None if t is None or h is None else dew_point(t, h) for t, h in zip(series.mean, rh, strict=True)]
                dew.append(SlotSeries(series.sensor, td, td, td))
    room = ctx.room(room_id)
    band: dict[str, float | None] = {}
    if room is not None:
        profile = ctx.room_profiles().get(room_id)
        limits = profile.band(quantity) if profile else None
        if limits is not None:
            band = {"low": limits.low, "high": limits.high}
    data = SeriesData(room_id, quantity, start_ms, end_ms, step, resolution, x, out, dew, band,
                      starts_ms=list(edges[:-1]))
    if events:
        data.events = room_events(ctx, room_id, start_ms, end_ms, resolution)
    return data


def room_events(ctx: WebContext, room_id: str, start_ms: int, end_ms: int, resolution: Resolution,
                limit: int = 500) -> dict[str, list[dict[str, Any]]]:
    """Chart markers: door openings (raw transitions; hours with an opening for long ranges), alerts that
    fired, access sessions overlapping the range, and when the room's climate-control devices ran."""
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
    runs = [{"actuator": r.actuator, "start": r.start_ms / 1000, "end": None if r.end_ms is None else r.end_ms / 1000}
            for r in room_runs(ctx, room_id, start_ms, end_ms, limit)]
    return {"door": doors[-limit:], "alerts": alerts, "sessions": sessions, "runs": runs}
