"""Importing one file: look at it and refuse what cannot be imported (:func:`plan_import`), then read it
through :func:`collector.backfill.backfill` (:func:`run_import`).

Refused before anything is stored (:class:`~collector.importer.table.ImportRefused`, exit 2): a file that
cannot be read, a format no detector recognises (naming the file, its first line and what each format
expects), a sensor that is not configured (with the TOML lines to add), slash dates whose order the file
does not tell. Everything after that is the trusted path of historical readings: validation, calibration by
each reading's own time, the bounded quarantine (each rejection naming file and line), and the store's
idempotent key, so importing a file twice adds nothing.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo

from archmon.config import IMPORT_SOURCE, Config
from archmon.timeutil import now_ms
from collector.backfill import DEFAULT_BATCH_SIZE, BackfillResult, backfill
from collector.calibration import CorrectionSource
from collector.importer.columns import ColumnSpec, columns_layout
from collector.importer.formats import detect_layout
from collector.importer.layout import Layout, LongLayout
from collector.importer.rows import FileScan, RowCounts, read_rows, scan_rows
from collector.importer.table import ImportRefused, TextFile, open_text
from collector.importer.timestamps import DateOrder, TimeReader, file_direction, resolve_order
from collector.writer import BatchStore

__all__ = ["ImportOptions", "ImportOutcome", "ImportPlan", "plan_import", "run_import", "unknown_sensor_lines"]


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What the person importing says.

    Attributes:
        sensor: the sensor the file's readings are for (archmon's export: only its rows; None: each row's own).
        columns: ``--columns`` (None: detect the format).
        tz: the zone of times without an offset when the header names none (None: the site's).
        date_order: the order of slash dates (None: the file's dates tell).
        encoding: the file's text encoding (None: detected).
        delimiter: the cell delimiter (None: guessed from the header and the rows after it).
    """

    sensor: str | None = None
    columns: ColumnSpec | None = None
    tz: ZoneInfo | None = None
    date_order: DateOrder | None = None
    encoding: str | None = None
    delimiter: str | None = None


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """A file ready to import.

    Attributes:
        file: the file and its encoding; layout: where its readings are; scan: what the first pass found.
        zone: the zone of its times without an offset; zone_from: ``header``, ``--tz`` or ``site``.
        order: the order of its slash dates (None: none).
        sensor: ``--sensor``.
        descending: its rows are newest first (how a repeated autumn hour is read).
    """

    file: TextFile
    layout: Layout
    scan: FileScan
    zone: dt.tzinfo
    zone_from: str
    order: DateOrder | None
    sensor: str | None
    descending: bool = False

    @property
    def source(self) -> str:
        """The label of its readings in the quarantine and the counters: ``import:<file name>``."""
        return f"import:{self.file.name}"

    def describe(self) -> str:
        """One line saying how the file is read."""
        what = (f"sensor {self.sensor}" if self.sensor else "each row's sensor") if isinstance(
            self.layout, LongLayout) else f"sensor {self.sensor}"
        if isinstance(self.layout, LongLayout):
            times = "times in UTC as written"
        else:
            columns = ", ".join(f"{v.quantity} = {v.header!r}{' (°F → ℃)' if v.fahrenheit else ''}"
                                for v in self.layout.values)
            times = f"{columns}; times without an offset in {self.zone} (from the {self.zone_from})"
        order = {"mdy": "; dates month/day/year", "dmy": "; dates day/month/year", "ymd": "; dates year/month/day",
                 None: ""}[self.order]
        direction = "; newest first" if self.descending else ""
        return (f"{self.file.name}: {self.layout.title}, {self.scan.rows:,} rows → {what}; {times}{order}{direction}")


@dataclass(slots=True)
class ImportOutcome:
    """What importing a file did.

    Attributes:
        plan: the file's plan; result: the backfill's counts (as far as it got); counts: the rows read.
        error: why the import stopped early (a store error; what was stored before stays), or None.
    """

    plan: ImportPlan
    result: BackfillResult = field(default_factory=BackfillResult)
    counts: RowCounts = field(default_factory=RowCounts)
    error: str | None = None

    @property
    def complete(self) -> bool:
        """Every row was read and every reading stored or found stored already (nothing rejected)."""
        return self.error is None and self.result.rejected == 0


