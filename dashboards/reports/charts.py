"""Charts of the printed report as SVG, drawn here (no network, no browser; WeasyPrint draws the SVG into the
PDF as vector paths, its text in the embedded font).

- :func:`value_chart`: a quantity over the period, one line per sensor (hourly means, or daily means with the
  day's lowest–highest as a light envelope for long periods), the standard's band shaded; a line is broken
  where there is no data (a gap is never drawn over), and drawn red where it is outside the band.
- :func:`range_chart`: the daily range (日较差) as bars against the 24 h stability limit (dashed); a bar over
  the limit is red, a day without data has no bar.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

__all__ = ["ChartLine", "ChartPoint", "DayRange", "range_chart", "value_chart"]

WIDTH, HEIGHT = 720.0, 230.0
LEFT, RIGHT, TOP, BOTTOM = 52.0, 12.0, 10.0, 34.0
FONT = "Noto Sans CJK SC"
LINE_COLOURS = ("#1f5fa8", "#2e8b57", "#8a4fbf", "#b8860b", "#4a4a4a")
OUT_COLOUR = "#c62828"
BAND_FILL = "#dcefdc"
ENVELOPE_FILL = "#c9d8ec"


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """One point of a line: the mean over a span starting at ``ts_ms``, and that span's lowest and highest."""

    ts_ms: int
    mean: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class ChartLine:
    """One sensor's line; points further apart than ``gap_ms`` are not joined (no data between them)."""

    label: str
    points: tuple[ChartPoint, ...]
    gap_ms: int
    envelope: bool = False


@dataclass(frozen=True, slots=True)
class DayRange:
    """One day's range (日较差) for the bar chart; None: no data that day."""

    date: dt.date
    range: float | None


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[lo, hi]``."""
    span = max(hi - lo, 1e-9)
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step) * step
    out, value = [], first
    while value <= hi + step * 0.001:
        if value >= lo - step * 0.001:
            out.append(round(value, 6))
        value += step
    return out


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value - round(value)) < 1e-9 else f"{value:.1f}"


class _Frame:
    """Maps data to the drawing area."""

    def __init__(self, x_lo: float, x_hi: float, y_lo: float, y_hi: float) -> None:
        self.x_lo, self.x_hi, self.y_lo, self.y_hi = x_lo, x_hi, y_lo, y_hi
        self.w, self.h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(self, value: float) -> float:
        return LEFT + (value - self.x_lo) / max(self.x_hi - self.x_lo, 1e-9) * self.w

    def y(self, value: float) -> float:
        clamped = min(max(value, self.y_lo), self.y_hi)
        return TOP + (self.y_hi - clamped) / max(self.y_hi - self.y_lo, 1e-9) * self.h


def _text(x: float, y: float, text: str, *, anchor: str = "middle", size: float = 10, fill: str = "#333") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-family="{FONT}" font-size="{size}" fill="{fill}" '
            f'text-anchor="{anchor}">{escape(text)}</text>')


def _y_axis(frame: _Frame, unit: str) -> list[str]:
    out = []
    for tick in _ticks(frame.y_lo, frame.y_hi):
        y = frame.y(tick)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#e0e0e0" '
                   'stroke-width="0.6"/>')
        out.append(_text(LEFT - 5, y + 3.5, _fmt(tick), anchor="end"))
    out.append(_text(4, TOP + 8, unit, anchor="start"))
    return out


def _day_axis(frame: _Frame, starts: Sequence[tuple[float, dt.date]]) -> list[str]:
    """Vertical lines at day starts, a date label every few days (at most ~12 labels)."""
    out = []
    every = max(1, math.ceil(len(starts) / 12))
    for i, (x_value, day) in enumerate(starts):
        x = frame.x(x_value)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}" stroke="#eeeeee" '
                   'stroke-width="0.5"/>')
        if i % every == 0:
            out.append(_text(x, HEIGHT - BOTTOM + 13, day.strftime("%m-%d")))
    return out


def _frame_box() -> str:
    return (f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
            'fill="none" stroke="#888" stroke-width="0.8"/>')


def _svg(parts: Sequence[str], title: str) -> str:
    body = "\n".join(parts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH:g} {HEIGHT:g}" width="180mm" '
            f'height="{180 * HEIGHT / WIDTH:.1f}mm" role="img" aria-label="{escape(title)}">\n{body}\n</svg>')


def _y_range(values: Sequence[float], band_low: float | None, band_high: float | None) -> tuple[float, float]:
    pool = [v for v in (*values, band_low, band_high) if v is not None]
    lo, hi = (min(pool), max(pool)) if pool else (0.0, 1.0)
    pad = max((hi - lo) * 0.08, 0.5)
    return lo - pad, hi + pad


def _outside(value: float, band_low: float | None, band_high: float | None) -> bool:
    return (band_low is not None and value < band_low) or (band_high is not None and value > band_high)


def value_chart(lines: Sequence[ChartLine], *, start_ms: int, end_ms: int, day_starts: Sequence[int],
                dates: Sequence[dt.date], band_low: float | None, band_high: float | None, unit: str,
                title: str, legend_extra: str = "") -> str:
    """The SVG of one quantity over the period (see the module docstring).

    Args:
        lines: one per sensor.
        start_ms / end_ms: the period (x axis).
        day_starts / dates: each day's local midnight and date (grid and labels).
        band_low / band_high: the band (None: open on that side).
        unit: the y axis' unit.
        title: the chart's accessible name.
        legend_extra: text after the legend (what the envelope is).
    """
    values = [v for line in lines for p in line.points for v in ((p.low, p.high) if line.envelope else (p.mean,))]
    frame = _Frame(start_ms, end_ms, *_y_range(values, band_low, band_high))
    parts = []
    lo = frame.y(band_low) if band_low is not None else frame.y(frame.y_lo)
    hi = frame.y(band_high) if band_high is not None else frame.y(frame.y_hi)
    if band_low is not None or band_high is not None:
        parts.append(f'<rect x="{LEFT}" y="{hi:.1f}" width="{frame.w:.1f}" height="{max(lo - hi, 0):.1f}" '
                     f'fill="{BAND_FILL}"/>')
    parts += _y_axis(frame, unit)
    parts += _day_axis(frame, list(zip(day_starts, dates, strict=False)))
    for limit in (band_low, band_high):
        if limit is not None:
            y = frame.y(limit)
            parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#5a9a5a" '
                         'stroke-width="0.8"/>')
    legend_x = LEFT
    for index, line in enumerate(lines):
        colour = LINE_COLOURS[index % len(LINE_COLOURS)]
        for run in _runs(line):
            if line.envelope:
                top = " ".join(f"{frame.x(p.ts_ms):.1f},{frame.y(p.high):.1f}" for p in run)
                bottom = " ".join(f"{frame.x(p.ts_ms):.1f},{frame.y(p.low):.1f}" for p in reversed(run))
                parts.append(f'<polygon points="{top} {bottom}" fill="{ENVELOPE_FILL}" fill-opacity="0.7" '
                             'stroke="none"/>')
            parts += _coloured_polyline(run, frame, colour, band_low, band_high)
        y_legend = HEIGHT - 8
        parts.append(f'<line x1="{legend_x:.1f}" y1="{y_legend - 3.5:.1f}" x2="{legend_x + 16:.1f}" '
                     f'y2="{y_legend - 3.5:.1f}" stroke="{colour}" stroke-width="2"/>')
        parts.append(_text(legend_x + 20, y_legend, line.label, anchor="start"))
        legend_x += 28 + 6.5 * len(line.label)
    if values and any(_outside(v, band_low, band_high) for v in values):
        parts.append(f'<line x1="{legend_x:.1f}" y1="{HEIGHT - 11.5:.1f}" x2="{legend_x + 16:.1f}" '
                     f'y2="{HEIGHT - 11.5:.1f}" stroke="{OUT_COLOUR}" stroke-width="2"/>')
        parts.append(_text(legend_x + 20, HEIGHT - 8, legend_extra or "", anchor="start"))
    parts.append(_frame_box())
    return _svg(parts, title)


def _runs(line: ChartLine) -> list[list[ChartPoint]]:
    """The line's points split where they are further apart than its gap."""
    runs: list[list[ChartPoint]] = []
    for point in line.points:
        if runs and point.ts_ms - runs[-1][-1].ts_ms <= line.gap_ms:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def _coloured_polyline(run: Sequence[ChartPoint], frame: _Frame, colour: str, band_low: float | None,
                       band_high: float | None) -> list[str]:
    """Polylines of one run: red stretches where a point is outside the band, the line's colour elsewhere."""
    if len(run) == 1:
        p = run[0]
        fill = OUT_COLOUR if _outside(p.mean, band_low, band_high) else colour
        return [f'<circle cx="{frame.x(p.ts_ms):.1f}" cy="{frame.y(p.mean):.1f}" r="1.6" fill="{fill}"/>']
    out = []
    current: list[ChartPoint] = [run[0]]
    current_out = _outside(run[0].mean, band_low, band_high)
    for a, b in itertools.pairwise(run):
        segment_out = _outside(a.mean, band_low, band_high) or _outside(b.mean, band_low, band_high)
        if segment_out != current_out and len(current) > 1:
            out.append(_polyline(current, frame, OUT_COLOUR if current_out else colour))
            current = [a]
        current_out = segment_out
        current.append(b)
    out.append(_polyline(current, frame, OUT_COLOUR if current_out else colour))
    return out


