"""The ingest pipeline: raw message → decode → route → validate → stamp → calibrate → store.

``Pipeline.process`` never raises: whatever cannot become a reading is quarantined with its raw
payload (bounded, ``collector.quarantine``), source and reason, and counted. It returns the store
writer's future, which resolves when everything the message produced is durable (the MQTT source
acknowledges the message only then).

Stamping (``collector._stamping``): a device's own time when plausible (at most 7 days before the
receive time, at most 5 minutes ahead); an implausible one is counted ``device_time_rejected`` (once per
message) and logged once per sensor (a device without NTP), and the reading gets the receive time
instead. A QoS 1/2 MQTT message sent again with DUP gets its first copy's time from its receipt
(``collector.receipts``), so it hits its idempotent key; one sent again without DUP is stored anew.

Handing a message over again (a chunk the store refused, split message by message; an MQTT chunk held
back while the writer was full) gives the same result: its receive-time stamp, its receipt decision and
its quarantine decision are remembered for as long as the message object lives (``collector.memo``).

A lone QoS 1/2 MQTT message the store refuses for good (a constraint error, after the MQTT source split
its chunk) is quarantined instead, with the store's error as the reason, and counted ``store_refused``:
its future then resolves once that record is durable, so the source acknowledges it. Otherwise the
broker would send it again on every reconnect and it would hold one of its in-flight places forever.

Calibration comes after stamping because the correction depends on the reading's time
(:mod:`collector.calibration`: the configured ``[sensors.calibration]`` or, from a sensor's first recorded
calibration on, the record in force at that time). The recorded history is taken once per batch from the
``corrections`` source.

Each source kind decodes its own messages: the registry's ``SourceKind.decoder`` makes one decode step
per configured source (``collector.decode_steps`` for the built-in kinds); the pipeline runs it with the
shared steps of :class:`_Handling`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from archmon.config import Config, SensorConfig
from archmon.domain import RawMessage, Reading
from archmon.errors import DecodeError, NotSensorData, RetryLater
from archmon.timeutil import now_ms, to_iso
from collector._stamping import BatchReceipts, Stamper
from collector._warn_once import WarnOnce
from collector.calibration import EMPTY_BOOK, CorrectionSource, OffsetBook, configured_corrections, correction_for
from collector.quarantine import QuarantineKeeper, shown
from collector.receipts import ReceiptBook, ReceiptLookup, message_digest
from collector.records import Batch, WriteResult
from collector.routing import Router
from collector.source import DecodeStep, SourceConfig
from collector.sources import SOURCE_KINDS, SourceKind, source_configs
from collector.values import checked_value
from devices.decoded import Decoded, DecodedValue, DecodeOptions
from devices.formats import get_decoder

__all__ = ["Pipeline", "ReceiptLookup", "Submit", "message_digest"]

log = logging.getLogger(__name__)


class Submit(Protocol):
    """Hands a batch to the store writer (``StoreWriter.submit``)."""

    def __call__(self, batch: Batch, *, timeout: float | None = None) -> Future[WriteResult]:
        """Returns a future resolved once ``batch`` is durable; ``timeout=0``: raise ``RetryLater`` if full."""
        ...


class _Accepted(NamedTuple):
    """A value that passed validation (not corrected yet), with the device's time if plausible."""

    quantity: str
    value: float
    device_ts: int | None


