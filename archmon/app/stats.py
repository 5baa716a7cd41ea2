"""What ``archmon run`` persists for ``archmon status`` every 10 s: counters as deltas, states as gauges.

A counter (``stored``, ``readings_judged``, ``reloads``...) only grows while the process runs and is persisted
as the change since the last report, so the store's total adds up over restarts. A state (``connected``,
``series``, ``window_bytes``...) is persisted as it is, replacing the last value: adding it up would count it
again at every restart. Each part says which of its names are states: a source kind (``SourceKind.gauges``),
the alert service (``AlertService.stats_gauges`` when it has one, else :data:`ALERT_GAUGES`), the writer and
the hub here. An undeclared name ending in ``_ms`` is a time of day (a device's ``last_ok_ms``), neither added
up nor kept.

A delta counts as persisted only once the batch that carried it is committed: if the store refuses it or the
writer gives up at a stop, the next report carries it again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from typing import Any

from collector.records import Batch, WriteResult

__all__ = ["ALERT_GAUGES", "WRITER_GAUGES", "Counters", "is_gauge"]

ALERT_GAUGES = frozenset({"series", "window_bytes", "rebuilt_series", "rebuild_ms", "state_write_max_bytes",
                          "state_write_max_us"})
"""States among ``AlertService.stats()`` (until the alert service says so itself, ``stats_gauges``)."""

WRITER_GAUGES = frozenset({"queued_records", "retrying"})
"""States among the writer's numbers (the rest, ``failures``, ``rejected``, ``listener_errors``, are counters)."""


def is_gauge(name: str, gauges: frozenset[str]) -> bool | None:
    """True: a state; False: a counter; None: neither (an undeclared ``_ms`` name, a time of day)."""
    if name in gauges:
        return True
    return None if name.endswith("_ms") else False


class Counters:
    """Turns every part's numbers into one :class:`Batch` of counter deltas and gauges (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[str, int] = {}  # per counter: persisted, or on its way in a batch not yet committed

    def add(self, batch: Batch, prefix: str, stats: Mapping[str, Any], now: int, gauges: frozenset[str]) -> None:
        """Put ``stats`` of one part into ``batch``: states as gauges, counters as deltas since the last report."""
        with self._lock:
            for name, value in stats.items():
                if not isinstance(value, int) or isinstance(value, bool):
                    continue
                kind = is_gauge(name, gauges)
                key = f"{prefix}.{name}"
                if kind:
                    batch.gauges[key] = (value, now)
                elif kind is False and value != self._sent.get(key, 0):
                    batch.count(key, value - self._sent.get(key, 0))
                    self._sent[key] = value

    def track(self, batch: Batch, future: Future[WriteResult]) -> None:
        """Take the batch's deltas back when it is not committed (the next report carries them again)."""
        deltas = dict(batch.counters)
        future.add_done_callback(lambda done: self.undo(deltas.items()) if done.exception() else None)

    def undo(self, deltas: Iterable[tuple[str, int]]) -> None:
        """Deltas that were not persisted after all."""
        with self._lock:
            for key, delta in deltas:
                self._sent[key] = self._sent.get(key, 0) - delta