def _polyline(points: Sequence[ChartPoint], frame: _Frame, colour: str) -> str:
    coords = " ".join(f"{frame.x(p.ts_ms):.1f},{frame.y(p.mean):.1f}" for p in points)
    return (f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.2" '
            'stroke-linejoin="round"/>')


def range_chart(days: Sequence[DayRange], *, limit: float | None, unit: str, title: str, tz: ZoneInfo) -> str:
    """The SVG of the daily ranges against the stability limit (see the module docstring).

    Args:
        days: every day of the period, in order.
        limit: the stability limit (None: no line, no red bars).
        unit: the y axis' unit.
        title: the chart's accessible name.
        tz: the site's zone (unused for drawing; kept so both charts are called alike).
    """
    del tz
    values = [d.range for d in days if d.range is not None]
    top = max([*values, limit or 0.0, 0.5])
    frame = _Frame(0, max(len(days), 1), 0.0, top * 1.15)
    parts = _y_axis(frame, unit)
    parts += _day_axis(frame, [(i, d.date) for i, d in enumerate(days)])
    slot = frame.w / max(len(days), 1)
    for i, day in enumerate(days):
        if day.range is None:
            continue
        over = limit is not None and day.range > limit + 1e-9
        x = frame.x(i) + slot * 0.18
        y = frame.y(day.range)
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.64:.1f}" '
                     f'height="{max(frame.y(0) - y, 0.4):.1f}" fill="{OUT_COLOUR if over else "#5b8fc7"}"/>')
    if limit is not None:
        y = frame.y(limit)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#333" '
                     'stroke-width="1" stroke-dasharray="5,3"/>')
        parts.append(_text(WIDTH - RIGHT - 3, y - 3, f"{_fmt(limit)} {unit}", anchor="end"))
    parts.append(_frame_box())
    return _svg(parts, title)