def plan_import(config: Config, path: Path, options: ImportOptions) -> ImportPlan:
    """Look at a file and decide how to read it (reads it once: rows, date order, sensors).

    Raises:
        ImportRefused: the file cannot be imported as it is (see the module docstring).
    """
    file = open_text(path, options.encoding)
    head = file.head(options.delimiter)
    layout = columns_layout(head, options.columns) if options.columns is not None else detect_layout(head)
    if not isinstance(layout, LongLayout) and options.sensor is None:
        raise ImportRefused(f"{file.name}: a {layout.title} does not name its sensor: say which with --sensor ID")
    scan = scan_rows(file, layout)
    if isinstance(layout, LongLayout) and options.sensor is None:
        needed = sorted(scan.sensors)
    else:
        needed = [options.sensor] if options.sensor else []
    known = {sensor.id for sensor in config.sensors}
    unknown = [sensor for sensor in needed if sensor not in known]
    if unknown:
        raise ImportRefused(unknown_sensor_lines(config, unknown))
    if isinstance(layout, LongLayout) and options.sensor and options.sensor not in scan.sensors:
        held = ", ".join(f"{s} ({n:,} rows)" for s, n in scan.sensors.most_common(10)) or "no rows"
        raise ImportRefused(f"{file.name}: no rows of sensor {options.sensor!r}; the file holds {held}")
    try:
        order = resolve_order(scan.dates, options.date_order)
    except ValueError as exc:
        raise ImportRefused(f"{file.name}: {exc}") from None
    _check_stamps(file.name, scan, TimeReader(config.site.tz, order))
    zone_of_header = getattr(layout, "zone", None)
    if zone_of_header is not None:
        zone, zone_from = zone_of_header, "header"
    elif options.tz is not None:
        zone, zone_from = options.tz, "--tz"
    else:
        zone, zone_from = config.site.tz, "site"
    first = scan.stamps[0][1] if scan.stamps else None
    descending = file_direction(TimeReader(zone, order), first, scan.last_stamp)
    return ImportPlan(file, layout, scan, zone, zone_from, order, options.sensor, descending)


def run_import(config: Config, store: BatchStore, plan: ImportPlan, *, corrections: CorrectionSource | None = None,
               progress: Callable[[RowCounts, BackfillResult], None] | None = None,
               clock: Callable[[], int] = now_ms, batch_size: int = DEFAULT_BATCH_SIZE) -> ImportOutcome:
    """Read the file's rows into the store through :func:`collector.backfill.backfill`.

    A store error stops the import (``outcome.error``); the batches before it are stored, and importing the
    same file again adds only what is missing.

    Args:
        config: the site configuration; store: where the readings go; plan: the file (:func:`plan_import`).
        corrections: the recorded calibrations (``alerts.calibration.RecordedCorrections``).
        progress: called after each stored batch with the rows read and the counts so far.
        clock: the current time (UTC epoch ms; tests).
        batch_size: readings per transaction.
    """
    outcome = ImportOutcome(plan)
    reader = TimeReader(plan.zone, plan.order, descending=plan.descending)
    rows: Iterable = read_rows(plan.file, plan.layout, reader, sensor=plan.sensor, counts=outcome.counts)

    def stored(result: BackfillResult) -> None:
        outcome.result = result
        if progress is not None:
            progress(replace(outcome.counts), result)

    try:
        outcome.result = backfill(config, store, rows, source=plan.source, batch_size=batch_size, progress=stored,
                                  clock=clock, corrections=corrections,
                                  values_corrected=isinstance(plan.layout, LongLayout))  # stored values, exported
    except sqlite3.Error as exc:
        outcome.error = f"the database refused a batch ({exc}); what was stored before stays"
    return outcome


def _check_stamps(name: str, scan: FileScan, clock: TimeReader) -> None:
    """Refuse a file none of whose first timestamps can be read: a form archmon does not read (a 12-hour
    clock in another language), not a few bad rows to quarantine."""
    problems = []
    for number, stamp in scan.stamps:
        try:
            clock.epoch_ms(stamp)
            return
        except ValueError as exc:
            problems.append((number, str(exc)))
    if problems:
        number, reason = problems[0]
        raise ImportRefused(f"{name}: line {number}: {reason}; none of the first {len(problems)} rows' timestamps "
                            "can be read (name the columns with --columns, or the date order with --date-order)")


def unknown_sensor_lines(config: Config, sensors: list[str]) -> list[str]:
    """What to tell someone importing for sensors that are not configured: the TOML to add."""
    where = config.label
    rooms = [room.id for room in config.rooms]
    lines = [f"sensor(s) {', '.join(repr(s) for s in sensors)} not in {where}: readings are imported only for "
             "configured sensors. Add, for example:", ""]
    if not rooms:
        lines += ["[[rooms]]", 'id = "store-1"', 'profile = "paper"       # the standard the room is held to', ""]
    room = rooms[0] if rooms else "store-1"
    room_note = f"# the room the logger was in: {', '.join(rooms[:8])}" if rooms else "# the room above"
    for sensor in sensors:
        lines += ["[[sensors]]", f'id = "{sensor}"', f'room = "{room}"  {room_note}',
                  f'source = "{IMPORT_SOURCE}"  # readings come only from imported files: no topic or address',
                  "expected_interval_s = 300  # the logger's logging interval, in seconds", ""]
    lines.append("then run the import again (archmon check-config checks the file).")
    return lines
