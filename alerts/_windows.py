"""Rolling windows as time-bucketed aggregates, one flat structure per layer for every series.

A layer keeps, for each of its rows (one row per series that needs it), a ring of buckets in flat
``array`` columns: no Python object per bucket or per reading. A reading goes into the bucket of its own
time, so the order readings arrive in does not matter, and a window's aggregate is a C-speed ``min``/``max``/
``sum`` over the row's slice.

- :class:`HourLayer` (24 h stability): buckets are UTC hours, aligned with the store's ``rollup_hour``, so a
  window is rebuilt exactly from the rollups. **The window is the hour of the series' newest reading plus
  the 23 before** (between 23 and 24 h of readings); min, max, sum and count per bucket.
- :class:`FineLayer` (rate of change): buckets of ``width`` = the rule's window / 60, rebuilt from raw
  readings. **The window is the bucket of the newest reading plus the 60 before** (at least the rule's
  window, at most one bucket more); min and max per bucket.

A reading newer than the row's newest bucket moves the window on (buckets that leave it are emptied); a
reading older than the window is refused (``add`` returns False) and changes nothing.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from alerts.history import HistoryBucket

__all__ = ["FINE_BUCKETS", "HOURS", "HOUR_MS", "FineLayer", "HourLayer", "Span", "WindowStats"]

HOUR_MS = 3_600_000
HOURS = 24
"""Hour buckets in the 24 h window: the newest reading's hour and the 23 before."""
FINE_BUCKETS = 60
"""Fine buckets per rate window; the ring holds one more (the current bucket)."""
_EMPTY_MIN = float("inf")
_EMPTY_MAX = float("-inf")
_NEVER = -(2**62)


class Span(NamedTuple):
    """The lowest and highest value in a window."""

    min: float
    max: float


class WindowStats(NamedTuple):
    """Aggregate of the readings in one window."""

    min: float
    max: float
    sum: float
    count: int

    @property
    def mean(self) -> float:
        """Mean of the readings."""
        return self.sum / self.count


class _Ring:
    """Rows of ``size`` buckets in flat columns; ``top[row]`` is the index of the row's newest bucket."""

    size: int

    def __init__(self) -> None:
        self.top = array("q")
        self.min = array("d")
        self.max = array("d")

    def __len__(self) -> int:
        return len(self.top)

    def _new_row(self) -> int:
        self.top.append(_NEVER)
        self.min.extend([_EMPTY_MIN] * self.size)
        self.max.extend([_EMPTY_MAX] * self.size)
        return len(self.top) - 1

    def _clear(self, i: int) -> None:
        self.min[i] = _EMPTY_MIN
        self.max[i] = _EMPTY_MAX

    def _clear_row(self, row: int) -> None:
        base, size = row * self.size, self.size
        self.min[base:base + size] = array("d", [_EMPTY_MIN]) * size
        self.max[base:base + size] = array("d", [_EMPTY_MAX]) * size

    def _place(self, row: int, bucket: int) -> int:
        """The flat index of ``bucket`` in ``row`` (moving the window on if it is newer), or -1 if the bucket
        is older than the window."""
        size = self.size
        top = self.top[row]
        base = row * size
        if bucket > top:
            if top == _NEVER:
                pass  # a new row is empty already
            elif bucket - top >= size:
                self._clear_row(row)
            else:
                for b in range(top + 1, bucket + 1):
                    self._clear(base + b % size)
            self.top[row] = bucket
        elif bucket <= top - size:
            return -1
        return base + bucket % size

    def spans(self, row: int) -> Span | None:
        """The lowest and highest value in the row's window (None: no reading in it)."""
        base = row * self.size
        high = max(self.max[base:base + self.size])
        if high == _EMPTY_MAX:
            return None
        return Span(min(self.min[base:base + self.size]), high)

    def nbytes(self) -> int:
        """Bytes held by the columns (for the memory figures)."""
        return sum(column.itemsize * len(column) for column in vars(self).values() if isinstance(column, array))


