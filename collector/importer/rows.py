"""A file's rows as historical readings: one pass to look (:func:`scan_rows`), one to read (:func:`read_rows`).

Per row of a wide file: the timestamp, then each value column. A row whose timestamp cannot be read, or that
has too few cells, gives one :class:`~collector.backfill.UnreadableRow`; a value that is not a number gives
one for that cell (the row's other values are still read). An empty value cell is no reading: a HOBO event
row, a channel that was off (counted ``empty``). Every reading carries the file, line and text it came
from, so a rejection in :func:`collector.backfill.backfill` names them and keeps the line.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from archmon.quantities import fahrenheit_to_celsius
from collector.backfill import HistoricalReading, InputLine, UnreadableRow
from collector.importer.layout import Layout, LongLayout, WideLayout
from collector.importer.table import TextFile, parse_number, split
from collector.importer.timestamps import DateOrderEvidence, TimeReader

__all__ = ["RECENT_KEPT", "STAMPS_KEPT", "FileScan", "RowCounts", "read_rows", "scan_rows"]

STAMPS_KEPT = 20
RECENT_KEPT = 4096
"""Readings remembered to find two rows of one file giving one instant different values (a misread clock
change, a logger's clock set back): a file is in time order, so such rows are close; memory stays bounded."""


@dataclass(slots=True)
class FileScan:
    """What a first pass over a file found.

    Attributes:
        rows: data rows (non-blank lines after the header).
        dates: the evidence for the order of slash dates.
        sensors: rows per sensor (archmon's export, whose rows name their sensor).
        stamps: the timestamp cells of the first :data:`STAMPS_KEPT` rows, with their line numbers (to refuse
            a file none of whose first timestamps can be read, before thousands of rows are quarantined).
        last_stamp: the last row's timestamp cell (with the first one: the file's direction).
    """

    rows: int = 0
    dates: DateOrderEvidence = field(default_factory=DateOrderEvidence)
    sensors: Counter[str] = field(default_factory=Counter)
    stamps: list[tuple[int, str]] = field(default_factory=list)
    last_stamp: str | None = None


@dataclass(slots=True)
class RowCounts:
    """What reading a file has done so far (the progress bar follows ``rows``).

    Attributes:
        rows: data rows read.
        empty: value cells left empty (no reading).
        other_sensors: rows of other sensors than ``--sensor`` (archmon's export), not imported.
    """

    rows: int = 0
    empty: int = 0
    other_sensors: int = 0


def _data_lines(file: TextFile, header_line: int) -> Iterator[tuple[int, str]]:
    for number, text in file.lines():
        if number > header_line and text.strip():
            yield number, text


def scan_rows(file: TextFile, layout: Layout) -> FileScan:
    """Count the data rows and collect what the timestamps and sensor names say (cells are not checked)."""
    scan = FileScan()
    for number, text in _data_lines(file, layout.header_line):
        scan.rows += 1
        cells = split(text, layout.delimiter)
        stamp = None
        if isinstance(layout, LongLayout):
            if len(cells) > layout.sensor:
                scan.sensors[cells[layout.sensor]] += 1
                stamp = cells[layout.timestamp]
        elif len(cells) >= layout.min_cells:
            stamp = layout.time.text(cells, layout.leading)
            scan.dates.add(stamp)
        if stamp is not None:
            scan.last_stamp = stamp
            if len(scan.stamps) < STAMPS_KEPT:
                scan.stamps.append((number, stamp))
    return scan


def read_rows(file: TextFile, layout: Layout, clock: TimeReader, *, sensor: str | None,
              counts: RowCounts) -> Iterator[HistoricalReading | UnreadableRow]:
    """The readings of every data row (see the module docstring), in file order.

    Args:
        file: the file; layout: where its readings are; clock: reads its timestamps.
        sensor: the sensor the readings are for (archmon's export: only this sensor's rows; None: every row's
            own sensor).
        counts: updated as rows are read.
    """
    recent: OrderedDict[tuple[str, str, int], tuple[float, int]] = OrderedDict()
    for number, text in _data_lines(file, layout.header_line):
        counts.rows += 1
        origin = InputLine(f"{file.name} line {number}", text)
        cells = split(text, layout.delimiter)
        if isinstance(layout, LongLayout):
            found = _long_row(cells, origin, layout, clock, sensor, counts)
        else:
            assert sensor is not None
            found = _wide_row(cells, origin, layout, clock, sensor, counts)
        for item in found:
            if isinstance(item, HistoricalReading):
                key = (item.sensor_id, item.quantity, item.ts_ms)
                seen = recent.get(key)
                if seen is not None and seen[0] != item.value:
                    yield UnreadableRow(item.sensor_id, origin, (
                        f"{item.quantity}: line {seen[1]} of this file gives the same instant another value "
                        f"({seen[0]:g}, here {item.value:g}): one of the two times is misread (a clock change, "
                        "--tz) or the logger's clock was set back"))
                    continue
                recent[key] = (item.value, number)
                if len(recent) > RECENT_KEPT:
                    recent.popitem(last=False)
            yield item


def _wide_row(cells: list[str], origin: InputLine, layout: WideLayout, clock: TimeReader, sensor: str,
              counts: RowCounts) -> Iterator[HistoricalReading | UnreadableRow]:
    expected = len(layout.header) + layout.leading
    if len(cells) < layout.min_cells or (layout.leading and len(cells) != expected):
        wanted = str(expected) if layout.leading else f"at least {layout.min_cells}"
        yield UnreadableRow(sensor, origin, f"{len(cells)} cells, expected {wanted}")
        return
    stamp = layout.time.text(cells, layout.leading)
    try:
        ts_ms = clock.epoch_ms(stamp)
    except ValueError as exc:
        yield UnreadableRow(sensor, origin, str(exc))
        return
    for column in layout.values:
        cell = cells[column.index + layout.leading]
        if not cell:
            counts.empty += 1
            continue
        try:
            value = parse_number(cell)
        except ValueError as exc:
            yield UnreadableRow(sensor, origin, f"{column.quantity} ({column.header!r}): {exc}")
            continue
        if column.fahrenheit:  # 6 decimals: far below any logger's resolution, and no 18.000000000000004
            value = round(fahrenheit_to_celsius(value), 6)
        yield HistoricalReading(sensor, column.quantity, ts_ms, value, origin)


def _long_row(cells: list[str], origin: InputLine, layout: LongLayout, clock: TimeReader, only: str | None,
              counts: RowCounts) -> Iterator[HistoricalReading | UnreadableRow]:
    if len(cells) != 6:
        yield UnreadableRow(only, origin, f"{len(cells)} cells, expected 6 (ts,site,room,sensor,quantity,value)")
        return
    sensor, quantity = cells[layout.sensor], cells[layout.quantity]
    if only is not None and sensor != only:
        counts.other_sensors += 1
        return
    try:
        ts_ms = clock.epoch_ms(cells[layout.timestamp])
        value = parse_number(cells[layout.value])
    except ValueError as exc:
        yield UnreadableRow(sensor, origin, str(exc))
        return
    yield HistoricalReading(sensor, quantity, ts_ms, value, origin)