class Pipeline:
    """Turns raw messages into durable readings; see the module docstring.

    Args:
        config: the validated configuration.
        submit: hands a batch to the store writer and returns a future resolved once it is durable.
        clock: current time in UTC epoch ms (injected by tests).
        receipt_lookup: finds the receive time committed for a message sent again (``SqliteStore.receipt_time``);
            None: only receipts not yet committed are known.
        sources: the source tables' typed configs (default: validated here through the registry).
        kinds: the source registry.
        corrections: the recorded calibrations (``alerts.calibration.RecordedCorrections``); None: only the
            configured ``[sensors.calibration]`` applies.

    Raises:
        ConfigError: a source table is invalid.
    """

    def __init__(
        self,
        config: Config,
        submit: Submit | Callable[[Batch], Future[WriteResult]],
        *,
        clock: Callable[[], int] = now_ms,
        receipt_lookup: ReceiptLookup | None = None,
        sources: Sequence[SourceConfig] | None = None,
        kinds: Mapping[str, SourceKind] = SOURCE_KINDS,
        corrections: CorrectionSource | None = None,
    ) -> None:
        self._submit = submit
        self.corrections = corrections
        self._clock = clock
        self._kinds = kinds
        self.receipts = ReceiptBook(receipt_lookup)
        self.quarantine = QuarantineKeeper(
            payload_max_bytes=config.storage.quarantine_payload_max_bytes,
            per_source_per_minute=config.storage.quarantine_per_source_per_minute,
        )
        self.warnings = WarnOnce(log)
        self._stamper = Stamper(self.receipts, self.warnings)
        self.reconfigure(config, sources)

    def process(self, message: RawMessage) -> Future[WriteResult]:
        """Handle one raw message and submit what it produced; see the module docstring."""
        return self.process_many([message])

    def process_many(self, messages: Sequence[RawMessage], *, timeout: float | None = None) -> Future[WriteResult]:
        """Handle several raw messages and submit what they produced as one batch (one future for all).

        Args:
            timeout: longest wait for room in the store writer's queue (None: as long as needed; 0: never
                wait, what the MQTT source needs: its network thread must keep serving the connection).

        Raises:
            RetryLater: the writer's queue stayed full for ``timeout`` seconds, or the writer is closed;
                nothing was submitted, and the same messages may be handed over again later (they get
                the same stamps and quarantine decisions).
        """
        batch = self.handle_many(messages)
        future = self._submit_batch(batch, timeout)
        self.receipts.hold(batch.receipts, future)
        if len(messages) == 1 and messages[0].mid is not None:
            sensor = batch.readings[0].sensor if batch.readings else None
            return self._quarantined_if_refused(messages[0], sensor, future)
        return future

    def _submit_batch(self, batch: Batch, timeout: float | None) -> Future[WriteResult]:
        # a plain callable (tests, replay) may not take a timeout
        return self._submit(batch) if timeout is None else self._submit(batch, timeout=timeout)  # type: ignore[call-arg]

    def _quarantined_if_refused(self, message: RawMessage, sensor: str | None, stored: Future[WriteResult]
                                ) -> Future[WriteResult]:
        """``stored``, except that a refusal for good becomes a quarantine record (see the module docstring).

        The callback may run in the writer's thread: the record is submitted without waiting (a full
        writer leaves the message refused and unacknowledged; the broker sends it again later).
        """
        out: Future[WriteResult] = Future()

        def quarantined(record: Future[WriteResult], refusal: BaseException) -> None:
            error = record.exception()
            if error is None:
                out.set_result(WriteResult())
            else:
                out.set_exception(refusal)

        def done(first: Future[WriteResult]) -> None:
            error = first.exception()
            if error is None:
                out.set_result(first.result())
                return
            if isinstance(error, RetryLater):  # not stored, not refused: the source leaves it unacknowledged
                out.set_exception(error)
                return
            batch = Batch()
            batch.count("store_refused")
            batch.count(f"source.{message.source}.store_refused")
            self.warnings("store_refused", message.source,
                          "the store refused a message from %s topic %s for good (%s: %s); it is quarantined and "
                          "acknowledged (counted store_refused)", message.source, shown(message.topic),
                          type(error).__name__, error)
            self.quarantine.keep(batch, message, f"the store refused it: {type(error).__name__}: {error}", "store",
                                 sensor)
            try:
                record = self._submit_batch(batch, 0)
            except Exception:  # the writer is full or closed: stays refused, the broker sends it again
                out.set_exception(error)
                return
            record.add_done_callback(lambda f: quarantined(f, error))

        stored.add_done_callback(done)
        return out

    def handle(self, message: RawMessage) -> Batch:
        """Turn one raw message into a batch (readings, rejects, counters) without storing it."""
        return self.handle_many([message])

    def handle_many(self, messages: Sequence[RawMessage]) -> Batch:
        """Turn several raw messages into one batch, in order, as if each were handled and the batches merged."""
        handling = _Handling(self, Batch(), {}, self._book())
        for message in messages:
            self._handle_into(message, handling)
        return handling.batch

    def _handle_into(self, message: RawMessage, handling: _Handling) -> None:
        handling.batch.count("received")
        try:
            step = self._steps.get(message.source)
            if step is None:
                self._reject(handling.batch, message, f"unknown source {message.source!r}", "route")
            else:
                step(handling, message)
        except Exception as exc:  # a bug must cost one message, never the collector
            log.exception("pipeline error on %s %s", message.source, shown(message.topic))
            self._reject(handling.batch, message, f"internal error: {type(exc).__name__}: {exc}", "internal")

    def _book(self) -> OffsetBook:
        if self.corrections is None:
            return EMPTY_BOOK
        try:
            return self.corrections.book()
        except Exception:  # the source keeps its last book itself; this is a bug, and must not cost the batch
            log.exception("cannot read the recorded calibrations; this batch is corrected without them")
            return EMPTY_BOOK

    # -- shared steps ----------------------------------------------------------------------------

    def _decode(
        self, message: RawMessage, batch: Batch, fmt: str, options: DecodeOptions, sensor: SensorConfig | None
    ) -> Decoded | None:
        try:
            return get_decoder(fmt).decode(message.topic, message.payload, options)
        except NotSensorData as exc:
            batch.count("ignored")  # routine status/command/diagnostic traffic: counted, not an error
            self.warnings("ignored", (message.source, sensor.id if sensor else message.topic),
                          "ignoring non-measurement messages like %s on %s: %s", shown(message.topic), message.source,
                          shown(str(exc)))
        except DecodeError as exc:
            who = f"sensor {sensor.id} " if sensor else ""
            self._reject(batch, message, f"{who}{fmt}: {exc}", "decode", sensor.id if sensor else None)
        return None

    def _accept(
        self,
        message: RawMessage,
        batch: Batch,
        sensor: SensorConfig,
        values: Sequence[DecodedValue],
        receipts: BatchReceipts | None = None,
        book: OffsetBook = EMPTY_BOOK,
    ) -> None:
        """Validate, stamp and calibrate ``values``; a QoS 1/2 MQTT message stamped with its receive time
        leaves a receipt in ``receipts`` (``collector._stamping``)."""
        if not values:
            batch.count("empty")  # well-formed, but nothing archmon stores (e.g. only linkquality)
            return
        now = self._clock()
        accepted: list[_Accepted] = []
        bad_clock: int | None = None
        for item in values:
            try:
                value = checked_value(item.quantity, item.value, batch)
            except ValueError as exc:
                self._rejected_value(batch, message, sensor, exc)
                continue
            device_ts = self._stamper.plausible_device_time(item.ts_ms, message.received_ms, now)
            if device_ts is None and item.ts_ms is not None and bad_clock is None:
                bad_clock = item.ts_ms
            accepted.append(_Accepted(item.quantity, value, device_ts))
        if bad_clock is not None:
            self._device_time_rejected(batch, sensor, bad_clock, message.received_ms)
        received_ms: int | None = None
        for item in accepted:
            ts = item.device_ts
            if ts is None:
                if message.retained:
                    batch.count("retained_skipped")
                    continue
                if received_ms is None:
                    received_ms = self._stamper.receive_time(message, batch, sensor.id, receipts)
                ts = received_ms
            try:
                value = correction_for(sensor, item.quantity, ts, book, self._configured).apply(item.quantity,
                                                                                                item.value)
            except ValueError as exc:
                self._rejected_value(batch, message, sensor, exc)
                continue
            batch.count("readings")
            batch.readings.append(Reading(sensor.id, item.quantity, value, ts, sensor.room))

    def _rejected_value(self, batch: Batch, message: RawMessage, sensor: SensorConfig, exc: ValueError) -> None:
        batch.count("rejected")
        self._reject(batch, message, f"sensor {sensor.id}: {exc}", "validate", sensor.id)

    def _device_time_rejected(self, batch: Batch, sensor: SensorConfig, device_ts: int, received_ms: int) -> None:
        """Count a message with an implausible device time (once per message) and log it once per sensor."""
        batch.count("device_time_rejected")
        batch.count(f"sensor.{sensor.id}.device_time_rejected")
        skew_s = (device_ts - received_ms) / 1000
        self.warnings(
            "device_time", sensor.id,
            "sensor %s: device time %s is %s the receive time (%+.0f s; accepted: up to 7 days before, 5 minutes "
            "after); its readings are stamped with the receive time: check the device's clock (NTP). Further "
            "messages like it are counted as device_time_rejected",
            sensor.id, _iso_or_raw(device_ts), "ahead of" if skew_s > 0 else "long before", skew_s,
        )

    def _reject(self, batch: Batch, message: RawMessage, reason: str, stage: str, sensor: str | None = None) -> None:
        if not self.quarantine.keep(batch, message, reason, stage, sensor):
            return
        self.warnings("quarantine", (stage, message.source, sensor or message.topic),
                      "quarantined message from %s topic %s: %s", message.source, shown(message.topic), shown(reason))

    def reconfigure(self, config: Config, sources: Sequence[SourceConfig] | None = None) -> None:
        """Route and decode the messages handled from now on with ``config`` (``archmon run`` on SIGHUP).

        Messages being handled finish with the old routes; receive-time stamping (the last receive time
        per sensor, receipt lookups) carries on, so no reading is stamped twice or lost across a reload.

        Args:
            config: the new configuration.
            sources: its source tables' typed configs (default: validated here).

        Raises:
            ConfigError: the new routes cannot be built (nothing is changed).
        """
        typed = source_configs(config, self._kinds) if sources is None else list(sources)
        router = Router(config, typed)
        steps: dict[str, DecodeStep] = {}
        for source in typed:
            make = self._kinds[source.kind].decoder
            if make is not None:
                steps[source.id] = make(source, config)
        configured = configured_corrections(config.sensors)
        self.config, self.router, self._steps, self._configured = config, router, steps, configured


