"""Recording a calibration (validated, audited) and handing the history to the ingest pipeline.

:func:`record_calibration` is what ``archmon calibration add`` does; :class:`RecordedCorrections` is the
pipeline's :class:`~collector.calibration.CorrectionSource` in ``archmon run``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

from alerts.store import AlertStore
from alerts.store._calibration import CalibrationRecord, newest_record_id, read_records
from archmon.config import Config, SensorConfig
from archmon.sqlite import connect
from collector.calibration import EMPTY_BOOK, OffsetBook, applies_from_ms

__all__ = ["MAX_OFFSET", "CalibrationError", "RecordedCorrections", "measured_quantities", "record_calibration"]

log = logging.getLogger(__name__)

MAX_OFFSET = {"temperature": 5.0, "humidity": 20.0}
"""Largest correction accepted (℃, %RH): an instrument further off is repaired or replaced, not corrected;
a larger number is most likely a typo (0.3 typed as 3)."""
MAX_TEXT = 200
_MEASURES = {"temperature_humidity": ("temperature", "humidity"), "multi": ("temperature", "humidity"),
             "temperature": ("temperature",), "humidity": ("humidity",)}


class CalibrationError(ValueError):
    """A calibration record that cannot be accepted; the message says what to change."""


def measured_quantities(sensor: SensorConfig) -> tuple[str, ...]:
    """Which of temperature and humidity a sensor of this kind measures (what a record may correct)."""
    return _MEASURES.get(sensor.kind, ())


def _text(value: str, what: str) -> str:
    text = " ".join(unicodedata.normalize("NFKC", value or "").split())
    if not text:
        raise CalibrationError(f"a calibration record needs {what}")
    if len(text) > MAX_TEXT:
        raise CalibrationError(f"{what} is too long (over {MAX_TEXT} characters)")
    return text


def _offset(quantity: str, value: float | None, sensor: SensorConfig) -> float:
    if value is None:
        return 0.0
    if quantity not in measured_quantities(sensor):
        raise CalibrationError(f"sensor {sensor.id} (kind {sensor.kind}) measures no {quantity}: "
                               f"--offset-{quantity} does not apply")
    if not math.isfinite(value) or abs(value) > MAX_OFFSET[quantity]:
        unit = "℃" if quantity == "temperature" else "%RH"
        raise CalibrationError(f"--offset-{quantity} {value:g} is not a correction within ±{MAX_OFFSET[quantity]:g} "
                               f"{unit} (an instrument further off is repaired or replaced)")
    return float(value)


def record_calibration(store: AlertStore, config: Config, sensor_id: str, calibrated_on: dt.date, certificate: str,
                       *, offset_temperature: float | None = None, offset_humidity: float | None = None, by: str,
                       now_ms: int) -> CalibrationRecord:
    """Validate and append one calibration record (audited as ``calibration``).

    Args:
        store: the alert store of the site's database.
        config: the site configuration (the sensor must be in it).
        sensor_id: the instrument.
        calibrated_on: the calibration date (a day of the site's calendar; not after today there).
        certificate: the certificate number.
        offset_temperature: correction to add to temperature readings (℃; None: none).
        offset_humidity: correction to add to humidity readings (%RH; None: none).
        by: who records it.
        now_ms: the time of recording (the offsets apply from the later of the date and
            ``collector.calibration.APPLY_GRACE_MS`` after it).

    Raises:
        CalibrationError: unknown sensor, a date in the future, no certificate or name, an offset for a
            quantity the sensor does not measure or beyond :data:`MAX_OFFSET`.
    """
    sensor = next((s for s in config.sensors if s.id == sensor_id), None)
    if sensor is None:
        known = ", ".join(s.id for s in config.sensors) or "none configured"
        raise CalibrationError(f"unknown sensor {sensor_id!r}: calibrations are recorded for configured sensors "
                               f"(known: {known})")
    tz = config.site.tz
    today = dt.datetime.fromtimestamp(now_ms / 1000, tz).date()
    if calibrated_on > today:
        raise CalibrationError(f"--date {calibrated_on.isoformat()} is after today ({today.isoformat()} in "
                               f"{config.site.timezone}): record a calibration once it is made")
    certificate = _text(certificate, "a certificate number (--certificate)")
    by = _text(by, "the name of who records it (--by)")
    temperature = _offset("temperature", offset_temperature, sensor)
    humidity = _offset("humidity", offset_humidity, sensor)
    return store.add_calibration(sensor.id, calibrated_on, certificate, offset_temperature=temperature,
                                 offset_humidity=humidity, by=by, recorded_ms=now_ms,
                                 applies_from_ms=applies_from_ms(calibrated_on, tz, now_ms))


class RecordedCorrections:
    """The recorded calibrations for the ingest pipeline, followed as they are added (by any process).

    :meth:`book` looks for a new record at most every ``look_every_s`` (one index lookup) and reads only the
    records added since (the history is append-only), indexing again only their sensors. A read that fails
    keeps the last book (logged); so does a file without records.

    Args:
        path: the shared SQLite file (its calibration table is created if missing).
        look_every_s: how often to look for new records (must stay well under
            ``collector.calibration.APPLY_GRACE_MS``).
        clock: monotonic seconds (tests).
    """

    def __init__(self, path: Path | str, *, look_every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        AlertStore(path).close()  # the tables exist before the first look
        self.path = Path(path)
        self._look_every_s = look_every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = connect(self.path, readonly=True)
        self._book = EMPTY_BOOK
        self._next_look = float("-inf")
        self._failed = False
        self.reads = 0
        """How often the whole history was read (tests and diagnostics)."""

    def book(self) -> OffsetBook:
        """The history as of at most ``look_every_s`` ago."""
        now = self._clock()
        if now < self._next_look:
            return self._book
        with self._lock:
            if now < self._next_look:
                return self._book
            self._next_look = now + self._look_every_s
            try:
                version = newest_record_id(self._conn)
                if version != self._book.version:  # append-only: read only what was added since
                    records = [r for r in read_records(self._conn, after_id=self._book.version) if r.id <= version]
                    self._book = self._book.extended((r.as_offset() for r in records), version=version)
                    self.reads += 1
                    log.info("calibration: %d new recorded calibration(s) taken for new readings (%d in all, "
                             "%d sensor(s))", len(records), len(self._book), len(self._book.sensors()))
                self._failed = False
            except Exception:
                if not self._failed:
                    log.exception("calibration: cannot read the recorded calibrations from %s; readings go on "
                                  "with the ones read before", self.path)
                self._failed = True
            return self._book

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
