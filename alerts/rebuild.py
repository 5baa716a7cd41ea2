"""Rebuilding the engine's windows and rule memory from the readings store at start (no checkpoint).

Nothing of the rolling windows or per-series rule memory is persisted by the alert engine: everything is
derived from what the store holds anyway, so a restart (or a crash) resumes from the readings themselves.

- **Newest reading** of every series: ``history.latest()`` (one query). Late and too-old readings after a
  restart are told apart against it, as before the restart.
- **24 h window** (hour layer): the series' hour rollups of the newest reading's hour and the 23 before: the
  same buckets live feeding fills, because the layer's buckets are the store's UTC hours.
- **Rate window** (fine layer): the raw readings of the window (about the last hour).
- **Rule memory**, per rule (``Rule.rebuild``): the day being judged from the daily rollup (stability), the
  flat line walking back over raw readings and hour rollups (stuck), doors open now (door_hours). Rules
  that judge the newest reading only (band, mould, battery, door_open) need nothing; the lifecycle (pending
  delays, active alerts) is in the alert store.

Raw readings and hour rollups are fetched per series, lazily (only for series whose rules ask), so the cost
is a few indexed queries per temperature/humidity series. What the store does not have (readings still
in the writer's queue at a crash) was never judged either, and the collector delivers it again.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from alerts._series import NEVER, Newest, SeriesTable
from alerts._windows import HOUR_MS, HOURS
from alerts.catchup import load_judged, unjudged, watermarks_kept_since
from alerts.history import HistoryBucket, ReadingHistory

if TYPE_CHECKING:
    from alerts.engine import AlertEngine

__all__ = ["DayAggregate", "QueryCount", "ReadingHistory", "RebuildReport", "SeriesHistory", "rebuild",
           "refill_windows"]

log = logging.getLogger(__name__)


class DayAggregate(NamedTuple):
    """A local day of one series: its daily rollup and the times of its first and last reading."""

    min: float
    max: float
    sum: float
    count: int
    first_ms: int
    last_ms: int


@dataclass(slots=True)
class QueryCount:
    """Queries made to the store so far."""

    queries: int = 0


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What :func:`rebuild` did.

    Attributes:
        series: series whose newest reading was found in the store.
        queries: queries made to the store.
        seconds: time it took.
    """

    series: int
    queries: int
    seconds: float


