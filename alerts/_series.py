"""Every series the engine judges, in one flat table: the newest reading of each and its rolling windows.

A series is ``(sensor, quantity)``; the engine gives it a slot the first time it sees it. Per slot the
table keeps the newest reading (time and value) in flat columns, and the rows of the window layers the
rules asked for (:mod:`alerts._windows`), shared by every rule that reads the same series (``stability_24h``
reads the hour layer, ``rate`` the fine layer).

:meth:`SeriesTable.place` is the one place where a reading's order is decided, against the newest reading
of its series:

- ``IN_ORDER``: at or after the newest (it becomes the newest);
- ``LATE``: older than the newest, inside the 24 h window (the newest reading's UTC hour and the 23 before):
  it goes into the buckets of its own time; rules that judge the current state leave it alone;
- ``TOO_OLD``: older than the window: no window changes, only alarm rules (smoke, leak) look at it; the
  store has it anyway (the collector wrote it before the engine saw it). Counted as ``late_for_alerts``.
"""

from __future__ import annotations

import sys
from array import array
from typing import Literal, NamedTuple

from alerts._windows import HOUR_MS, HOURS, FineLayer, HourLayer, Span, WindowStats

__all__ = ["IN_ORDER", "LATE", "NEVER", "TOO_OLD", "Newest", "Order", "SeriesTable", "WindowNeeds"]

Order = Literal[0, 1, 2]
IN_ORDER: Order = 0
LATE: Order = 1
TOO_OLD: Order = 2
NEVER = -(2**62)


class Newest(NamedTuple):
    """The newest reading of a series."""

    ts_ms: int
    value: float


class _Hint(NamedTuple):
    """The series being judged and its slot."""

    sensor: str
    quantity: str
    slot: int


class WindowNeeds(NamedTuple):
    """What windows a series needs: the 24 h hour layer, and a fine layer for a rate window (ms)."""

    hours: bool = False
    fine_window_ms: int | None = None


class SeriesTable:
    """Slots for series, their newest readings and window rows (see the module docstring)."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, str], int] = {}
        self.keys: list[tuple[str, str]] = []
        self.newest_ts = array("q")
        self.newest_value = array("d")
        self.hour_row = array("l")
        self.fine_row = array("l")
        self.fine_window = array("q")  # the rate window (ms) each fine row was made for
        self.judged_saved = array("q")  # the newest reading persisted as judged (alerts.catchup), NEVER: none
        self.hours = HourLayer()
        self.fine = FineLayer()
        self._hint = _Hint("", "", -1)  # the series being judged (rules look it up again)

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, sensor: str, quantity: str) -> int | None:
        """The slot of a series (None: never seen)."""
        hint = self._hint
        if hint.sensor is sensor and hint.quantity is quantity:
            return hint.slot
        return self.index.get((sensor, quantity))

    def hint(self, sensor: str, quantity: str, slot: int) -> None:
        """Remember the series being judged: the rules' :meth:`find` for it costs no dict lookup."""
        self._hint = _Hint(sensor, quantity, slot)

    def add(self, sensor: str, quantity: str, needs: WindowNeeds) -> int:
        """A slot for a series not seen before, with the window rows ``needs`` asks for."""
        key = (sys.intern(sensor), sys.intern(quantity))
        slot = len(self.keys)
        self.index[key] = slot
        self.keys.append(key)
        self.newest_ts.append(NEVER)
        self.newest_value.append(0.0)
        self.judged_saved.append(NEVER)
        self.hour_row.append(self.hours.new_row() if needs.hours else -1)
        if needs.fine_window_ms is not None:
            self.fine_row.append(self.fine.new_row(needs.fine_window_ms))
            self.fine_window.append(needs.fine_window_ms)
        else:
            self.fine_row.append(-1)
            self.fine_window.append(0)
        return slot

    def place(self, slot: int, ts_ms: int, value: float) -> Order:
        """Decide a reading's order against its series' newest and put it in the windows of its time."""
        newest = self.newest_ts[slot]
        if ts_ms >= newest:
            self.newest_ts[slot] = ts_ms
            self.newest_value[slot] = value
            order = IN_ORDER
        elif ts_ms // HOUR_MS <= newest // HOUR_MS - HOURS:
            return TOO_OLD
        else:
            order = LATE
        row = self.hour_row[slot]
        if row >= 0:
            self.hours.add(row, ts_ms, value)
        row = self.fine_row[slot]
        if row >= 0:
            self.fine.add(row, ts_ms, value)  # older than the rate window: left out of it
        return order

    def set_newest(self, slot: int, ts_ms: int, value: float) -> None:
        """The newest reading of a series, as found in the store (rebuild)."""
        if ts_ms >= self.newest_ts[slot]:
            self.newest_ts[slot] = ts_ms
            self.newest_value[slot] = value

    def rewind(self, slot: int, newest: Newest | None) -> None:
        """Set a series' newest reading back to ``newest`` (None: none), the windows left as they are: the
        engine judges readings the store holds after it again (see :mod:`alerts.catchup`)."""
        self.newest_ts[slot], self.newest_value[slot] = (NEVER, 0.0) if newest is None else newest

    def beyond_fine(self, slot: int, ts_ms: int) -> bool:
        """A reading at ``ts_ms`` is older than the series' rate window (it has one, and the reading is late)."""
        row = self.fine_row[slot]
        return row >= 0 and ts_ms // self.fine.width[row] <= self.fine.top[row] - self.fine.size

    def newest(self, slot: int) -> Newest | None:
        """The series' newest reading (None: none yet)."""
        ts = self.newest_ts[slot]
        return None if ts == NEVER else Newest(ts, self.newest_value[slot])

    def day_span(self, slot: int) -> Span | None:
        """The lowest and highest value of the series' 24 h window (None: no hour row, or empty)."""
        row = self.hour_row[slot]
        return None if row < 0 else self.hours.spans(row)

    def day_stats(self, slot: int) -> WindowStats | None:
        """The 24 h window of a series (None: no hour row, or empty)."""
        row = self.hour_row[slot]
        return None if row < 0 else self.hours.stats(row)

    def swing(self, slot: int) -> float | None:
        """max − min of the series' rate window (None: no fine row, or empty)."""
        row = self.fine_row[slot]
        return None if row < 0 else self.fine.swing(row)

    def adopt_needs(self, slot: int, needs: WindowNeeds) -> bool:
        """Give an existing series the rows a new configuration asks for (reload): a missing row is added
        empty, a fine row made for another rate window is emptied for the new one; rows no longer needed
        are kept (unused). Returns whether a row was added or emptied (to fill from the store)."""
        changed = False
        if needs.hours and self.hour_row[slot] < 0:
            self.hour_row[slot] = self.hours.new_row()
            changed = True
        if needs.fine_window_ms is not None:
            row = self.fine_row[slot]
            if row < 0:
                self.fine_row[slot] = self.fine.new_row(needs.fine_window_ms)
                changed = True
            elif self.fine_window[slot] != needs.fine_window_ms:
                self.fine.reset(row, needs.fine_window_ms)
                changed = True
            self.fine_window[slot] = needs.fine_window_ms
        return changed

    def nbytes(self) -> int:
        """Bytes held by the flat columns (without the index dict)."""
        own = sum(c.itemsize * len(c) for c in (self.newest_ts, self.newest_value, self.hour_row, self.fine_row,
                                                 self.fine_window))
        return own + self.hours.nbytes() + self.fine.nbytes()
