"""The engine's timer queue: ``(due, kind, ref)`` in time order, ties in the order they were pushed."""

from __future__ import annotations

import heapq
from typing import NamedTuple

__all__ = ["Timer", "TimerQueue"]


class Timer(NamedTuple):
    """One timer: when it is due, what kind it is, and what it refers to.

    Kinds: ``delay``, ``clear``, ``hold`` (ref ``rule:key``), ``close``, ``repeat`` (ref alert id),
    ``escalate`` (ref ``alert id:level``).
    """

    due_ms: int
    kind: str
    ref: str


class TimerQueue:
    """A min-heap of timers. Timers are never removed early: each one re-checks its subject when it fires."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str, str]] = []
        self._seq = 0

    def push(self, due_ms: int, kind: str, ref: str) -> None:
        """Add a timer."""
        self._seq += 1
        heapq.heappush(self._heap, (due_ms, self._seq, kind, ref))

    def next_due(self) -> int | None:
        """When the earliest timer is due (None: no timer)."""
        return self._heap[0][0] if self._heap else None

    def pop(self) -> Timer:
        """Remove and return the earliest timer."""
        due, _, kind, ref = heapq.heappop(self._heap)
        return Timer(due, kind, ref)