class HourLayer(_Ring):
    """UTC-hour buckets (min, max, sum, count), :data:`HOURS` per row."""

    size = HOURS

    def __init__(self) -> None:
        super().__init__()
        self.sum = array("d")
        self.count = array("i")

    def new_row(self) -> int:
        """A new empty row; returns its number."""
        self.sum.extend([0.0] * self.size)
        self.count.extend([0] * self.size)
        return self._new_row()

    def _clear(self, i: int) -> None:
        super()._clear(i)
        self.sum[i] = 0.0
        self.count[i] = 0

    def _clear_row(self, row: int) -> None:
        super()._clear_row(row)
        base, size = row * self.size, self.size
        self.sum[base:base + size] = array("d", [0.0]) * size
        self.count[base:base + size] = array("i", [0]) * size

    def add(self, row: int, ts_ms: int, value: float) -> bool:
        """Put a reading in the bucket of its hour; False (nothing changed) if older than the window."""
        i = self._place(row, ts_ms // HOUR_MS)
        if i < 0:
            return False
        if value < self.min[i]:
            self.min[i] = value
        if value > self.max[i]:
            self.max[i] = value
        self.sum[i] += value
        self.count[i] += 1
        return True

    def load(self, row: int, newest_ms: int, buckets: Iterable[HistoryBucket]) -> None:
        """Set a row from hour rollups (those older than the window of ``newest_ms`` are left out)."""
        self._place(row, newest_ms // HOUR_MS)
        for bucket in buckets:
            i = self._place(row, bucket.start_ms // HOUR_MS)
            if i >= 0 and bucket.count:
                self.min[i], self.max[i], self.sum[i], self.count[i] = bucket.min, bucket.max, bucket.sum, bucket.count

    def spans_since(self, row: int, ts_ms: int) -> Span | None:
        """The lowest and highest value in the row's buckets from the hour of ``ts_ms`` on (None: none)."""
        top = self.top[row]
        first = max(ts_ms // HOUR_MS, top - self.size + 1)
        if top == _NEVER or first > top:
            return None
        base, size = row * self.size, self.size
        low, high = _EMPTY_MIN, _EMPTY_MAX
        for bucket in range(first, top + 1):
            i = base + bucket % size
            low, high = min(low, self.min[i]), max(high, self.max[i])
        return None if high == _EMPTY_MAX else Span(low, high)

    def stats(self, row: int) -> WindowStats | None:
        """The window's aggregate (None: no reading in it)."""
        spans = self.spans(row)
        if spans is None:
            return None
        base = row * self.size
        return WindowStats(spans.min, spans.max, sum(self.sum[base:base + self.size]),
                           sum(self.count[base:base + self.size]))


class FineLayer(_Ring):
    """Buckets of a per-row width (min, max), :data:`FINE_BUCKETS` + 1 per row."""

    size = FINE_BUCKETS + 1

    def __init__(self) -> None:
        super().__init__()
        self.width = array("q")

    @staticmethod
    def width_for(window_ms: int) -> int:
        """Bucket width for a rate window: a sixtieth of it (at least 1 ms)."""
        return max(1, -(-window_ms // FINE_BUCKETS))

    def new_row(self, window_ms: int) -> int:
        """A new empty row for a rate window of ``window_ms``; returns its number."""
        self.width.append(self.width_for(window_ms))
        return self._new_row()

    def reset(self, row: int, window_ms: int) -> None:
        """Empty a row and give it a new window (the rate window of its profile changed)."""
        self.width[row] = self.width_for(window_ms)
        if self.top[row] != _NEVER:
            self._clear_row(row)
        self.top[row] = _NEVER

    def add(self, row: int, ts_ms: int, value: float) -> bool:
        """Put a reading in the bucket of its time; False (nothing changed) if older than the window."""
        i = self._place(row, ts_ms // self.width[row])
        if i < 0:
            return False
        if value < self.min[i]:
            self.min[i] = value
        if value > self.max[i]:
            self.max[i] = value
        return True

    def load(self, row: int, newest_ms: int, readings: list[tuple[int, float]]) -> None:
        """Set a row from raw ``(ts_ms, value)`` readings (those older than the window of ``newest_ms`` are
        left out): the same buckets adding them one by one gives, without moving the window each time."""
        width, size = self.width[row], self.size
        top = newest_ms // width
        if self.top[row] != _NEVER:
            self._clear_row(row)
        self.top[row] = top
        base, oldest = row * size, top - size
        low, high = self.min, self.max
        for ts, value in readings:
            bucket = ts // width
            if oldest < bucket <= top:
                i = base + bucket % size
                if value < low[i]:
                    low[i] = value
                if value > high[i]:
                    high[i] = value

    def window_start_ms(self, newest_ms: int, window_ms: int) -> int:
        """Where the window of a row with this rate window starts when its newest reading is ``newest_ms``."""
        width = self.width_for(window_ms)
        return (newest_ms // width - FINE_BUCKETS) * width

    def swing(self, row: int) -> float | None:
        """max − min of the window (None: no reading in it)."""
        spans = self.spans(row)
        return None if spans is None else spans.max - spans.min
