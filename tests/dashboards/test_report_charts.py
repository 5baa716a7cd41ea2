"""The report's SVG charts: a line is never drawn across a gap in the data, is red exactly where it leaves the
band, the band is shaded where the standard puts it, and a daily range over the stability limit is a red bar."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from zoneinfo import ZoneInfo

from dashboards.reports.charts import OUT_COLOUR, ChartLine, ChartPoint, DayRange, range_chart, value_chart

HOUR = 3_600_000
SVG = "{http://www.w3.org/2000/svg}"


def _polylines(svg: str) -> list[tuple[str, int]]:
    root = ET.fromstring(svg)
    return [(p.get("stroke", ""), len(p.get("points", "").split())) for p in root.iter(f"{SVG}polyline")]


def test_a_gap_breaks_the_line_and_out_of_band_stretches_are_red() -> None:
    values = [20.0, 20.5, 25.0, 25.5, 21.0, 20.0, 20.2]  # hours 0-4, then a 5 h gap, hours 10-11
    hours = [0, 1, 2, 3, 4, 10, 11]
    points = tuple(ChartPoint(h * HOUR, v, v - 0.2, v + 0.2) for h, v in zip(hours, values, strict=True))
    svg = value_chart([ChartLine("t1", points, gap_ms=2 * HOUR)], start_ms=0, end_ms=12 * HOUR, day_starts=[0],
                      dates=[dt.date(2025, 3, 1)], band_low=14, band_high=24, unit="℃", title="t",
                      legend_extra="excursions")
    lines = _polylines(svg)
    # before the gap: in band (h0-h1), out of band (h1-h2 … h3-h4: segments touching a value above 24), back;
    # after the gap: a line of its own; no polyline spans hours 4 to 10
    assert lines == [("#1f5fa8", 2), (OUT_COLOUR, 4), ("#1f5fa8", 2)]
    band = next(r for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("fill") == "#dcefdc")
    assert float(band.get("height", 0)) > 0
    assert "℃" in svg and "excursions" in svg


def test_range_bars_over_the_limit_are_red_and_days_without_data_have_none() -> None:
    days = [DayRange(dt.date(2025, 3, d), r) for d, r in ((1, 1.2), (2, 2.6), (3, None), (4, 2.0))]
    svg = range_chart(days, limit=2.0, unit="℃", title="r", tz=ZoneInfo("Asia/Shanghai"))
    bars = [r.get("fill") for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("fill") != "none"]
    assert bars == ["#5b8fc7", OUT_COLOUR, "#5b8fc7"]  # 2.0 is within a limit of 2
    assert re.search(r'stroke-dasharray="5,3"', svg) and "2 ℃" in svg
