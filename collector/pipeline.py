"""The ingest pipeline: raw message → decode → route → validate → calibrate → stamp → store.

``Pipeline.process`` never raises: whatever cannot become a reading is quarantined with its raw
payload, source and reason, and counted. It returns the store writer's future, which resolves when
everything the message produced is durable (the MQTT source acknowledges the message only then).

Redelivered MQTT messages: a QoS 1/2 message whose readings are stamped with the receive time (no
device time) adds a receipt ``(source, packet id, digest, receive time)`` to its batch, stored in the
same transaction. When the broker sends a message again with the DUP flag (its PUBACK never arrived),
the pipeline looks the receipt up and stamps the copy with the first receive time, so its readings
hit their idempotent keys and count as duplicates (``redelivered_restamped``) instead of being
stored a second time.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from archmon.config import Config, SensorConfig
from archmon.domain import RawMessage, Reading
from archmon.errors import DecodeError, NotSensorData
from archmon.quantities import BINARY_QUANTITIES, check_value
from archmon.timeutil import now_ms
from collector.records import (
    AvailabilityRecord,
    Batch,
    MqttReceipt,
    QuarantineRecord,
    UnassignedRecord,
    WriteResult,
    mqtt_messages_counter,
)
from collector.routing import Router
from devices.decoded import Decoded, DecodedValue, DecodeOptions
from devices.formats import get_decoder
from devices.line import LineFormat
from devices.modbus import decode_modbus_payload, get_register_map

__all__ = ["Pipeline", "ReceiptLookup", "message_digest"]

log = logging.getLogger(__name__)

MAX_DEVICE_AGE_MS = 7 * 86_400_000
MAX_DEVICE_SKEW_MS = 5 * 60_000
SWITCH_KINDS = {"door", "smoke", "leak"}
HUMIDITY_OVERSHOOT = 105.0

ReceiptLookup = Callable[[str, int, bytes], "int | None"]
"""``(source, packet id, digest) -> receive time`` of a stored receipt, or None (``SqliteStore.receipt_time``)."""


def message_digest(topic: str, payload: bytes) -> bytes:
    """SHA-256 of the topic, a NUL byte (never part of a topic) and the payload: a receipt's message identity."""
    return hashlib.sha256(topic.encode("utf-8") + b"\0" + payload).digest()


