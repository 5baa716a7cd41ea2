"""Excursions from the hour histograms: where a sensor's readings left the band, and for how long.

An hour is looked at only if its minimum or maximum is out of band; its out-of-band histogram bins give the
first and last time of the readings in each bin and the minutes holding them, whose slots holding a reading
(the hour's 10-second presence bitmap) are the bin's slots. The bins' time ranges
of one side (high or low) are merged in time order when less than the band's clear delay apart (``merged
when less than the clear delay apart``), so a stretch that dips back into the band for a moment stays one
excursion.

Time out of band is what the out-of-band readings *cover*, as coverage counts it (:mod:`coverage`): a
reading covers from its slot until the next reading's slot (of any value), at most the cap. With the slots
of the out-of-band bins ``O`` and of every reading ``P``, the covered out-of-band slots are those reachable
from an ``O`` slot without passing an in-band slot (``P & ~O``) and at most ``cap`` slots after an ``O``
slot: a forward fill blocked by in-band slots, cut by the dilation of ``O``. So a reading taken every 5
minutes counts 5 minutes, one taken every 10 seconds beside it 10 seconds, however many readings the hour
holds. A minute holding both in-band and out-of-band readings counts as out of band (exact for loggers
logging once a minute or slower; faster ones err by less than a minute at each crossing). An hour summarised
before bins kept their slots (:mod:`collector.store._summary`) falls back to one equal share of its covered
time per reading.

Two out-of-band stretches within one bin and one hour cannot be told apart (the bin keeps only its first and
last time): they are reported as one, from the first to the last of them; its duration is still only the
covered time of its out-of-band slots.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from collector.store import MINUTE_MS, SLOT_MS, HourBin, SeriesRef, SummaryHour, SummaryReader, value_bin
from dashboards.reports.model import Excursion

__all__ = ["BandBins", "find_excursions"]

HOUR_MS = 3_600_000
SLOTS = HOUR_MS // SLOT_MS


@dataclass(frozen=True, slots=True)
class BandBins:
    """A band in histogram bins (tenths): in band when ``low <= bin <= high`` (None: no limit)."""

    low: int | None
    high: int | None

    @classmethod
    def of(cls, low: float | None, high: float | None) -> BandBins:
        """The bins of a band given in the quantity's unit (limits are taken at 0.1 resolution)."""
        return cls(None if low is None else value_bin(low), None if high is None else value_bin(high))

    def side(self, b: int) -> Literal["high", "low"] | None:
        """``high`` above the band, ``low`` below it, None inside."""
        if self.high is not None and b > self.high:
            return "high"
        if self.low is not None and b < self.low:
            return "low"
        return None

    def contains(self, value: float) -> bool:
        """Whether a value lies in the band (at bin resolution)."""
        return self.side(value_bin(value)) is None


@dataclass(slots=True)
class _Piece:
    side: Literal["high", "low"]
    start: int
    end: int
    readings: int
    duration_ms: float  # only for hours without bin slots (one share per reading); else from the slots
    extreme: float


