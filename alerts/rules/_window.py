"""A sliding time window with O(1) amortised min, max and mean (monotonic deques)."""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["Window"]


class Window:
    """Values of the last ``span_ms`` milliseconds.

    Args:
        span_ms: width of the window.
    """

    def __init__(self, span_ms: int) -> None:
        self.span_ms = span_ms
        self._items: deque[tuple[int, float]] = deque()
        self._max: deque[tuple[int, float]] = deque()
        self._min: deque[tuple[int, float]] = deque()
        self._sum = 0.0

    def add(self, ts_ms: int, value: float) -> None:
        """Add a value and drop those older than ``ts_ms - span_ms``."""
        self._items.append((ts_ms, value))
        self._sum += value
        while self._max and self._max[-1][1] <= value:
            self._max.pop()
        self._max.append((ts_ms, value))
        while self._min and self._min[-1][1] >= value:
            self._min.pop()
        self._min.append((ts_ms, value))
        cutoff = ts_ms - self.span_ms
        while self._items and self._items[0][0] < cutoff:
            _, old = self._items.popleft()
            self._sum -= old
        while self._max[0][0] < cutoff:
            self._max.popleft()
        while self._min[0][0] < cutoff:
            self._min.popleft()

    @property
    def max(self) -> float:
        """Largest value in the window."""
        return self._max[0][1]

    @property
    def min(self) -> float:
        """Smallest value in the window."""
        return self._min[0][1]

    @property
    def mean(self) -> float:
        """Mean of the values in the window."""
        return self._sum / len(self._items)

    @property
    def first_ts(self) -> int:
        """Timestamp of the oldest value kept."""
        return self._items[0][0]

    def __len__(self) -> int:
        return len(self._items)

    def dump(self) -> list[list[Any]]:
        """The values as ``[[ts, value], ...]`` (for snapshots)."""
        return [[ts, value] for ts, value in self._items]

    @classmethod
    def load(cls, span_ms: int, items: list[list[Any]]) -> Window:
        """A window refilled from :meth:`dump`."""
        window = cls(span_ms)
        for ts, value in items:
            window.add(int(ts), float(value))
        return window
