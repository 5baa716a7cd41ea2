"""The ingest pipeline: raw message → decode → route → validate → calibrate → stamp → store.

``Pipeline.process`` never raises: whatever cannot become a reading is quarantined with its raw
payload (bounded, ``collector.quarantine``), source and reason, and counted. It returns the store
writer's future, which resolves when everything the message produced is durable (the MQTT source
acknowledges the message only then).

Stamping: a device's own time is used when plausible (at most 7 days before the receive time, at most 5
minutes ahead); an implausible one is counted ``device_time_rejected`` and logged once per sensor (a
device without NTP), and the reading gets the receive time instead.

Redelivered MQTT messages: a QoS 1/2 message stamped with the receive time leaves a receipt, so a copy
the broker sends again gets the same time and hits its idempotent key (``collector.receipts``).

Handing a message over again (a chunk the store refused, split message by message; an MQTT chunk held
back while the writer was full) gives the same result: its receive-time stamp and quarantine decision
are remembered for as long as the message object lives (``collector.memo``).

Each source kind decodes its own messages: the registry's ``SourceKind.decoder`` makes one decode step
per configured source (``collector.decode_steps`` for the built-in kinds); the pipeline runs it with the
shared steps of :class:`_Handling`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from archmon.config import Config, SensorConfig
from archmon.domain import RawMessage, Reading
from archmon.errors import DecodeError, NotSensorData
from archmon.timeutil import now_ms, to_iso
from collector.memo import MessageMemo
from collector.quarantine import QuarantineKeeper
from collector.receipts import ReceiptBook, ReceiptLookup, message_digest
from collector.records import Batch, MqttReceipt, WriteResult
from collector.routing import Router
from collector.source import DecodeStep, SourceConfig
from collector.sources import SOURCE_KINDS, SourceKind, source_configs
from collector.values import calibrated, checked_value
from devices.decoded import Decoded, DecodedValue, DecodeOptions
from devices.formats import get_decoder

__all__ = ["Pipeline", "ReceiptLookup", "Submit", "message_digest"]

log = logging.getLogger(__name__)

MAX_DEVICE_AGE_MS = 7 * 86_400_000
MAX_DEVICE_SKEW_MS = 5 * 60_000

_Receipts = dict[tuple[str, int], MqttReceipt]  # receipts of the batch being built, by source and packet id


class Submit(Protocol):
    """Hands a batch to the store writer (``StoreWriter.submit``)."""

    def __call__(self, batch: Batch, *, timeout: float | None = None) -> Future[WriteResult]:
        """Returns a future resolved once ``batch`` is durable; ``timeout=0``: raise ``RetryLater`` if full."""
        ...


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
    ) -> None:
        self._submit = submit
        self._clock = clock
        self._kinds = kinds
        self.receipts = ReceiptBook(receipt_lookup)
        self.quarantine = QuarantineKeeper(
            payload_max_bytes=config.storage.quarantine_payload_max_bytes,
            per_source_per_minute=config.storage.quarantine_per_source_per_minute,
        )
        self._warned: set[str] = set()
        self._last_receive_ms: dict[str, int] = {}
        self._stamps: MessageMemo[int] = MessageMemo()
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
        # a plain callable (tests, replay) may not take a timeout
        future = self._submit(batch) if timeout is None else self._submit(batch, timeout=timeout)  # type: ignore[call-arg]
        self.receipts.hold(batch.receipts, future)
        return future

    def handle(self, message: RawMessage) -> Batch:
        """Turn one raw message into a batch (readings, rejects, counters) without storing it."""
        return self.handle_many([message])

    def handle_many(self, messages: Sequence[RawMessage]) -> Batch:
        """Turn several raw messages into one batch, in order, as if each were handled and the batches merged."""
        handling = _Handling(self, Batch(), {})
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
            log.exception("pipeline error on %s %s", message.source, message.topic)
            self._reject(handling.batch, message, f"internal error: {type(exc).__name__}: {exc}", "internal")

    # -- shared steps ----------------------------------------------------------------------------

    def _decode(
        self, message: RawMessage, batch: Batch, fmt: str, options: DecodeOptions, sensor: SensorConfig | None
    ) -> Decoded | None:
        try:
            return get_decoder(fmt).decode(message.topic, message.payload, options)
        except NotSensorData as exc:
            batch.count("ignored")  # routine status/command/diagnostic traffic: counted, not an error
            key = f"ignored:{message.source}:{sensor.id if sensor else message.topic}"
            if key not in self._warned and len(self._warned) < 10_000:
                self._warned.add(key)
                log.info("ignoring non-measurement messages like %s on %s: %s", message.topic, message.source, exc)
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
        receipts: _Receipts | None = None,
    ) -> None:
        """Validate, calibrate and stamp ``values``; a QoS 1/2 MQTT message stamped with its receive time
        reuses the first copy's time (``collector.receipts``) and leaves a receipt in ``receipts``."""
        if not values:
            batch.count("empty")  # well-formed, but nothing archmon stores (e.g. only linkquality)
            return
        now = self._clock()
        accepted: list[tuple[str, float, int | None]] = []
        for item in values:
            try:
                value = calibrated(sensor, item.quantity, checked_value(item.quantity, item.value, batch))
            except ValueError as exc:
                batch.count("rejected")
                self._reject(batch, message, f"sensor {sensor.id}: {exc}", "validate", sensor.id)
                continue
            accepted.append((item.quantity, value, self._stamp(sensor, item.ts_ms, message.received_ms, now, batch)))
        received_ms: int | None = None
        for quantity, value, ts in accepted:
            if ts is None:
                if message.retained:
                    batch.count("retained_skipped")
                    continue
                if received_ms is None:
                    received_ms = self._receive_time(message, batch, sensor, receipts)
                ts = received_ms
            batch.count("readings")
            batch.readings.append(Reading(sensor.id, quantity, value, ts, sensor.room))

    def _receive_time(
        self, message: RawMessage, batch: Batch, sensor: SensorConfig, receipts: _Receipts | None
    ) -> int:
        """The time to stamp readings without device time with; for QoS 1/2 MQTT, the first copy's."""
        if message.mid is None or receipts is None:
            return self._distinct_receive_ms(message, sensor.id)
        source, mid = message.source, message.mid
        digest = message_digest(message.topic, message.payload)
        first_ms: int | None = None
        if message.dup or (message.replayed and self.receipts.trusts_replays(source)):
            first_ms = self._first_receive_time(message, mid, digest, batch, receipts)
            if first_ms is not None:
                batch.count("redelivered_restamped")
                if not message.dup:
                    batch.count("replayed_restamped")
            elif not message.dup:
                self.receipts.distrust_replays(source)  # the rest of this run is new to archmon
        received_ms = self._distinct_receive_ms(message, sensor.id) if first_ms is None else first_ms
        receipt = MqttReceipt(source, mid, digest, received_ms)
        receipts[(source, mid)] = receipt
        batch.receipts.append(receipt)
        return received_ms

    def _first_receive_time(
        self, message: RawMessage, mid: int, digest: bytes, batch: Batch, receipts: _Receipts
    ) -> int | None:
        earlier = receipts.get((message.source, mid))  # a copy earlier in the same batch
        if earlier is not None and earlier.digest == digest:
            return earlier.received_ms
        try:
            return self.receipts.find(message.source, mid, digest)
        except Exception as exc:  # a failed lookup costs at worst a duplicate, never the message
            batch.count("receipt_lookup_errors")
            self._warn_once(
                f"receipt:{message.source}",
                "cannot look up the receipt of redelivered message %d on %s (%s: %s); stamped with the receive "
                "time, so it may be stored twice",
                mid,
                message.source,
                type(exc).__name__,
                exc,
            )
            return None

    def _distinct_receive_ms(self, message: RawMessage, sensor: str) -> int:
        """The receive time, moved 1 ms past the sensor's previous one if needed: two messages of one sensor
        received in the same millisecond (a backlog delivered in a burst) must not share an idempotency key.

        The same message handed over again gets the stamp it got the first time (``collector.memo``).
        """

        def distinct() -> int:
            received_ms = message.received_ms
            last = self._last_receive_ms.get(sensor, 0)
            if received_ms <= last:
                received_ms = last + 1
            self._last_receive_ms[sensor] = received_ms
            return received_ms

        return self._stamps.get(message, sensor, distinct)

    def _stamp(
        self, sensor: SensorConfig, device_ts: int | None, received_ms: int, now: int, batch: Batch
    ) -> int | None:
        """The device's own time if plausible, else None (the caller uses the receive time).

        An implausible device time is counted (``device_time_rejected``, per sensor
        ``sensor.<id>.device_time_rejected``) and logged once per sensor: its clock needs fixing.
        """
        if device_ts is None:
            return None
        if received_ms - MAX_DEVICE_AGE_MS <= device_ts <= max(received_ms, now) + MAX_DEVICE_SKEW_MS:
            return int(device_ts)
        batch.count("device_time_rejected")
        batch.count(f"sensor.{sensor.id}.device_time_rejected")
        skew_s = (device_ts - received_ms) / 1000
        self._warn_once(
            f"device_time:{sensor.id}",
            "sensor %s: device time %s is %s the receive time (%+.0f s; accepted: up to 7 days before, 5 minutes "
            "after); its readings are stamped with the receive time: check the device's clock (NTP). Further "
            "ones are counted as device_time_rejected",
            sensor.id,
            _iso_or_raw(device_ts),
            "ahead of" if skew_s > 0 else "long before",
            skew_s,
        )
        return None

    def _reject(self, batch: Batch, message: RawMessage, reason: str, stage: str, sensor: str | None = None) -> None:
        if not self.quarantine.keep(batch, message, reason, stage, sensor):
            return
        self._warn_once(
            f"{stage}:{message.source}:{sensor or message.topic}",
            "quarantined message from %s topic %s: %s",
            message.source,
            message.topic,
            reason,
        )

    def _warn_once(self, key: str, fmt: str, *args: object) -> None:
        if key in self._warned:
            log.debug(fmt, *args)
            return
        if len(self._warned) < 10_000:
            self._warned.add(key)
        log.warning(fmt, *args)

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
        self.config, self.router, self._steps = config, router, steps


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
    receipts_of_batch: _Receipts

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
        self.pipeline._accept(message, self.batch, sensor, values, self.receipts_of_batch)

    def reject(self, message: RawMessage, reason: str, stage: str, sensor: str | None = None) -> None:
        self.pipeline._reject(self.batch, message, reason, stage, sensor)

    def decode(self, message: RawMessage, fmt: str, options: DecodeOptions, sensor: SensorConfig | None
               ) -> Decoded | None:
        return self.pipeline._decode(message, self.batch, fmt, options, sensor)

    def warn_once(self, key: str, fmt: str, *args: object) -> None:
        self.pipeline._warn_once(key, fmt, *args)