class _Slots:
    """Out-of-band slots of one series in one room, as bitmaps over the whole series (bit i: slot i after its
    first hour row): every reading's slots, each side's out-of-band slots (from the bins of the out-of-band
    hours), and the covered out-of-band slots computed from them once. ``legacy``: hours with a bin without
    slots (summarised before bins kept them)."""

    def __init__(self, rows: Sequence[SummaryHour], cap_slots: int, end_ms: int) -> None:
        self.rows = rows
        self.starts = [row.start_ms for row in rows]
        self.k = max(1, cap_slots)
        self.end_ms = end_ms  # nothing after the period counts
        self.origin = self.starts[0] if rows else 0
        self.width = 0 if not rows else (self.starts[-1] - self.origin) // SLOT_MS + SLOTS + self.k + 8
        self.sides: dict[int, dict[str, int]] = {}
        self.legacy: set[int] = set()
        self._covered: dict[str, bytes] = {}

    def add(self, b: HourBin, side: str, present: int) -> None:
        """Take one out-of-band bin into account (``present``: its hour's slots holding a reading)."""
        if b.minutes == 0:
            self.legacy.add(b.start_ms)
        sides = self.sides.setdefault(b.start_ms, {})
        sides[side] = sides.get(side, 0) | (_minute_slots(b.minutes) & present)

    def _bitmap(self, parts: Iterable[tuple[int, int]]) -> int:
        """One bitmap over the series from ``(hour start, hour bitmap)`` parts (hours do not overlap)."""
        buf = bytearray(self.width // 8 + 1)
        for start, bits in parts:
            if not bits:
                continue
            index = (start - self.origin) // SLOT_MS
            at, shift = divmod(index, 8)
            chunk = (bits << shift).to_bytes(SLOTS // 8 + 2, "little")
            if shift == 0 and not any(buf[at:at + len(chunk)]):
                buf[at:at + len(chunk)] = chunk
            else:  # a bucket not on a whole byte (a half-hour clock change): merge byte by byte
                for j, byte in enumerate(chunk):
                    buf[at + j] |= byte
        return int.from_bytes(buf, "little")

    def _dilate(self, bits: int) -> int:
        width = 1
        while width < self.k:
            step = min(width, self.k - width)
            bits |= bits << step
            width += step
        return bits

    def compute(self) -> None:
        """The covered out-of-band slots of each side: reachable from an out-of-band slot without passing an
        in-band one (a forward fill blocked by in-band slots, ``k`` steps are enough), cut by the dilation."""
        present = self._bitmap((row.start_ms, row.present) for row in self.rows)
        mask = (1 << self.width) - 1
        for side in ("high", "low"):
            out = self._bitmap((start, sides.get(side, 0)) for start, sides in self.sides.items())
            if not out:
                continue
            blocked = present & ~out
            reach = self._dilate(out)
            if blocked:
                fill, allowed, step = out, ~blocked & mask, 1
                while step < self.k:
                    fill |= allowed & (fill << step)
                    allowed &= allowed << step
                    step *= 2
                reach &= fill
            self._covered[side] = (reach & mask).to_bytes(self.width // 8 + 1, "little")

    def _count(self, side: str, lo: int, hi: int) -> int:
        """Covered out-of-band slots of ``side`` in slots ``[lo, hi)`` of the series."""
        buf = self._covered.get(side)
        if buf is None or hi <= lo:
            return 0
        lo, hi = max(lo, 0), min(hi, len(buf) * 8)
        if hi <= lo:
            return 0
        part = int.from_bytes(buf[lo // 8:(hi + 7) // 8], "little") >> (lo % 8)
        return (part & ((1 << (hi - lo)) - 1)).bit_count()

    def out_ms(self, i: int, cover_ms: int) -> int:
        """Covered out-of-band time of row ``i`` (at most its covered time ``cover_ms``), as coverage counts
        it: its own slots (also those covered by readings of the hour before) and, before a gap, the time its
        last reading covers past the hour."""
        start = self.starts[i]
        to_next = SLOTS + self.k if i + 1 == len(self.starts) else (self.starts[i + 1] - start) // SLOT_MS
        counted = min(to_next, SLOTS + self.k, (self.end_ms - start) // SLOT_MS)
        lo = (start - self.origin) // SLOT_MS
        total = self._count("high", lo, lo + counted) + self._count("low", lo, lo + counted)
        return min(cover_ms, total * SLOT_MS)

    def within(self, side: str, lo_ms: int, hi_ms: int) -> int:
        """Covered out-of-band time of ``side`` in ``[lo_ms, hi_ms)`` (slot resolution), before the period's
        end."""
        hi_ms = min(hi_ms, self.end_ms)
        lo = (lo_ms - self.origin) // SLOT_MS
        hi = -(-(hi_ms - self.origin) // SLOT_MS)
        return self._count(side, lo, hi) * SLOT_MS


def find_excursions(reader: SummaryReader, series: SeriesRef, room: str, rows: Sequence[SummaryHour],
                    hour_cover: dict[int, int], band: BandBins, *, clear_delay_ms: int,
                    start_ms: int, end_ms: int, cap_ms: int) -> tuple[list[Excursion], dict[int, int]]:
    """Excursions of one series in one room within ``[start_ms, end_ms)``, oldest first, and per hour row the
    covered time out of band in ms (hours not in it had none).

    Args:
        reader: the summaries (reads only the out-of-band bins of out-of-band hours).
        series: the series; room: its room.
        rows: its hour rows in the room, oldest first.
        hour_cover: covered ms per hour row (``SeriesCoverage.hours``).
        band: the band in bins.
        clear_delay_ms: excursions less than this apart are merged.
        start_ms, end_ms: the period.
        cap_ms: how long one reading covers at most (as for the coverage).
    """
    if band.low is None and band.high is None:
        return [], {}
    by_start = {row.start_ms: row for row in rows}
    # value_bin(v) < low  <=>  v * 10 + 0.5 < low, for an integer low (as value_bin computes it)
    low = -(2**62) if band.low is None else band.low
    high = 2**62 if band.high is None else band.high + 1
    outside = [row.start_ms for row in rows if start_ms <= row.start_ms < end_ms
               and (row.min * 10 + 0.5 < low or row.max * 10 + 0.5 >= high)]
    slots = _Slots(rows, cap_ms // SLOT_MS, end_ms)
    out_counts: dict[int, int] = {}
    pieces: list[_Piece] = []
    for lo, hi in _runs(outside, [row.start_ms for row in rows]):
        for b in reader.hour_bins(series, lo, hi + 1, room=room, below=band.low, above=band.high):
            row = by_start[b.start_ms]
            side = band.side(b.bin)
            if side is None:
                continue
            if side == "high":
                extreme = row.max if b.bin == value_bin(row.max) else b.bin / 10
            else:
                extreme = row.min if b.bin == value_bin(row.min) else b.bin / 10
            slots.add(b, side, row.present)
            out_counts[b.start_ms] = out_counts.get(b.start_ms, 0) + b.count
            pieces.append(_Piece(side, b.first_ms, b.last_ms, b.count, hour_cover.get(b.start_ms, 0) * b.count
                                 / row.count, extreme))
    out_ms: dict[int, int] = {}
    reach_ms = HOUR_MS + cap_ms  # an out-of-band reading's cover can run into the next hours
    if slots.sides:
        slots.compute()
    for i, start in enumerate(slots.starts):
        if start in slots.legacy:  # bins without slots: one share per reading
            out_ms[start] = round(hour_cover.get(start, 0) * out_counts[start] / by_start[start].count)
        elif start in slots.sides or any(
                s in slots.sides for s in slots.starts[bisect.bisect_left(slots.starts, start - reach_ms):i]):
            found = slots.out_ms(i, hour_cover.get(start, 0))
            if found:
                out_ms[start] = found
    out: list[Excursion] = []
    for side in ("high", "low"):
        merged: list[_Piece] = []
        for piece in sorted((p for p in pieces if p.side == side), key=lambda p: p.start):
            legacy = _hour_of(piece, slots.starts) in slots.legacy
            last = merged[-1] if merged else None
            if last is not None and piece.start - last.end < clear_delay_ms:
                last.end = max(last.end, piece.end)
                last.readings += piece.readings
                last.duration_ms += piece.duration_ms if legacy else 0
                last.extreme = max(last.extreme, piece.extreme) if side == "high" else min(last.extreme, piece.extreme)
            else:
                merged.append(_Piece(side, piece.start, piece.end, piece.readings,
                                     piece.duration_ms if legacy else 0, piece.extreme))
        for i, p in enumerate(merged):
            limit = p.end + cap_ms if i + 1 == len(merged) else min(p.end + cap_ms, merged[i + 1].start)
            duration = min(p.duration_ms + slots.within(side, p.start, limit), p.end - p.start + cap_ms)
            out.append(Excursion(series.sensor, p.side, p.start, p.end, round(duration / 1000, 1), p.extreme,
                                 p.readings))
    return sorted(out, key=lambda e: (e.start_ms, e.side)), out_ms


_MINUTE = (1 << (MINUTE_MS // SLOT_MS)) - 1  # a minute's slots


def _minute_slots(minutes: int) -> int:
    """The slots of the minutes set in ``minutes`` (bit m = minute m)."""
    out = 0
    while minutes:
        low = minutes & -minutes
        out |= _MINUTE << ((low.bit_length() - 1) * (MINUTE_MS // SLOT_MS))
        minutes ^= low
    return out


def _hour_of(piece: _Piece, starts: Sequence[int]) -> int:
    """The hour row holding a piece (its bin's first time)."""
    return starts[bisect.bisect_right(starts, piece.start) - 1]


def _runs(starts: Sequence[int], all_starts: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive rows (in ``all_starts``) among ``starts`` as ``(first start, last start)`` ranges: one
    histogram query per run of out-of-band hours."""
    index = {s: i for i, s in enumerate(all_starts)}
    runs: list[tuple[int, int]] = []
    prev = None
    for s in starts:
        i = index[s]
        if runs and prev is not None and i == prev + 1:
            runs[-1] = (runs[-1][0], s)
        else:
            runs.append((s, s))
        prev = i
    return runs
