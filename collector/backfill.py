"""Backfill: the one trusted way to write readings with past timestamps (a logger's export, a simulated past).

The live pipeline uses a device's own time only when it is plausible for a message received now (at most
7 days old, ``collector._stamping``): older history cannot come that way. :func:`backfill` takes it instead,
through the same checks and the same store:

- **route**: the reading's sensor must be configured (any configured sensor, enabled or not: the history
  of a retired sensor is still history); the reading gets the sensor's room;
- **validate**: the quantity must be one archmon knows (``archmon.quantities``); the value is checked as a
  live value is (``collector.values.checked_value``: a finite number inside the quantity's physical range,
  0/1 for door, smoke and leak; humidity up to 105 % saturates at 100, counted ``clamped``); the timestamp
  must lie between :data:`EARLIEST_MS` (2000-01-01) and 5 minutes after now (``MAX_DEVICE_SKEW_MS``);
- **calibrate**: by the reading's own time (``collector.calibration.correction_for``): a recorded calibration
  in force then (``corrections``), else the sensor's ``[sensors.calibration.<quantity>]``, so a
  logger's raw values and the live ones are corrected alike (not when ``values_corrected``: readings archmon
  stored and exported were corrected when they were first stored);
- **quarantine**: a rejected reading is kept like a rejected message (``collector.quarantine``: bounded per
  device and per source and minute, the rest counted ``quarantine_suppressed``), with ``source`` the
  caller's label (``import:logger-2024.csv``, ``demo-history``), topic ``backfill/<sensor>``, the reading as
  its payload (``ts_ms,sensor,quantity,value``) or, when it says where it came from
  (``HistoricalReading.origin``), the file line, stage ``route`` or ``validate`` and a reason naming it (and
  the file and line). A file line that gives no reading at all (:class:`UnreadableRow`: a timestamp or value
  that cannot be read) is quarantined the same way, stage ``decode``;
- **store**: batches of ``batch_size`` readings, one durable transaction each (``BatchStore.write_many``:
  a ``SqliteStore``; with ``[forward.influxdb]`` on, its forward outbox is hooked in first,
  ``collector.forward.hook``, so history is queued for forwarding like live readings). The store's
  idempotent key ``(sensor, quantity, ts)`` makes a second run over the same readings add nothing (counted
  ``duplicates``; a different value for a stored key is kept as stored and counted
  ``duplicates_conflicting``); hour and day rollups are updated for new rows only.

Readings may come in any order (time order per sensor is cheapest: one hour's rollup is merged once per
batch) and in any number: the iterator is consumed batch by batch, so memory stays bounded. A store error
propagates (``sqlite3.Error``); the batches before it are stored, and running the same input again adds
only what is missing. Counters persisted with each batch: ``backfilled`` (readings offered),
``source.<label>.backfilled``, and the pipeline's ``rejected``, ``quarantined``, ``quarantine_suppressed``.

**The alert engine does not see these readings.** Backfill writes to the store, not to the service's
writer, so a running ``AlertService`` neither judges them nor puts them in its windows (they would be
older than its 24 h window anyway, and only smoke and leak look at readings that old). A service started
afterwards rebuilds its windows and rule memory from the store (``alerts.rebuild``), so history of the
last 24 h counts from its next start. Whoever wants historical *alerts* judges the stored readings with an
engine of its own in simulated time (``on_stored`` hands them over in input order; ``dashboards.demo``
does this on a fresh database, before the service starts).

Example (what ``archmon import FILE --sensor ID`` builds on)::

    store = SqliteStore(db_path, tz=config.site.tz)
    rows = (HistoricalReading("th-1", "temperature", ts, value) for ts, value in parse(file))
    result = backfill(config, store, rows, source=f"import:{file.name}")
    print(result.stored, result.duplicates, result.rejected)
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from archmon.config import Config, SensorConfig
from archmon.domain import RawMessage, Reading
from archmon.quantities import QUANTITIES
from archmon.timeutil import now_ms, to_iso
from collector._stamping import MAX_DEVICE_SKEW_MS
from collector.calibration import EMPTY_BOOK, CorrectionSource, OffsetBook, correction_for
from collector.quarantine import QuarantineKeeper
from collector.records import Batch, WriteResult
from collector.values import checked_value
from collector.writer import BatchStore

__all__ = ["DEFAULT_BATCH_SIZE", "EARLIEST_MS", "REASONS_KEPT", "BackfillResult", "HistoricalReading", "InputLine",
           "UnreadableRow", "backfill"]

log = logging.getLogger(__name__)

EARLIEST_MS = 946_684_800_000
"""2000-01-01T00:00:00Z: an earlier timestamp is a logger's unset clock, not history."""
DEFAULT_BATCH_SIZE = 5000
REASONS_KEPT = 5
"""Reasons of the first rejected readings a :class:`BackfillResult` carries (the quarantine keeps the rest)."""


class InputLine(NamedTuple):
    """Where a reading came from in a file: what a rejection names and keeps as the raw input.

    Attributes:
        where: the file and line, e.g. ``datatest.txt line 12``: the reason of a rejection starts with it.
        text: the line as read (kept, bounded, as the quarantine record's payload).
    """

    where: str
    text: str


