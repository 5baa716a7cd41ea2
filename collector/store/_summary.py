"""Summaries kept forever: what a compliance report needs once raw readings are gone (``summary_*`` tables).

Raw readings may be deleted by retention and a one-year report must not scan them, so every stored
reading is also added to two tables, in the write transaction that stores it:

- ``summary_hour(series_id, room, start_ms)``: min, max, sum, count, plus two bitmaps of the hour's
  10-second slots (``SLOT_MS``): ``p0..p5`` the slots holding at least one reading (presence), ``h0..h5`` the
  slots holding a reading with value ≥ 1 (binary quantities only: door open, smoke, leak; 0 otherwise).
  64 slots per integer column (stored as signed 64-bit: ``struct.pack("<6q", p0, ..., p5)`` gives the
  hour's bitmap as little-endian bytes, slot i = bit i), six columns for an hour's 360 slots.
  ``first_ms``/``first_value`` and ``last_ms``/``last_value``: the hour's first and last reading (ms after
  ``start_ms``), exactly as stored: the readings nearest a whole hour (the register's duty times) are the
  last one of the hour row before it and the first one of the row after it.
- ``summary_hour_bins(series_id, room, start_ms, bin)``: per hour, a histogram of the values of temperature
  and humidity (``BINNED_QUANTITIES``) at ``BIN_WIDTH`` = 0.1 of the unit: ``bin = round(value × 10)``; each
  bin holds how many readings fell in it, the first and last of their times (ms after ``start_ms``) and
  ``minutes``, the minutes of the hour holding them (bit m = minute m: one integer column, cheap to write).
  The time in a band is the covered time of the band's bins' slots (the hour's present slots within those
  minutes): a reading covers until the next reading of any bin, at most the cap, so readings sampled faster
  or slower within one hour weigh what they cover, not one share each. Exact for loggers logging once a
  minute or slower; a minute holding readings both in and out of a band counts as out of it.

Hours are *local* hours of the site's zone: a bucket starts at local midnight plus whole hours, so every
calendar day is made of whole buckets (also in zones with half-hour offsets and on DST days, whose last
or repeated hour is simply one more bucket). Day figures are sums over the day's hour buckets.

``room`` is the room the sensor was assigned to at the reading's time (``sensor_rooms``): a bucket that a
move cuts is two rows, one per room, so room-level figures need no raw readings either.

Every part is a commutative, idempotent-safe merge (min, max, sum, count, bitwise OR, min of firsts, max of
lasts) applied only to readings the transaction newly inserted: readings arriving late or out of order
give the same summaries as in order, and a duplicate (redelivery, replay) adds nothing. From them a report
computes, for any band chosen afterwards, time-weighted coverage (a reading covers the time until the
next, at most a cap: the slots dilated by the cap), the share of covered time in the band, days meeting
the stability rule, excursions with their first and last out-of-band times, and door openings.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from archmon.quantities import BINARY_QUANTITIES

__all__ = [
    "BINNED_QUANTITIES",
    "BIN_SCALE",
    "MINUTE_MS",
    "SLOTS_PER_COLUMN",
    "SLOTS_PER_HOUR",
    "SLOT_COLUMNS",
    "SLOT_MS",
    "SUMMARY_DDL",
    "SUMMARY_V6_COLUMNS",
    "SummaryAggregate",
    "slot_words",
    "value_bin",
]

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
SLOT_MS = 10_000
"""Resolution of the coverage bitmaps: coverage is exact up to one slot at each edge of a gap."""
SLOTS_PER_COLUMN = 64
SLOT_COLUMNS = 6
SLOTS_PER_HOUR = HOUR_MS // SLOT_MS
BIN_SCALE = 10
"""Histogram bins per unit: values are binned (and judged against bands) at 0.1 ℃ / 0.1 %RH."""
BINNED_QUANTITIES = frozenset({"temperature", "humidity"})

_P = [f"p{i}" for i in range(SLOT_COLUMNS)]
_H = [f"h{i}" for i in range(SLOT_COLUMNS)]
MINUTE_MS = 60_000
_EDGES = ("first_ms", "first_value", "last_ms", "last_value")
SUMMARY_V6_COLUMNS = {
    "summary_hour": ("first_ms INTEGER", "first_value REAL", "last_ms INTEGER", "last_value REAL"),
    "summary_hour_bins": ("minutes INTEGER NOT NULL DEFAULT 0",),
}
"""What schema step 6 added (``collector.store._schema``): a file summarised before has them NULL / 0 for
hours whose raw readings were gone when it was migrated (see :mod:`collector.store._summary_build`)."""
SUMMARY_DDL = f"""
CREATE TABLE IF NOT EXISTS summary_hour (
    series_id INTEGER NOT NULL,
    room TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    sum REAL NOT NULL,
    count INTEGER NOT NULL,
    {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _P + _H)},
    {", ".join(SUMMARY_V6_COLUMNS["summary_hour"])},
    PRIMARY KEY (series_id, start_ms, room)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS summary_hour_bins (
    series_id INTEGER NOT NULL,
    room TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    bin INTEGER NOT NULL,
    count INTEGER NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    {", ".join(SUMMARY_V6_COLUMNS["summary_hour_bins"])},
    PRIMARY KEY (series_id, start_ms, room, bin)
) WITHOUT ROWID
"""

_EDGES_SET = (
    # SET expressions read the row as it was before the update, so first_value is judged on the old first_ms;
    # first_ms is NULL on an hour summarised before step 6 whose raw readings were gone (nothing to compare).
    "first_value = CASE WHEN first_ms IS NULL OR excluded.first_ms < first_ms THEN excluded.first_value"
    " ELSE first_value END, "
    "first_ms = CASE WHEN first_ms IS NULL OR excluded.first_ms < first_ms THEN excluded.first_ms ELSE first_ms END, "
    "last_value = CASE WHEN last_ms IS NULL OR excluded.last_ms > last_ms THEN excluded.last_value"
    " ELSE last_value END, "
    "last_ms = CASE WHEN last_ms IS NULL OR excluded.last_ms > last_ms THEN excluded.last_ms ELSE last_ms END"
)
_HOUR_MERGE = ("ON CONFLICT (series_id, start_ms, room) DO UPDATE SET min = min(min, excluded.min), "
               "max = max(max, excluded.max), sum = sum + excluded.sum, count = count + excluded.count, ")
_HOUR_HEAD = ("INSERT INTO summary_hour (series_id, room, start_ms, min, max, sum, count, "
              f"{', '.join(_P + _H + list(_EDGES))})")
_HOUR_CONFLICT = _HOUR_MERGE + ", ".join(f"{c} = {c} | excluded.{c}" for c in _P + _H) + ", " + _EDGES_SET
# Hours without a slot of value ≥ 1 (every temperature/humidity hour, a door closed all hour) leave the h
# columns out: 17 parameters a row instead of 23 (their DEFAULT 0 on insert; OR-ing 0 changes nothing).
_HOUR_LOW_HEAD = ("INSERT INTO summary_hour (series_id, room, start_ms, min, max, sum, count, "
                  f"{', '.join(_P + list(_EDGES))})")
_HOUR_LOW_CONFLICT = _HOUR_MERGE + ", ".join(f"{c} = {c} | excluded.{c}" for c in _P) + ", " + _EDGES_SET
_HOUR_BINS_HEAD = ("INSERT INTO summary_hour_bins (series_id, room, start_ms, bin, count, first_ms, last_ms, "
                   "minutes)")
_HOUR_BINS_CONFLICT = (
    "ON CONFLICT (series_id, start_ms, room, bin) DO UPDATE SET count = count + excluded.count, "
    "first_ms = min(first_ms, excluded.first_ms), last_ms = max(last_ms, excluded.last_ms), "
    "minutes = minutes | excluded.minutes"
)


def value_bin(value: float) -> int:
    """The histogram bin of ``value``: tenths, rounded half up (24.04 → 240, 24.05 → 241)."""
    return math.floor(value * BIN_SCALE + 0.5)


Insert = Callable[[sqlite3.Connection, str, str, Sequence[tuple[object, ...]], int], int]
"""``collector.store._write._insert_rows``: multi-row upserts of at most so many rows per statement."""


class SummaryAggregate:
    """The summary rows of one transaction's new readings, merged in memory before one upsert per table.

    Args:
        hour_start: maps a UTC instant (ms) to the start of its local hour bucket.
    """

    __slots__ = ("_hour_bins", "_hour_start", "_hours")

    def __init__(self, hour_start: Callable[[int], int]) -> None:
        self._hour_start = hour_start
        # (sid, room, bucket) -> [min, max, sum, count, presence bits (360-bit int), high bits,
        #                         first offset, first value, last offset, last value]
        self._hours: dict[tuple[int, str, int], list[Any]] = {}
        # (sid, room, bucket, bin) -> [count, first offset, last offset, slot bits]
        self._hour_bins: dict[tuple[int, str, int, int], list[int]] = {}

    def __bool__(self) -> bool:
        return bool(self._hours)

    def add(self, sid: int, room: str, quantity: str, rows: Iterable[tuple[int, float]]) -> None:
        """Add readings ``(ts, value)`` of one series, all taken while its sensor was in ``room``."""
        binned = quantity in BINNED_QUANTITIES
        binary = quantity in BINARY_QUANTITIES
        hours, hour_bins = self._hours, self._hour_bins
        hour_start = self._hour_start
        floor = math.floor
        bucket_lo = bucket_hi = 0
        cell: list[Any] = []
        for ts, value in rows:
            if not bucket_lo <= ts < bucket_hi:
                bucket_lo = hour_start(ts)
                bucket_hi = bucket_lo + HOUR_MS
                key = (sid, room, bucket_lo)
                cell = hours.get(key)  # type: ignore[assignment]
                if cell is None:
                    offset = ts - bucket_lo
                    cell = hours[key] = [value, value, 0.0, 0, 0, 0, offset, value, offset, value]
            offset = ts - bucket_lo
            bit = 1 << (offset // SLOT_MS)
            if offset < cell[6]:
                cell[6], cell[7] = offset, value
            elif offset > cell[8]:
                cell[8], cell[9] = offset, value
            if value < cell[0]:
                cell[0] = value
            elif value > cell[1]:
                cell[1] = value
            cell[2] += value
            cell[3] += 1
            cell[4] |= bit
            if binary and value >= 1.0:
                cell[5] |= bit
            if binned:
                bin_key = (sid, room, bucket_lo, floor(value * BIN_SCALE + 0.5))  # value_bin, inlined
                hb = hour_bins.get(bin_key)
                if hb is None:
                    hour_bins[bin_key] = [1, offset, offset, 1 << (offset // MINUTE_MS)]
                else:
                    hb[0] += 1
                    if offset < hb[1]:
                        hb[1] = offset
                    elif offset > hb[2]:
                        hb[2] = offset
                    hb[3] |= 1 << (offset // MINUTE_MS)

    def write(self, conn: sqlite3.Connection, insert: Insert) -> None:
        """Upsert the merged rows (inside the caller's transaction) and forget them."""
        hours, low = [], []
        for (sid, room, start), (lo, hi, total, count, present, high, *edges) in self._hours.items():
            if high:
                hours.append((sid, room, start, lo, hi, total, count, *slot_words(present), *slot_words(high),
                              *edges))
            else:
                low.append((sid, room, start, lo, hi, total, count, *slot_words(present), *edges))
        insert(conn, _HOUR_LOW_HEAD, _HOUR_LOW_CONFLICT, low, 58)  # 17 parameters a row: under 999 a statement
        insert(conn, _HOUR_HEAD, _HOUR_CONFLICT, hours, 43)  # 23
        insert(conn, _HOUR_BINS_HEAD, _HOUR_BINS_CONFLICT, [(*key, *cell) for key, cell in self._hour_bins.items()],
               124)  # 8 parameters a row
        self._hours.clear()
        self._hour_bins.clear()


_WORDS = struct.Struct(f"<{SLOT_COLUMNS}q")


def slot_words(bits: int) -> tuple[int, ...]:
    """An hour's slot bitmap (bit i = slot i) as the ``SLOT_COLUMNS`` signed 64-bit integers it is stored in
    (SQLite's ``|`` merges them)."""
    return _WORDS.unpack(bits.to_bytes(_WORDS.size, "little"))
