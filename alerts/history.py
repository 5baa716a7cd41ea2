"""Where the engine rebuilds its windows from at start: the readings store's read API.

:class:`ReadingHistory` is what :func:`alerts.rebuild.rebuild` asks of it; ``collector.store.SqliteStore``
provides it (hour rollups in UTC hours, day rollups in the site's calendar days, raw readings, the newest
reading of every series). :class:`MemoryHistory` provides the same over readings held in memory, for
``archmon replay`` (which has no readings store) and tests.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from archmon.domain import Reading

__all__ = ["HistoryBucket", "LatestReading", "MemoryHistory", "ReadingHistory"]

_HOUR_MS = 3_600_000


class LatestReading(Protocol):
    """The newest stored reading of one series (``collector.store.LatestValue`` has these)."""

    @property
    def sensor(self) -> str: ...
    @property
    def quantity(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def ts_ms(self) -> int: ...


class HistoryBucket(Protocol):
    """One rollup bucket (``collector.store.Bucket`` has these)."""

    @property
    def start_ms(self) -> int: ...
    @property
    def min(self) -> float: ...
    @property
    def max(self) -> float: ...
    @property
    def sum(self) -> float: ...
    @property
    def count(self) -> int: ...


class ReadingHistory(Protocol):
    """The read API the engine rebuilds from (``collector.store.SqliteStore`` implements it)."""

    def latest(self) -> Sequence[LatestReading]:
        """The newest reading of every series."""
        ...

    def series(self, sensor: str, quantity: str, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """Raw ``(ts_ms, value)`` with ``start_ms <= ts < end_ms``, oldest first."""
        ...

    def buckets(self, sensor: str, quantity: str, start_ms: int, end_ms: int,
                resolution: Literal["hour", "day"]) -> Sequence[HistoryBucket]:
        """Rollups whose start lies in ``[start_ms, end_ms)``, oldest first (hours: UTC; days: site zone)."""
        ...


class _Latest(NamedTuple):
    sensor: str
    quantity: str
    value: float
    ts_ms: int


class _Bucket(NamedTuple):
    start_ms: int
    min: float
    max: float
    sum: float
    count: int


class MemoryHistory:
    """:class:`ReadingHistory` over readings held in memory (replay, tests): the same answers the store
    gives for the same readings (duplicates of ``(sensor, quantity, ts)`` keep the first, as the store's
    idempotent key does).

    Args:
        readings: the readings, in any order.
        tz: the site's zone (day buckets are its calendar days).
    """

    def __init__(self, readings: Iterable[Reading], tz: ZoneInfo) -> None:
        self.tz = tz
        found: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
        for reading in readings:
            found[(reading.sensor, reading.quantity)].setdefault(reading.ts_ms, reading.value)
        self._ts: dict[tuple[str, str], list[int]] = {}
        self._values: dict[tuple[str, str], list[float]] = {}
        for key, rows in found.items():
            ordered = sorted(rows.items())
            self._ts[key] = [ts for ts, _ in ordered]
            self._values[key] = [value for _, value in ordered]

    def add(self, reading: Reading) -> None:
        """Hold one more reading (a replay adds each row before judging it, as the store has it first)."""
        key = (reading.sensor, reading.quantity)
        ts, values = self._ts.setdefault(key, []), self._values.setdefault(key, [])
        if not ts or reading.ts_ms > ts[-1]:
            ts.append(reading.ts_ms)
            values.append(reading.value)
            return
        i = bisect.bisect_left(ts, reading.ts_ms)
        if i < len(ts) and ts[i] == reading.ts_ms:
            return  # the first copy stays, as in the store
        ts.insert(i, reading.ts_ms)
        values.insert(i, reading.value)

    def prune(self, before_ms: int) -> None:
        """Forget readings older than ``before_ms`` (a long replay keeps only what a rebuild or a late reading
        may look at)."""
        for key, ts in self._ts.items():
            cut = bisect.bisect_left(ts, before_ms)
            if cut:
                del ts[:cut]
                del self._values[key][:cut]

    def latest(self) -> list[_Latest]:
        return [_Latest(sensor, quantity, self._values[(sensor, quantity)][-1], ts[-1])
                for (sensor, quantity), ts in sorted(self._ts.items()) if ts]

    def series(self, sensor: str, quantity: str, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        ts = self._ts.get((sensor, quantity), [])
        values = self._values.get((sensor, quantity), [])
        lo, hi = bisect.bisect_left(ts, start_ms), bisect.bisect_left(ts, end_ms)
        return list(zip(ts[lo:hi], values[lo:hi], strict=True))

    def _day_start(self, ts_ms: int) -> int:
        day = dt.datetime.fromtimestamp(ts_ms / 1000, self.tz).date()
        return int(dt.datetime.combine(day, dt.time(0), tzinfo=self.tz).timestamp() * 1000)

    def buckets(self, sensor: str, quantity: str, start_ms: int, end_ms: int,
                resolution: Literal["hour", "day"]) -> list[_Bucket]:
        if resolution not in ("hour", "day"):
            raise ValueError(f"resolution must be 'hour' or 'day', got {resolution!r}")
        ts = self._ts.get((sensor, quantity), [])
        values = self._values.get((sensor, quantity), [])
        grouped: dict[int, list[float]] = defaultdict(list)
        margin = _HOUR_MS if resolution == "hour" else 26 * _HOUR_MS  # a bucket starting in range may end past it
        lo, hi = bisect.bisect_left(ts, start_ms), bisect.bisect_left(ts, end_ms + margin)
        for t, value in zip(ts[lo:hi], values[lo:hi], strict=True):
            start = t // _HOUR_MS * _HOUR_MS if resolution == "hour" else self._day_start(t)
            if start_ms <= start < end_ms:
                grouped[start].append(value)
        return [_Bucket(start, min(vs), max(vs), sum(vs), len(vs)) for start, vs in sorted(grouped.items())]
