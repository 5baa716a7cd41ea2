"""Where a file's values are: the columns of its timestamp and of each quantity, found from its header.

Two shapes of file:

- **wide** (:class:`WideLayout`, every logger format): one row per time, a column per quantity. The header
  names them; :func:`wide_layout` finds the timestamp (one column, or a date and a time column) and the
  temperature and humidity columns by their names in English, German, French, Spanish or Chinese, and the
  temperature's unit (``°F`` is converted to ℃; no unit: ℃). Dew point, absolute humidity and statistics
  series (``Max: Temp``) are not readings and are left out;
- **long** (:class:`LongLayout`, archmon's own export): one row per reading, naming sensor and quantity.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import NamedTuple

from collector.importer.table import ImportRefused

__all__ = ["Layout", "LongLayout", "TimeColumns", "ValueColumn", "WideLayout", "quantity_of", "wide_layout"]

_FAHRENHEIT = re.compile(r"(?:°|º|\*|\?|\ufffd|deg\.?\s*)\s*F\b|[\[(]\s*F\s*[\])]", re.IGNORECASE)
_TEMPERATURE = re.compile(r"\b(?:temp|temperatur|temperature|température|temperatura|t)\b|温度|(?:°|º)\s*[CF]\b",
                          re.IGNORECASE)
_HUMIDITY = re.compile(r"\b(?:rh|humidity|feuchte|luftfeuchte|luftfeuchtigkeit|rel\.?\s*feuchte|humidité|"
                       r"humedad)\b|%\s*r\.?\s*[fh]\b|%\s*hr\b|湿度", re.IGNORECASE)
_NOT_A_READING = re.compile(r"\b(?:dew|dewpt|taupunkt|td|wet|abs\.?|absolute|max|min|avg|mean|std|ratio)\b|"
                            r"露点|g/m|humidityratio", re.IGNORECASE)
_DATETIME = re.compile(r"^(?:date\s*[-/&]?\s*time|datetime|datum\s*[-/&]?\s*(?:uhr)?zeit|zeitstempel|"
                       r"time\s*stamp|timestamp|ts|日期\s*/?\s*时间|记录时间|时间戳)\b", re.IGNORECASE)
_DATE = re.compile(r"^(?:date|datum|日期)$", re.IGNORECASE)
_TIME = re.compile(r"^(?:time|zeit|uhrzeit|时间)$", re.IGNORECASE)


class ValueColumn(NamedTuple):
    """A column of values.

    Attributes:
        index: its position among the header's names (0 first).
        quantity: what it holds (``temperature``, ``humidity``...).
        header: its name in the header (rejections quote it).
        fahrenheit: temperatures in °F, converted to ℃.
    """

    index: int
    quantity: str
    header: str
    fahrenheit: bool = False


@dataclass(frozen=True, slots=True)
class TimeColumns:
    """The timestamp's column, or its date and time columns (positions among the header's names)."""

    timestamp: int | None = None
    date: int | None = None
    time: int | None = None

    def text(self, cells: list[str], leading: int) -> str:
        """The timestamp text of a row (date and time joined by a space)."""
        if self.timestamp is not None:
            return cells[self.timestamp + leading]
        assert self.date is not None and self.time is not None
        return f"{cells[self.date + leading]} {cells[self.time + leading]}"

    @property
    def indexes(self) -> tuple[int, ...]:
        """The positions used."""
        return tuple(i for i in (self.timestamp, self.date, self.time) if i is not None)


@dataclass(frozen=True, slots=True)
class WideLayout:
    """A file with a row per time and a column per quantity.

    Attributes:
        format: the format's registry name (``uci``, ``hobo``, ``testo``, or ``columns`` for ``--columns``).
        title: the format as the summary names it.
        header_line: the header's line number (0: the file has no header).
        header: the header's names.
        delimiter: the cell delimiter.
        time: the timestamp's columns.
        values: the value columns.
        leading: cells every row has before the header's first name (the UCI files' unnamed row number).
        zone: the zone the header names (HOBO's ``GMT+08:00``), which wins over ``--tz``; None: none.
    """

    format: str
    title: str
    header_line: int
    header: tuple[str, ...]
    delimiter: str
    time: TimeColumns
    values: tuple[ValueColumn, ...]
    leading: int = 0
    zone: dt.tzinfo | None = None

    @property
    def min_cells(self) -> int:
        """The cells a row needs to hold every column read."""
        return self.leading + 1 + max((*self.time.indexes, *(v.index for v in self.values)))


@dataclass(frozen=True, slots=True)
class LongLayout:
    """archmon's own export: a row per reading, ``ts,site,room,sensor,quantity,value``.

    Attributes:
        format: the registry name (``archmon``).
        title: the format as the summary names it.
        header_line: the header's line number.
        delimiter: the cell delimiter (``,``).
    """

    format: str
    title: str
    header_line: int
    delimiter: str = ","
    timestamp: int = 0
    sensor: int = 3
    quantity: int = 4
    value: int = 5


Layout = WideLayout | LongLayout
"""Where a file's readings are."""


def quantity_of(name: str) -> ValueColumn | None:
    """The quantity a header name stands for (index 0: the caller places it), or None."""
    if _NOT_A_READING.search(name):
        return None
    if _HUMIDITY.search(name):
        return ValueColumn(0, "humidity", name)
    if _TEMPERATURE.search(name):
        return ValueColumn(0, "temperature", name, fahrenheit=bool(_FAHRENHEIT.search(name)))
    return None


def _time_columns(names: tuple[str, ...], skip: set[int]) -> TimeColumns | None:
    def find(pattern: re.Pattern[str]) -> int | None:
        return next((i for i, name in enumerate(names) if i not in skip and pattern.search(name)), None)

    stamp = find(_DATETIME)
    if stamp is not None:
        return TimeColumns(timestamp=stamp)
    date, time = find(_DATE), find(_TIME)
    if date is not None and time is not None:
        return TimeColumns(date=date, time=time)
    single = date if date is not None else time
    return None if single is None else TimeColumns(timestamp=single)


def wide_layout(file_name: str, line: int, names: list[str], delimiter: str, *, format: str, title: str,
                leading: int = 0, zone: dt.tzinfo | None = None, stamp: int | None = None) -> WideLayout | None:
    """The layout a header gives, or None when it has no timestamp or no temperature/humidity column.

    Args:
        file_name: named in errors; line: the header's line number; names: its cells; delimiter: theirs.
        format: the registry name; title: the format as the summary names it.
        leading: cells rows have before the header's first name.
        zone: the zone the header names.
        stamp: the timestamp column, when the format knows it (HOBO's ``Date Time, GMT...``).

    Raises:
        ImportRefused: two columns of one quantity (which one is meant: ``--columns``).
    """
    header = tuple(names)
    found: dict[str, list[ValueColumn]] = {}
    for index, name in enumerate(header):
        if index == stamp:
            continue
        column = quantity_of(name)
        if column is not None:
            found.setdefault(column.quantity, []).append(column._replace(index=index))
    time = TimeColumns(timestamp=stamp) if stamp is not None else _time_columns(
        header, {c.index for columns in found.values() for c in columns})
    if time is None or not found:
        return None
    for quantity, columns in found.items():
        if len(columns) > 1:
            listed = ", ".join(f"{c.index + 1 + leading}: {c.header!r}" for c in columns)
            first = columns[0].index + 1 + leading
            raise ImportRefused(f"{file_name}: line {line}: {len(columns)} {quantity} columns ({listed}); say which "
                                f"one with --columns, e.g. --columns ts=...,{quantity}={first}")
    values = tuple(sorted((columns[0] for columns in found.values()), key=lambda c: c.index))
    return WideLayout(format, title, line, header, delimiter, time, values, leading=leading, zone=zone)