class HistoricalReading(NamedTuple):
    """One reading from the past, before validation and calibration.

    Attributes:
        sensor_id: a configured sensor's id.
        quantity: ``temperature``, ``humidity``, ``door``... (``archmon.quantities``).
        ts_ms: when it was measured (UTC epoch ms).
        value: the value as the device gave it, in the quantity's canonical unit (°C, %RH, 0/1).
        origin: the file line it was read from (None: the reading itself is kept if rejected).
    """

    sensor_id: str
    quantity: str
    ts_ms: int
    value: float
    origin: InputLine | None = None


class UnreadableRow(NamedTuple):
    """A line of an input file that gives no reading (a timestamp or a value that cannot be read): it is
    quarantined like a rejected reading (stage ``decode``), with the line as its raw input.

    Attributes:
        sensor_id: the sensor the line was meant for (None: not known).
        origin: the file, line and text.
        reason: what is wrong with it, e.g. ``timestamp '31.02.2024 10:00' is not a date``.
    """

    sensor_id: str | None
    origin: InputLine
    reason: str


@dataclass(slots=True)
class BackfillResult:
    """What a backfill did (also handed to ``progress`` after each batch, as a copy).

    Attributes:
        offered: readings (and unreadable rows) taken from the input.
        stored: readings newly stored.
        duplicates: readings the store had already (same sensor, quantity and timestamp).
        quarantined: rejected readings kept in the quarantine.
        suppressed: rejected readings over the quarantine's limits: counted, not kept.
        batches: transactions written.
        first_ms: the earliest timestamp stored (None: nothing stored).
        last_ms: the latest timestamp stored.
        reasons: the reasons of the first :data:`REASONS_KEPT` rejections (each naming its file and line when
            the input said where it came from), to show the person importing.
    """

    offered: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    suppressed: int = 0
    batches: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    reasons: tuple[str, ...] = ()

    @property
    def rejected(self) -> int:
        """Readings refused by routing or validation (kept in the quarantine or not)."""
        return self.quarantined + self.suppressed


def backfill(
    config: Config,
    store: BatchStore,
    readings: Iterable[HistoricalReading | UnreadableRow],
    *,
    source: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[BackfillResult], None] | None = None,
    on_stored: Callable[[WriteResult], None] | None = None,
    clock: Callable[[], int] = now_ms,
    corrections: CorrectionSource | None = None,
    values_corrected: bool = False,
) -> BackfillResult:
    """Validate, calibrate and store historical readings; quarantine the bad ones (see the module docstring).

    Args:
        config: the site configuration (sensors, calibration, quarantine limits).
        store: where batches are written (``SqliteStore``), one transaction per batch.
        readings: the readings, any order, any number (consumed ``batch_size`` at a time), and the input
            rows that gave none (:class:`UnreadableRow`: quarantined).
        source: a label naming where the readings came from, for the quarantine and the counters.
        batch_size: readings per transaction.
        progress: called after each committed batch with the counts so far.
        on_stored: called after each committed batch with what it stored (newly stored readings, in input
            order; duplicates left out), e.g. to judge them with an alert engine in simulated time.
        clock: the current time (UTC epoch ms; injected by tests): the receive time of quarantine records
            and the limit for timestamps in the future.
        corrections: the recorded calibrations (``alerts.calibration.RecordedCorrections``), applied by each
            reading's own time as the live pipeline does; None: only the configured ``[sensors.calibration]``.
        values_corrected: the values were corrected already (readings archmon stored and exported): they
            are validated and stored as they are, not corrected a second time.

    Returns:
        The counts.

    Raises:
        ValueError: ``source`` is empty or ``batch_size`` < 1.
        sqlite3.Error: the store refused a batch (earlier batches are stored).
    """
    label = source.strip()
    if not label:
        raise ValueError("backfill: source must name where the readings came from, e.g. 'import:logger.csv'")
    if batch_size < 1:
        raise ValueError(f"backfill: batch_size must be at least 1, got {batch_size}")
    sensors = {sensor.id: sensor for sensor in config.sensors}
    keeper = QuarantineKeeper(payload_max_bytes=config.storage.quarantine_payload_max_bytes,
                              per_source_per_minute=config.storage.quarantine_per_source_per_minute)
    result = BackfillResult()
    _hook_outbox(config, store)
    items = iter(readings)
    while chunk := list(itertools.islice(items, batch_size)):
        batch = Batch()
        now = clock()
        book = EMPTY_BOOK if corrections is None or values_corrected else corrections.book()
        reasons: list[str] = []
        for item in chunk:
            if isinstance(item, UnreadableRow):
                _unreadable(item, sensors, now, label, batch, keeper, reasons)
                continue
            reading = _checked(item, sensors, now, label, batch, keeper, None if values_corrected else book,
                               reasons)
            if reading is not None:
                batch.readings.append(reading)
        batch.count("backfilled", len(chunk))
        batch.count(f"source.{label}.backfilled", len(chunk))
        written = store.write_many([batch])[0]
        _add(result, chunk, batch, written, reasons)
        if on_stored is not None and written.stored:
            on_stored(written)
        if progress is not None:
            progress(dataclasses.replace(result))
    if result.rejected:
        log.warning("backfill from %s: %d of %d reading(s) rejected (%d kept in the quarantine: archmon quarantine "
                    "lists them)", label, result.rejected, result.offered, result.quarantined)
    log.info("backfill from %s: %d reading(s) offered, %d stored, %d already stored, %d rejected", label,
             result.offered, result.stored, result.duplicates, result.rejected)
    return result


