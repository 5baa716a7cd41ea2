"""Excursions from the hour histograms: where a sensor's readings left the band, and for how long.

An hour is looked at only if its minimum or maximum is out of band; its out-of-band histogram bins give the
first and last time of the readings in each bin. The bins' time ranges of one side (high or low) are merged
in time order when less than the band's clear delay apart (``merged when less than the clear delay apart``),
so a stretch that dips back into the band for a moment stays one excursion. Each excursion's duration is
the covered time of its out-of-band readings: each reading takes an equal share of its hour's covered time.

Two out-of-band stretches within one bin and one hour cannot be told apart (the bin keeps only its first and
last time): they are reported as one, from the first to the last of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from collector.store import SeriesRef, SummaryHour, SummaryReader, value_bin
from dashboards.reports.model import Excursion

__all__ = ["BandBins", "find_excursions"]


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
    duration_ms: float
    extreme: float


def find_excursions(reader: SummaryReader, series: SeriesRef, room: str, rows: Sequence[SummaryHour],
                    hour_cover: dict[int, int], band: BandBins, *, clear_delay_ms: int,
                    start_ms: int, end_ms: int) -> tuple[list[Excursion], dict[int, int]]:
    """Excursions of one series in one room within ``[start_ms, end_ms)``, oldest first, and per hour row the
    readings out of band (hours not in it had none: their in-band count is their count).

    Args:
        reader: the summaries (reads only the out-of-band bins of out-of-band hours).
        series: the series; room: its room.
        rows: its hour rows in the room, oldest first.
        hour_cover: covered ms per hour row (``SeriesCoverage.hours``).
        band: the band in bins.
        clear_delay_ms: excursions less than this apart are merged.
        start_ms, end_ms: the period.
    """
    if band.low is None and band.high is None:
        return [], {}
    by_start = {row.start_ms: row for row in rows}
    # value_bin(v) < low  <=>  v * 10 + 0.5 < low, for an integer low (as value_bin computes it)
    low = -(2**62) if band.low is None else band.low
    high = 2**62 if band.high is None else band.high + 1
    outside = [row.start_ms for row in rows if start_ms <= row.start_ms < end_ms
               and (row.min * 10 + 0.5 < low or row.max * 10 + 0.5 >= high)]
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
            share = hour_cover.get(b.start_ms, 0) * b.count / row.count
            out_counts[b.start_ms] = out_counts.get(b.start_ms, 0) + b.count
            pieces.append(_Piece(side, b.first_ms, b.last_ms, b.count, share, extreme))
    out: list[Excursion] = []
    for side in ("high", "low"):
        merged: list[_Piece] = []
        for piece in sorted((p for p in pieces if p.side == side), key=lambda p: p.start):
            last = merged[-1] if merged else None
            if last is not None and piece.start - last.end < clear_delay_ms:
                last.end = max(last.end, piece.end)
                last.readings += piece.readings
                last.duration_ms += piece.duration_ms
                last.extreme = max(last.extreme, piece.extreme) if side == "high" else min(last.extreme, piece.extreme)
            else:
                merged.append(_Piece(side, piece.start, piece.end, piece.readings, piece.duration_ms, piece.extreme))
        out += [Excursion(series.sensor, p.side, p.start, p.end, round(p.duration_ms / 1000, 1), p.extreme,
                          p.readings) for p in merged]
    return sorted(out, key=lambda e: (e.start_ms, e.side)), out_counts


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