def _iso_or_raw(ts_ms: int) -> str:
    try:
        return to_iso(ts_ms)
    except (OverflowError, OSError, ValueError):
        return str(ts_ms)


@dataclass(slots=True)
class _Handling:
    """The shared steps offered to a kind's decode step (``collector.source.Handling``), into one batch."""

    pipeline: Pipeline
    batch: Batch
    receipts_of_batch: BatchReceipts
    book: OffsetBook

    @property
    def config(self) -> Config:
        return self.pipeline.config

    @property
    def router(self) -> Router:
        return self.pipeline.router

    @property
    def receipts(self) -> ReceiptBook:
        return self.pipeline.receipts

    @property
    def quarantine(self) -> QuarantineKeeper:
        return self.pipeline.quarantine

    def accept(self, message: RawMessage, sensor: SensorConfig, values: Sequence[DecodedValue]) -> None:
        self.pipeline._accept(message, self.batch, sensor, values, self.receipts_of_batch, self.book)

    def reject(self, message: RawMessage, reason: str, stage: str, sensor: str | None = None) -> None:
        self.pipeline._reject(self.batch, message, reason, stage, sensor)

    def decode(self, message: RawMessage, fmt: str, options: DecodeOptions, sensor: SensorConfig | None
               ) -> Decoded | None:
        return self.pipeline._decode(message, self.batch, fmt, options, sensor)

    def warn_once(self, key: str, fmt: str, *args: object) -> None:
        """``key`` is ``<category>:<rest>`` (``unassigned:<source>:<device topic>``)."""
        self.pipeline.warnings(key.split(":", 1)[0], key, fmt, *args)
