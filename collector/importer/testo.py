"""Exports of testo loggers (testo ComSoft, testo Saveris) and other loggers' CSV with a named header.

The layout read (as these programs' CSV exports are commonly described; no original file was at hand, so
the sample files under ``tests/collector/import_samples/`` are synthetic): maybe a few lines about the
device first, then a header
naming a timestamp column (``Datum/Zeit``, ``Date/Time``) or a date and a time column (``Datum;Zeit``,
``Date;Time``) and the measured columns by name and unit, then a row per time::

    testo 174H;SN 12345678
    Nr.;Datum/Zeit;Temperatur [°C];Feuchte [%rF]
    1;05.03.2024 08:00:00;19,8;48,3

- delimiter ``;`` (German PCs, with a decimal comma ``19,8``), ``,`` (a decimal comma then sits in quotes)
  or tab: the header's cells decide;
- names in German, English, French, Spanish or Chinese (``Temperatur``/``Temperature``/``温度``,
  ``Feuchte``/``Humidity``/``%rF``/``%RH``/``湿度``), temperature in ℃ or °F (converted);
- dates ``05.03.2024`` (day first), ISO ``2024-03-05``, or with slashes (the file's dates decide the order,
  or ``--date-order``); times without an offset are local: ``--tz``, by default the site's zone.
"""

from __future__ import annotations

from collector.importer.layout import WideLayout, wide_layout
from collector.importer.table import FileHead, split

__all__ = ["EXPECTS", "TITLE", "detect"]

TITLE = "Testo-style export"
EXPECTS = ("Testo-style: a header (after at most a few lines about the device) naming a date/time column and "
           "temperature or humidity columns, e.g. Datum/Zeit;Temperatur [°C];Feuchte [%rF]")


def detect(head: FileHead) -> WideLayout | None:
    """The layout of the first line in the head that is such a header."""
    for line in head.filled():
        delimiter = head.delimiter_for(line)
        names = split(line.text, delimiter)
        if len(names) < 2:
            continue
        layout = wide_layout(head.file.name, line.number, names, delimiter, format="testo", title=TITLE)
        if layout is not None:
            return layout
    return None