def _hook_outbox(config: Config, store: BatchStore) -> None:
    """Queue what ``store`` stores for forwarding, if forwarding is on and nobody hooked the outbox in yet."""
    if config.forward.active is None or not hasattr(store, "add_write_hook"):
        return
    from collector.forward.hook import attach_outbox, hooked_outbox

    if hooked_outbox(store) is None:
        outbox = attach_outbox(config, store)  # type: ignore[arg-type]
        if outbox is not None:
            outbox.close()  # its own connections only: the hook writes on the store's connection


def _checked(item: HistoricalReading, sensors: dict[str, SensorConfig], now: int, label: str, batch: Batch,
             keeper: QuarantineKeeper, book: OffsetBook | None, reasons: list[str]) -> Reading | None:
    """The stored form of ``item`` (not corrected when ``book`` is None), or None after quarantining it."""
    sensor = sensors.get(item.sensor_id)
    if sensor is None:
        _reject(item, f"unknown sensor {item.sensor_id!r} (not in the configuration)", "route", None, now, label,
                batch, keeper, reasons)
        return None
    try:
        if item.quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {item.quantity!r}; known: {', '.join(sorted(QUANTITIES))}")
        ts = _checked_time(item.ts_ms, now)
        value = checked_value(item.quantity, item.value, batch)
        if book is not None:
            value = correction_for(sensor, item.quantity, ts, book).apply(item.quantity, value)
    except ValueError as exc:
        batch.count("rejected")
        _reject(item, f"sensor {sensor.id}: {exc}", "validate", sensor.id, now, label, batch, keeper, reasons)
        return None
    return Reading(sensor.id, item.quantity, value, ts, sensor.room)


def _checked_time(ts_ms: object, now: int) -> int:
    if isinstance(ts_ms, bool) or not isinstance(ts_ms, int):
        raise ValueError(f"timestamp must be integer epoch milliseconds, got {ts_ms!r}")
    if ts_ms < EARLIEST_MS:
        raise ValueError(f"timestamp {ts_ms} is before 2000-01-01 (a logger whose clock was never set?)")
    if ts_ms > now + MAX_DEVICE_SKEW_MS:
        raise ValueError(f"timestamp {to_iso(ts_ms)} is in the future (now {to_iso(now)})")
    return ts_ms


def _reject(item: HistoricalReading, reason: str, stage: str, sensor: str | None, now: int, label: str,
            batch: Batch, keeper: QuarantineKeeper, reasons: list[str]) -> None:
    if item.origin is None:
        payload = f"{item.ts_ms},{item.sensor_id},{item.quantity},{item.value!r}".encode("utf-8", "replace")
    else:
        payload = item.origin.text.encode("utf-8", "replace")
        reason = f"{item.origin.where}: {reason}"
    message = RawMessage(label, f"backfill/{item.sensor_id}", payload, now)
    keeper.keep(batch, message, reason, stage, sensor)
    reasons.append(reason)


def _unreadable(item: UnreadableRow, sensors: dict[str, SensorConfig], now: int, label: str, batch: Batch,
                keeper: QuarantineKeeper, reasons: list[str]) -> None:
    sensor = item.sensor_id if item.sensor_id in sensors else None
    reason = f"{item.origin.where}: {item.reason}"
    batch.count("rejected")
    message = RawMessage(label, f"backfill/{item.sensor_id or '-'}", item.origin.text.encode("utf-8", "replace"), now)
    keeper.keep(batch, message, reason, "decode", sensor)
    reasons.append(reason)


def _add(result: BackfillResult, chunk: list[HistoricalReading | UnreadableRow], batch: Batch, written: WriteResult,
         reasons: list[str]) -> None:
    result.offered += len(chunk)
    result.stored += len(written.stored)
    result.duplicates += written.duplicates
    result.quarantined += batch.counters.get("quarantined", 0)
    result.suppressed += batch.counters.get("quarantine_suppressed", 0)
    result.batches += 1
    if len(result.reasons) < REASONS_KEPT:
        result.reasons += tuple(reasons[: REASONS_KEPT - len(result.reasons)])
    if written.stored:
        first = min(reading.ts_ms for reading in written.stored)
        last = max(reading.ts_ms for reading in written.stored)
        result.first_ms = first if result.first_ms is None else min(result.first_ms, first)
        result.last_ms = last if result.last_ms is None else max(result.last_ms, last)
