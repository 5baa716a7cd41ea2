"""The UCI "Occupancy Detection" data set (Candanedo & Feldheim 2016), and files written the same way.

R's ``write.csv`` wrote them: the header names the columns (``"date","Temperature","Humidity","Light",
"CO2","HumidityRatio","Occupancy"``) but every row starts with one more cell, the row number (``"140"``), so
the header is one name shorter than its rows. Timestamps are local times without a zone
(``2015-02-02 14:19:00``, some quoted, some not): give the zone with ``--tz`` (Mons: ``Europe/Brussels``).
Temperature (℃) and relative humidity (%) are imported; light, CO2, the humidity ratio and occupancy are not.
"""

from __future__ import annotations

from collector.importer.layout import WideLayout, wide_layout
from collector.importer.table import FileHead, split

__all__ = ["EXPECTS", "TITLE", "detect"]

TITLE = "UCI occupancy data set"
EXPECTS = ('UCI occupancy: a header like "date","Temperature","Humidity",... one name shorter than the rows '
           "(the rows start with a row number)")


def detect(head: FileHead) -> WideLayout | None:
    """The layout of a file whose first line is a header one name shorter than the row after it."""
    filled = head.filled()
    if not filled:
        return None
    header = filled[0]
    delimiter = head.delimiter_for(header)
    names = split(header.text, delimiter)
    first = head.after(header.number)
    if first is None or len(names) < 2 or len(split(first.text, delimiter)) != len(names) + 1:
        return None
    return wide_layout(head.file.name, header.number, names, delimiter, format="uci", title=TITLE, leading=1)