class SeriesHistory:
    """What the store holds about one series, fetched when first asked for.

    Attributes:
        sensor, quantity: the series.
        newest: ``(ts_ms, value)`` of its newest stored reading (None: none).
        raw_start: where :attr:`raw` starts: the earlier of the newest reading's hour and its rate window.
    """

    def __init__(self, source: ReadingHistory, sensor: str, quantity: str, newest: Newest | None,
                 *, raw_start: int, hours_back: int, counter: QueryCount) -> None:
        self.source = source
        self.sensor = sensor
        self.quantity = quantity
        self.newest = newest
        self.raw_start = raw_start
        self._hours_back = hours_back
        self._counter = counter
        self._raw: list[tuple[int, float]] | None = None
        self._hours: list[HistoryBucket] | None = None

    def readings(self, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """Raw readings with ``start_ms <= ts < end_ms``, oldest first (a query)."""
        if end_ms <= start_ms:
            return []
        self._counter.queries += 1
        return self.source.series(self.sensor, self.quantity, start_ms, end_ms)

    @property
    def raw(self) -> list[tuple[int, float]]:
        """Raw readings from :attr:`raw_start` to the newest, oldest first."""
        if self._raw is None:
            self._raw = [] if self.newest is None else self.readings(self.raw_start, self.newest.ts_ms + 1)
        return self._raw

    @property
    def hours(self) -> list[HistoryBucket]:
        """Hour rollups of the newest reading's hour and the ones before it (at least the 24 h window)."""
        if self._hours is None:
            if self.newest is None:
                self._hours = []
            else:
                top = self.newest.ts_ms // HOUR_MS
                self._counter.queries += 1
                start = (top - self._hours_back + 1) * HOUR_MS
                self._hours = list(self.source.buckets(self.sensor, self.quantity, start, (top + 1) * HOUR_MS, "hour"))
        return self._hours

    def _hour_buckets(self, start_ms: int, end_ms: int) -> list[HistoryBucket]:
        """Hour rollups overlapping ``[start_ms, end_ms)`` (from :attr:`hours` when they cover it)."""
        first = start_ms // HOUR_MS * HOUR_MS
        held = self.hours
        if self.newest is not None and first >= (self.newest.ts_ms // HOUR_MS - self._hours_back + 1) * HOUR_MS:
            return [b for b in held if first <= b.start_ms < end_ms]
        self._counter.queries += 1
        return list(self.source.buckets(self.sensor, self.quantity, first, end_ms, "hour"))

    def _edge(self, buckets: list[HistoryBucket], start_ms: int, end_ms: int, *, last: bool) -> int | None:
        for bucket in reversed(buckets) if last else buckets:
            if not bucket.count:
                continue
            lo, hi = max(start_ms, bucket.start_ms), min(end_ms, bucket.start_ms + HOUR_MS)
            if lo >= self.raw_start and self.newest is not None:
                rows = [row for row in self.raw if lo <= row[0] < hi]
            else:
                rows = self.readings(lo, hi)
            if rows:
                return rows[-1][0] if last else rows[0][0]
        return None

    def day(self, start_ms: int, end_ms: int) -> DayAggregate | None:
        """The local day ``[start_ms, end_ms)``: its daily rollup, first and last reading (None: no reading)."""
        self._counter.queries += 1
        found = self.source.buckets(self.sensor, self.quantity, start_ms, start_ms + 1, "day")
        if not found or not found[0].count:
            return None
        bucket = found[0]
        hours = self._hour_buckets(start_ms, end_ms)
        first = self._edge(hours, start_ms, end_ms, last=False)
        if self.newest is not None and start_ms <= self.newest.ts_ms < end_ms:
            last: int | None = self.newest.ts_ms
        else:
            last = self._edge(hours, start_ms, end_ms, last=True)
        if first is None or last is None:
            return None
        return DayAggregate(bucket.min, bucket.max, bucket.sum, bucket.count, first, last)


def rebuild(engine: AlertEngine, history: ReadingHistory, now_ms: int) -> RebuildReport:
    """Rebuild ``engine``'s series table, windows and rule memory from ``history`` (see the module docstring).

    Call once, after building the engine and before it judges anything.
    """
    started = time.perf_counter()
    counter = QueryCount(queries=1)  # latest()
    series = engine.series
    found = 0
    for row in history.latest():
        sensor = engine.sensors.get(row.sensor)
        if sensor is None:
            continue
        slot = series.find(sensor.id, row.quantity)
        if slot is None:
            slot = series.add(sensor.id, row.quantity, engine.window_needs(sensor, row.quantity))
        series.set_newest(slot, row.ts_ms, row.value)
        found += 1
    load_judged(series, engine.store)
    stored_until = max((ts for ts in series.newest_ts if ts != NEVER), default=0)
    kept_since = watermarks_kept_since(engine.store, stored_until + 1, now_ms)
    counter.queries += 1
    stuck = engine.settings.stuck.hours if any(rule.name == "stuck" for rule in engine.rules) else 0.0
    hours_back = max(HOURS, math.ceil(stuck) + 1)
    for slot, (sensor_id, _) in enumerate(series.keys):
        sensor = engine.sensors.get(sensor_id)
        past = _load_windows(series, slot, history, hours_back, counter)
        if sensor is None or past is None:
            continue
        for rule in engine.rules:
            rule.rebuild(sensor, past)
        left = unjudged(series, slot, past, sensor.room, kept_since if sensor.live else None)
        if left is not None:
            engine.unjudged.append(left)
    report = RebuildReport(found, counter.queries, time.perf_counter() - started)
    log.info("alert engine rebuilt %d series from the store in %.2f s (%d queries) at %d; %d series with readings "
             "stored after what the engine had judged", report.series, report.seconds, report.queries, now_ms,
             len(engine.unjudged))
    return report


def _load_windows(series: SeriesTable, slot: int, history: ReadingHistory, hours_back: int,
                  counter: QueryCount) -> SeriesHistory | None:
    """Set one series' window rows from the store (as of its newest reading); its history, None: no reading."""
    newest = series.newest(slot)
    if newest is None:
        return None
    sensor_id, quantity = series.keys[slot]
    raw_start = newest.ts_ms // HOUR_MS * HOUR_MS
    fine_row = series.fine_row[slot]
    if fine_row >= 0:
        raw_start = min(raw_start, series.fine.window_start_ms(newest.ts_ms, series.fine_window[slot]))
    past = SeriesHistory(history, sensor_id, quantity, newest, raw_start=raw_start, hours_back=hours_back,
                         counter=counter)
    hour_row = series.hour_row[slot]
    if hour_row >= 0:
        series.hours.load(hour_row, newest.ts_ms, past.hours)
    if fine_row >= 0:
        series.fine.load(fine_row, newest.ts_ms, past.raw)
    return past


def refill_windows(series: SeriesTable, history: ReadingHistory, slots: Sequence[int]) -> int:
    """Set the window rows of ``slots`` from the store again (a reload gave them new rows: a rate window of
    another length, the 24 h window of a rule enabled afresh), as a restart would; returns the queries made.
    Call under the engine lock (a reading judged meanwhile would be left out of the rows)."""
    counter = QueryCount()
    for slot in slots:
        _load_windows(series, slot, history, HOURS, counter)
    return counter.queries
