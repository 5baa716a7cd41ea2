"""Which correction a reading gets at ingest, and how its raw value is recovered: the configured one or a
recorded calibration's.

A **recorded calibration** (``archmon calibration add``, kept by the alert store, see
``alerts.calibration``) corrects temperature and humidity by an offset from the moment it *applies from*:
the start of its calibration date in the site's zone, or :data:`APPLY_GRACE_MS` after it was recorded if
that is later. Which correction a reading gets depends on its own timestamp and the history alone, never
on when it arrived, so:

- readings already stored are never rewritten (the archive's record of what was stored stays as it was);
  a record dated in the past applies to readings taken after it was recorded, and readings of the gap
  (stored before, or arriving late) keep the correction in force before it, alike;
- a reading's raw value is recovered exactly from the history (:meth:`Correction.invert`), except a
  corrected humidity that saturated at 0 or 100 %RH (flagged);
- a message sent again gets the same correction (same timestamp), so it still hits its idempotent key.

The grace is what makes "depends on its timestamp alone" hold while the collector runs: every pipeline
looks for new records at least once a second (``alerts.calibration.RecordedCorrections``), and no reading
it handles can carry a time more than :data:`~collector._stamping.MAX_DEVICE_SKEW_MS` ahead of the clock,
so a reading stamped at or after the grace is always handled knowing the record.

Among the records that apply at a time, the one with the latest calibration date wins (a later record of
the same date corrects an earlier one); an older certificate entered afterwards is history only.

**Precedence**: from the first recorded calibration of a sensor on, its records alone correct temperature
and humidity; ``[sensors.calibration.temperature|humidity]`` in the config (offset *and* scale) no longer
applies to those readings, so the two never add up. Other quantities keep the configured correction. An
offset a record does not give is 0 (the certificate found no correction needed).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from archmon.config import SensorConfig
from archmon.quantities import BINARY_QUANTITIES, check_value
from collector._stamping import MAX_DEVICE_SKEW_MS

__all__ = ["APPLY_GRACE_MS", "EMPTY_BOOK", "NO_CORRECTION", "RECORDED_QUANTITIES", "ConfiguredCorrections",
           "Correction", "CorrectionSource", "OffsetBook", "RecordedOffset", "applies_from_ms",
           "configured_corrections", "correction_for"]

APPLY_GRACE_MS = MAX_DEVICE_SKEW_MS + 5 * 60_000
"""A record applies no earlier than this long after it was recorded (10 minutes; see the module docstring)."""
RECORDED_QUANTITIES = ("temperature", "humidity")
"""The quantities a recorded calibration corrects."""


def applies_from_ms(calibrated_on: dt.date, tz: ZoneInfo, recorded_ms: int) -> int:
    """When a record applies from: its date's 00:00 in the site's zone, or the grace after it was recorded."""
    start = dt.datetime.combine(calibrated_on, dt.time(), tzinfo=tz)
    return max(int(start.timestamp() * 1000), recorded_ms + APPLY_GRACE_MS)


class RecordedOffset(NamedTuple):
    """What the ingest needs of one recorded calibration.

    Attributes:
        record_id: the record's id in the history.
        sensor: the sensor it is for.
        calibrated_on: its calibration date (ISO ``YYYY-MM-DD``: orders by date).
        applies_from_ms: when it applies from (:func:`applies_from_ms`, fixed when it was recorded).
        temperature: offset added to temperature readings (℃); humidity: to humidity readings (%RH).
        certificate: the certificate number.
    """

    record_id: int
    sensor: str
    calibrated_on: str
    applies_from_ms: int
    temperature: float
    humidity: float
    certificate: str

    def offset(self, quantity: str) -> float:
        """The offset for ``quantity`` (0 for a quantity records do not correct)."""
        return self.temperature if quantity == "temperature" else self.humidity if quantity == "humidity" else 0.0


class _Segment(NamedTuple):
    """From ``from_ms`` on (until the next segment) ``record`` is in force, with its corrections built once."""

    from_ms: int
    record: RecordedOffset
    temperature: Correction
    humidity: Correction


def _segment(record: RecordedOffset) -> _Segment:
    return _Segment(record.applies_from_ms, record,
                    Correction("record", 1.0, record.temperature, record.record_id, record.certificate),
                    Correction("record", 1.0, record.humidity, record.record_id, record.certificate))


class OffsetBook:
    """The recorded calibrations of every sensor, indexed for :meth:`at` (immutable once built: pipelines in
    other threads keep using a book while a newer one is made with :meth:`extended`).

    Args:
        records: every record (any order).
        version: what the history's newest record id was when it was read (0: none).
    """

    __slots__ = ("_records", "_segments", "_starts", "version")

    def __init__(self, records: Iterable[RecordedOffset] = (), *, version: int = 0) -> None:
        self.version = version
        self._records: dict[str, list[RecordedOffset]] = {}
        self._segments: dict[str, list[_Segment]] = {}
        self._starts: dict[str, list[int]] = {}
        self._index(records)

    def extended(self, records: Iterable[RecordedOffset], *, version: int) -> OffsetBook:
        """A new book with ``records`` added; only their sensors are indexed again (the history is
        append-only, so this is the book of the whole history read at ``version``)."""
        book = OffsetBook(version=version)
        book._records, book._segments, book._starts = dict(self._records), dict(self._segments), dict(self._starts)
        book._index(records)
        return book

    def _index(self, records: Iterable[RecordedOffset]) -> None:
        added: dict[str, list[RecordedOffset]] = {}
        for record in records:
            added.setdefault(record.sensor, []).append(record)
        for sensor, items in added.items():
            every = self._records[sensor] = [*self._records.get(sensor, ()), *items]  # a new list: never shared
            segments: list[_Segment] = []
            for record in sorted(every, key=lambda r: (r.applies_from_ms, r.record_id)):
                best = segments[-1].record if segments else None
                if best is None or (record.calibrated_on, record.record_id) > (best.calibrated_on, best.record_id):
                    if segments and segments[-1].from_ms == record.applies_from_ms:
                        segments[-1] = _segment(record)
                    else:
                        segments.append(_segment(record))
            self._segments[sensor] = segments
            self._starts[sensor] = [segment.from_ms for segment in segments]

    def at(self, sensor: str, ts_ms: int) -> RecordedOffset | None:
        """The record in force for ``sensor`` at ``ts_ms`` (None: none applies yet)."""
        segment = self._segment_at(sensor, ts_ms)
        return None if segment is None else segment.record

    def correction(self, sensor: str, quantity: str, ts_ms: int) -> Correction | None:
        """The recorded correction of ``quantity`` (temperature or humidity) at ``ts_ms`` (None: none applies)."""
        segment = self._segment_at(sensor, ts_ms)
        if segment is None:
            return None
        return segment.temperature if quantity == "temperature" else segment.humidity

    def _segment_at(self, sensor: str, ts_ms: int) -> _Segment | None:
        starts = self._starts.get(sensor)
        if starts is None:
            return None
        i = bisect.bisect_right(starts, ts_ms) - 1
        return self._segments[sensor][i] if i >= 0 else None

    def sensors(self) -> frozenset[str]:
        """Sensors with at least one record."""
        return frozenset(self._records)

    def __len__(self) -> int:
        """How many records the book holds."""
        return sum(len(items) for items in self._records.values())


EMPTY_BOOK = OffsetBook()


class CorrectionSource(Protocol):
    """Where the pipeline gets the recorded calibrations (``alerts.calibration.RecordedCorrections``)."""

    def book(self) -> OffsetBook:
        """The history as it stands now (cheap: called for every batch of messages)."""
        ...


@dataclass(frozen=True, slots=True)
class Correction:
    """The correction one reading gets: ``stored = raw × scale + offset`` (humidity saturates at 0 and 100).

    Attributes:
        source: ``record`` (a recorded calibration), ``config`` (``[sensors.calibration.<quantity>]``) or
            ``none``.
        scale: multiplier (records: always 1).
        offset: added after the scale.
        record_id: the record's id (``record`` only); certificate: its certificate number, or the config's.
    """

    source: Literal["none", "config", "record"]
    scale: float = 1.0
    offset: float = 0.0
    record_id: int | None = None
    certificate: str | None = field(default=None)

    def apply(self, quantity: str, value: float) -> float:
        """The corrected value of a raw ``value`` of ``quantity``.

        Raises:
            ValueError: a corrected value outside the quantity's range (humidity saturates instead).
        """
        if self.source == "none" or quantity in BINARY_QUANTITIES:
            return value
        corrected = value * self.scale + self.offset
        if quantity == "humidity":
            return min(100.0, max(0.0, corrected))  # a corrected hygrometer saturates, it does not exceed 100 %
        return check_value(quantity, corrected)

    def invert(self, quantity: str, stored: float) -> tuple[float, bool]:
        """The raw value a stored value was corrected from, and whether it is exact.

        Not exact: a corrected humidity stored at 0 or 100 %RH may have saturated (the raw value was at
        least, or at most, the one returned).
        """
        if self.source == "none" or quantity in BINARY_QUANTITIES:
            return stored, True
        raw = (stored - self.offset) / self.scale if self.scale else stored
        exact = not (quantity == "humidity" and stored in (0.0, 100.0) and (self.offset or self.scale != 1.0))
        return raw, exact


NO_CORRECTION = Correction("none")


ConfiguredCorrections = Mapping[str, Mapping[str, Correction]]
"""sensor id → quantity → its ``[sensors.calibration.<quantity>]`` as a :class:`Correction`."""


def configured_corrections(sensors: Iterable[SensorConfig]) -> dict[str, dict[str, Correction]]:
    """The configured corrections of ``sensors``, built once (the pipeline rebuilds them on a reload)."""
    return {sensor.id: {quantity: Correction("config", cal.scale, cal.offset, None, cal.certificate)
                        for quantity, cal in sensor.calibration.items()}
            for sensor in sensors if sensor.calibration}


def correction_for(sensor: SensorConfig, quantity: str, ts_ms: int, book: OffsetBook = EMPTY_BOOK,
                   configured: ConfiguredCorrections | None = None) -> Correction:
    """The correction a reading of ``sensor`` and ``quantity`` taken at ``ts_ms`` gets (see the module docstring).

    Args:
        sensor: the sensor's configuration (its ``calibration`` table).
        quantity: the reading's quantity.
        ts_ms: the reading's time.
        book: the recorded calibrations.
        configured: :func:`configured_corrections` of the configuration ``sensor`` is from, if at hand (the
            pipeline's: no object is built per reading); None: built from ``sensor``.
    """
    if quantity in RECORDED_QUANTITIES:
        recorded = book.correction(sensor.id, quantity, ts_ms)
        if recorded is not None:
            return recorded
    if configured is None:
        configured = configured_corrections([sensor])
    own = configured.get(sensor.id)
    return NO_CORRECTION if own is None else own.get(quantity, NO_CORRECTION)
