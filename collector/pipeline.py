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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Protocol

from archmon.config import Config, SensorConfig
from archmon.domain import RawMessage, Reading
from archmon.errors import DecodeError, NotSensorData
from archmon.timeutil import now_ms, to_iso
from collector.quarantine import QuarantineKeeper, unassigned_readings_json
from collector.receipts import ReceiptBook, ReceiptLookup, message_digest
from collector.records import (
    AvailabilityRecord,
    Batch,
    MqttReceipt,
    UnassignedRecord,
    WriteResult,
    mqtt_messages_counter,
)
from collector.routing import Router
from collector.serial_line_config import LineSourceConfig
from collector.sources import configs_of
from collector.values import calibrated, channel_values, checked_value
from devices.decoded import Decoded, DecodedValue, DecodeOptions
from devices.formats import get_decoder
from devices.line import LineFormat
from devices.modbus import decode_modbus_payload, get_register_map

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
    """

    def __init__(
        self,
        config: Config,
        submit: Submit | Callable[[Batch], Future[WriteResult]],
        *,
        clock: Callable[[], int] = now_ms,
        receipt_lookup: ReceiptLookup | None = None,
    ) -> None:
        self._config = config
        self._submit = submit
        self._clock = clock
        self.receipts = ReceiptBook(receipt_lookup)
        self.quarantine = QuarantineKeeper(
            payload_max_bytes=config.storage.quarantine_payload_max_bytes,
            per_source_per_minute=config.storage.quarantine_per_source_per_minute,
        )
        self.router = Router(config)
        self._lines = _line_formats(config)
        self._warned: set[str] = set()
        self._last_receive_ms: dict[str, int] = {}

    def process(self, message: RawMessage) -> Future[WriteResult]:
        """Handle one raw message and submit what it produced; see the module docstring."""
        return self.process_many([message])

    def process_many(self, messages: Sequence[RawMessage], *, timeout: float | None = None) -> Future[WriteResult]:
        """Handle several raw messages and submit what they produced as one batch (one future for all).

        Args:
            timeout: longest wait for room in the store writer's queue (None: as long as needed; 0: never
                wait, what the MQTT source needs: its network thread must keep serving the connection).

        Raises:
            RetryLater: the writer's queue stayed full for ``timeout`` seconds; nothing was submitted, and the
                same messages may be handed over again later.
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
        batch = Batch()
        receipts: _Receipts = {}
        for message in messages:
            self._handle_into(message, batch, receipts)
        return batch

    def _handle_into(self, message: RawMessage, batch: Batch, receipts: _Receipts) -> None:
        batch.count("received")
        try:
            if self.router.is_mqtt(message.source):
                self._mqtt(message, batch, receipts)
            elif message.topic.startswith("modbus/"):
                self._modbus(message, batch)
            elif message.topic.startswith("line/"):
                self._line(message, batch)
            else:
                self._reject(batch, message, f"unknown source {message.source!r}", "route")
        except Exception as exc:  # a bug must cost one message, never the collector
            log.exception("pipeline error on %s %s", message.source, message.topic)
            self._reject(batch, message, f"internal error: {type(exc).__name__}: {exc}", "internal")

    # -- per source kind -------------------------------------------------------------------------

    def _mqtt(self, message: RawMessage, batch: Batch, receipts: _Receipts) -> None:
        if message.mid is not None:
            batch.count(mqtt_messages_counter(message.source))
            if message.dup:
                batch.count("redelivered")
            elif message.replayed:
                batch.count("replayed")
            else:
                self.receipts.new_message(message.source)
        sensor = self.router.mqtt_sensor(message.source, message.topic)
        if sensor is not None:
            assert sensor.format is not None
            decoded = self._decode(message, batch, sensor.format, self.router.options[sensor.id], sensor)
            if decoded is None:
                return
            if decoded.availability is not None:
                batch.count("availability")
                batch.availability.append(AvailabilityRecord(sensor.id, decoded.availability, message.received_ms))
                return
            self._accept(message, batch, sensor, decoded.values, receipts)
            return
        subscription = self.router.subscription(message.source, message.topic)
        if subscription is None:
            self._reject(batch, message, f"no sensor and no subscription format for topic {message.topic!r}", "route")
            return
        decoded = self._decode(message, batch, subscription.format, subscription.options, None)
        if decoded is None:
            return
        batch.count("unassigned")
        self._warn_once(
            f"unassigned:{message.source}:{decoded.device_topic}",
            "message from unassigned device %s (%s) on %s: configure a sensor with topic = %r to adopt it",
            decoded.device,
            subscription.format,
            message.source,
            decoded.device_topic,
        )
        batch.unassigned.append(
            UnassignedRecord(
                message.received_ms,
                message.source,
                decoded.device_topic,
                subscription.format,
                self.quarantine.bounded(message.payload),
                unassigned_readings_json(decoded.values, decoded.availability, batch),
            )
        )

    def _modbus(self, message: RawMessage, batch: Batch) -> None:
        try:
            address = int(message.topic.rsplit("/", 1)[1])
        except ValueError:
            self._reject(batch, message, f"bad Modbus topic {message.topic!r}", "route")
            return
        sensors = self.router.bus_sensors(message.source, address)
        if not sensors:
            self._reject(
                batch, message, f"no sensor configured at Modbus address {address} on {message.source!r}", "route"
            )
            return
        preset = sensors[0].preset or ""
        try:
            regmap = get_register_map(preset, self._config.modbus_maps)
            values = decode_modbus_payload(regmap, message.payload)
        except (DecodeError, KeyError) as exc:
            self._reject(batch, message, f"Modbus {preset}: {_reason(exc)}", "decode", sensors[0].id)
            return
        for sensor in sensors:
            self._accept(message, batch, sensor, channel_values(sensor, values))

    def _line(self, message: RawMessage, batch: Batch) -> None:
        line_format = self._lines.get(message.source)
        sensors = self.router.port_sensors(message.source)
        if line_format is None or not sensors:
            self._reject(batch, message, f"no line sensor configured on {message.source!r}", "route")
            return
        try:
            sensor_id, values = line_format.decode(message.payload)
        except DecodeError as exc:
            self._reject(batch, message, f"line: {exc}", "decode", sensors[0].id if len(sensors) == 1 else None)
            return
        if sensor_id is None and len(sensors) == 1:
            sensor = sensors[0]
        else:
            found = [s for s in sensors if s.id == sensor_id]
            if not found:
                self._reject(
                    batch,
                    message,
                    f"line names sensor {sensor_id!r}, not one of {[s.id for s in sensors]} on {message.source!r}",
                    "route",
                )
                return
            sensor = found[0]
        self._accept(message, batch, sensor, values)

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
            return self._distinct_receive_ms(sensor.id, message.received_ms)
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
        received_ms = self._distinct_receive_ms(sensor.id, message.received_ms) if first_ms is None else first_ms
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

    def _distinct_receive_ms(self, sensor: str, received_ms: int) -> int:
        """The receive time, moved 1 ms past the sensor's previous one if needed: two messages of one sensor
        received in the same millisecond (a backlog delivered in a burst) must not share an idempotency key."""
        last = self._last_receive_ms.get(sensor, 0)
        if received_ms <= last:
            received_ms = last + 1
        self._last_receive_ms[sensor] = received_ms
        return received_ms

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

    def reconfigure(self, config: Config) -> None:
        """Route and decode the messages handled from now on with ``config`` (``archmon run`` on SIGHUP).

        Messages being handled finish with the old routes; receive-time stamping (the last receive time
        per sensor, receipt lookups) carries on, so no reading is stamped twice or lost across a reload.

        Raises:
            ConfigError: the new routes cannot be built (nothing is changed).
        """
        router = Router(config)
        self._config, self.router, self._lines = config, router, _line_formats(config)


def _line_formats(config: Config) -> dict[str, LineFormat]:
    """The line format of each serial-line source, by source id."""
    return {s.id: s.line_format(config.site.timezone) for s in configs_of(config, LineSourceConfig)}


def _iso_or_raw(ts_ms: int) -> str:
    try:
        return to_iso(ts_ms)
    except (OverflowError, OSError, ValueError):
        return str(ts_ms)


def _reason(exc: BaseException) -> str:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