class Pipeline:
    """Turns raw messages into durable readings; see the module docstring.

    Args:
        config: the validated configuration.
        submit: hands a batch to the store writer and returns a future resolved once it is durable.
        clock: current time in UTC epoch ms (injected by tests).
        receipt_lookup: finds the receive time stored for a redelivered MQTT message (see the module
            docstring); None: no lookup, a redelivered message without device time gets a new time.
    """

    def __init__(
        self,
        config: Config,
        submit: Callable[[Batch], Future[WriteResult]],
        *,
        clock: Callable[[], int] = now_ms,
        receipt_lookup: ReceiptLookup | None = None,
    ) -> None:
        self._config = config
        self._submit = submit
        self._clock = clock
        self._receipt_lookup = receipt_lookup
        self.router = Router(config)
        self._lines = {
            s.id: LineFormat(s.line_pattern or "", units=s.line_units, scale=s.line_scale, encoding=s.line_encoding,
                             device_tz=s.device_tz or config.site.timezone)
            for s in config.serial
            if s.protocol == "line"
        }
        self._warned: set[str] = set()
        self._last_receive_ms: dict[str, int] = {}

    def process(self, message: RawMessage) -> Future[WriteResult]:
        """Handle one raw message and submit what it produced; see the module docstring."""
        return self._submit(self.handle(message))

    def process_many(self, messages: Sequence[RawMessage]) -> Future[WriteResult]:
        """Handle several raw messages and submit what they produced as one batch (one future for all)."""
        return self._submit(self.handle_many(messages))

    def handle(self, message: RawMessage) -> Batch:
        """Turn one raw message into a batch (readings, rejects, counters) without storing it."""
        batch = Batch()
        self._handle_into(message, batch)
        return batch

    def handle_many(self, messages: Sequence[RawMessage]) -> Batch:
        """Turn several raw messages into one batch, in order, as if each were handled and the batches merged."""
        batch = Batch()
        for message in messages:
            self._handle_into(message, batch)
        return batch

    def _handle_into(self, message: RawMessage, batch: Batch) -> None:
        batch.count("received")
        try:
            if self.router.is_mqtt(message.source):
                self._mqtt(message, batch)
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

    def _mqtt(self, message: RawMessage, batch: Batch) -> None:
        if message.mid is not None:
            batch.count(mqtt_messages_counter(message.source))
            if message.dup:
                batch.count("redelivered")
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
            if message.mid is None:
                self._accept(message, batch, sensor, decoded.values)
            else:
                self._accept_with_receipt(message, message.mid, batch, sensor, decoded.values)
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
        readings = [
            {"quantity": v.quantity, "value": v.value, "unit": v.unit, "ts_ms": v.ts_ms} for v in decoded.values
        ]
        if decoded.availability:
            readings.append({"availability": decoded.availability})
        batch.unassigned.append(
            UnassignedRecord(
                message.received_ms,
                message.source,
                decoded.device_topic,
                subscription.format,
                message.payload,
                json.dumps(readings, allow_nan=True),
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
            self._accept(message, batch, sensor, _channel_values(sensor, values))

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

    def _accept_with_receipt(
        self, message: RawMessage, mid: int, batch: Batch, sensor: SensorConfig, values: Sequence[DecodedValue]
    ) -> None:
        """``_accept`` for a QoS 1/2 MQTT message: reuse the first receive time of a redelivery, keep a receipt."""
        digest = message_digest(message.topic, message.payload)
        first_ms = self._first_receive_time(message, mid, digest, batch) if message.dup else None
        received_ms = self._distinct_receive_ms(sensor.id, message.received_ms) if first_ms is None else first_ms
        if self._accept(message, batch, sensor, values, received_ms=received_ms):
            if first_ms is not None:
                batch.count("redelivered_restamped")
            batch.receipts.append(MqttReceipt(message.source, mid, digest, received_ms))

    def _first_receive_time(self, message: RawMessage, mid: int, digest: bytes, batch: Batch) -> int | None:
        if self._receipt_lookup is None:
            return None
        try:
            return self._receipt_lookup(message.source, mid, digest)
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

    def _accept(
        self,
        message: RawMessage,
        batch: Batch,
        sensor: SensorConfig,
        values: Sequence[DecodedValue],
        *,
        received_ms: int | None = None,
    ) -> int:
        """Validate, calibrate and stamp ``values``; returns how many readings got the receive time.

        Args:
            received_ms: the receive time to stamp with when the device gave none (default: the message's).
        """
        if not values:
            batch.count("empty")  # well-formed, but nothing archmon stores (e.g. only linkquality)
            return 0
        if received_ms is None:
            received_ms = self._distinct_receive_ms(sensor.id, message.received_ms)
        receive_stamped = 0
        now = self._clock()
        for item in values:
            try:
                raw = item.value
                if item.quantity == "humidity" and 100.0 < raw <= HUMIDITY_OVERSHOOT:
                    batch.count("clamped")  # condensing sensors report a little over 100 %: saturation, not an error
                    raw = 100.0
                value = check_value(item.quantity, raw)
                value = _calibrate(sensor, item.quantity, value)
            except ValueError as exc:
                batch.count("rejected")
                self._reject(batch, message, f"sensor {sensor.id}: {exc}", "validate", sensor.id)
                continue
            ts = self._stamp(item.ts_ms, message.received_ms, now)
            if ts is None:
                if message.retained:
                    batch.count("retained_skipped")
                    continue
                ts = received_ms
                receive_stamped += 1
            batch.count("readings")
            batch.readings.append(Reading(sensor.id, item.quantity, value, ts, sensor.room))
        return receive_stamped

    def _distinct_receive_ms(self, sensor: str, received_ms: int) -> int:
        """The receive time, moved 1 ms past the sensor's previous one if needed: two messages of one sensor
        received in the same millisecond (a backlog delivered in a burst) must not share an idempotency key."""
        last = self._last_receive_ms.get(sensor, 0)
        if received_ms <= last:
            received_ms = last + 1
        self._last_receive_ms[sensor] = received_ms
        return received_ms

    @staticmethod
    def _stamp(device_ts: int | None, received_ms: int, now: int) -> int | None:
        """The device's own time if plausible, else None (the caller uses the receive time)."""
        if device_ts is None:
            return None
        if received_ms - MAX_DEVICE_AGE_MS <= device_ts <= max(received_ms, now) + MAX_DEVICE_SKEW_MS:
            return int(device_ts)
        return None

    def _reject(self, batch: Batch, message: RawMessage, reason: str, stage: str, sensor: str | None = None) -> None:
        batch.count("quarantined")
        batch.quarantine.append(
            QuarantineRecord(message.received_ms, message.source, message.topic, message.payload, reason, stage, sensor)
        )
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
        lines = {
            s.id: LineFormat(s.line_pattern or "", units=s.line_units, scale=s.line_scale, encoding=s.line_encoding,
                             device_tz=s.device_tz or config.site.timezone)
            for s in config.serial
            if s.protocol == "line"
        }
        self._config, self.router, self._lines = config, router, lines


def _reason(exc: BaseException) -> str:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def _calibrate(sensor: SensorConfig, quantity: str, value: float) -> float:
    if quantity in BINARY_QUANTITIES:
        return value
    cal = sensor.calibration.get(quantity)
    if cal is None:
        return value
    corrected = value * cal.scale + cal.offset
    if quantity == "humidity":
        return min(100.0, max(0.0, corrected))  # a corrected hygrometer saturates, it does not exceed 100 %
    return check_value(quantity, corrected)


def _switch_value(kind: str, active: float, invert: bool) -> float:
    """A digital input as door/smoke/leak. A door contact is closed (input 1) while the door is closed, so
    door = 1 - input; a detector's relay closes (input 1) on alarm. ``invert`` is for the opposite wiring."""
    value = 1.0 - active if kind == "door" else active
    return 1.0 - value if invert else value


def _channel_values(sensor: SensorConfig, values: Sequence[DecodedValue]) -> list[DecodedValue]:
    """For a digital-input module, the sensor's channel as its own quantity (door/smoke/leak)."""
    if sensor.channel is None:
        return list(values)
    wanted = f"input{sensor.channel}"
    quantity = sensor.kind if sensor.kind in SWITCH_KINDS else wanted
    invert = bool(sensor.options.get("invert", False))
    out = []
    for item in values:
        if item.quantity == wanted:
            value = _switch_value(quantity, item.value, invert) if item.value in (0.0, 1.0) else item.value
            out.append(DecodedValue(quantity, value, "", item.ts_ms))
    return out
