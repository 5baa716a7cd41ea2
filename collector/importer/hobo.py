"""HOBOware exports of Onset HOBO loggers (``File > Export Table Data`` as CSV).

Layout (as public projects that read these files quote it, e.g. in their tests; the sample files under
``tests/collector/import_samples/`` are synthetic, built from it)::

    "Plot Title: 10723440"
    "#","Date Time, GMT+08:00","Temp, °F (LGR S/N: 10723440, SEN S/N: 10723440)","RH, % (LGR S/N: ...)",
        "Coupler Detached (LGR S/N: 10723440)","Stopped (LGR S/N: 10723440)","End Of File (LGR S/N: ...)"
    1,03/05/24 08:00:00 AM,68.828,45.1,Logged,,
    2,03/05/24 08:15:00 AM,68.790,45.3,,,

- the plot title line is optional (an export option); the header has a ``#`` column (the row number);
- HOBOware on a PC set to German writes ``;`` between cells, a decimal comma and German names
  (``"Datum Zeit, GMT+01:00"``, ``"Temp., °C (...)"``, dates ``27.10.24``): the header's delimiter is the one
  that splits the header and its rows alike (the names hold commas), or ``--delimiter``;
- the timestamp column's name carries the offset the times are in (``Date Time, GMT+08:00``): it wins over
  ``--tz`` (an offset written in a timestamp would win over both);
- temperature in ``°C`` or ``°F`` (converted to ℃; an export that lost the degree sign, ``Temp, ?F``, is read
  too), relative humidity ``RH, %``; dew point and statistics series are not imported;
- dates follow the PC's settings: ``MM/DD/YY`` (the US default), ``DD/MM/YY`` or ``YY/MM/DD``, with a 12- or
  24-hour clock; the file's dates decide which, or ``--date-order``;
- event columns (``Logged``, ``Coupler Attached``...) are not readings, and an event's row leaves the value
  cells empty: an empty cell is no reading, counted as such, never a rejection.
"""

from __future__ import annotations

import re

from collector.importer.layout import WideLayout, wide_layout
from collector.importer.table import FileHead, split
from collector.importer.timestamps import fixed_zone

__all__ = ["EXPECTS", "TITLE", "detect"]

TITLE = "HOBOware export"
EXPECTS = 'HOBO: an optional "Plot Title: ..." line, then a header with a "Date Time, GMT+08:00" column'
_STAMP = re.compile(r"^(?:date\s*time|datum\s*zeit)\s*,\s*(?:gmt|utc)", re.IGNORECASE)


def detect(head: FileHead) -> WideLayout | None:
    """The layout of a file whose first or second line is a header with a ``Date Time, GMT±hh:mm`` column
    (``Datum Zeit, GMT±hh:mm`` in German)."""
    for line in head.filled()[:2]:
        delimiter = head.delimiter_for(line)
        names = split(line.text, delimiter)
        stamp = next((i for i, name in enumerate(names) if _STAMP.match(name)), None)
        if stamp is not None:
            return wide_layout(head.file.name, line.number, names, delimiter, format="hobo", title=TITLE,
                               zone=fixed_zone(names[stamp]), stamp=stamp)
    return None
