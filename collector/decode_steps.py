"""Each built-in source kind's decode step: how its raw messages find their sensors and become values.

The pipeline asks the source registry (``SourceKind.decoder``) for one step per configured source and
runs it on that source's messages; the step routes, decodes and hands values or rejects to the
pipeline's shared steps (:class:`collector.source.Handling`: validate, calibrate, stamp, quarantine).

- MQTT: the sensor whose device topic is the longest prefix of the message topic, decoded with its
  ``format``; an availability message; else a source subscription's format (an unassigned device; one
  whose device topic is longer than ``TEXT_MAX_BYTES`` is quarantined instead of listed).
- Modbus: the sensors at the answering address, decoded with their register preset (several for a
  digital-input module, one value each by ``channel``).
- line: the line source's pattern; the sensor it names (a ``sensor`` group) or the port's only one.
"""

from __future__ import annotations

from functools import partial

from archmon.config import Config
from archmon.domain import RawMessage
from archmon.errors import DecodeError
from collector.modbus_config import ModbusSourceConfig
from collector.mqtt_config import MqttSourceConfig
from collector.quarantine import TEXT_MAX_BYTES, unassigned_readings_json
from collector.records import AvailabilityRecord, UnassignedRecord, mqtt_messages_counter
from collector.serial_line_config import LineSourceConfig
from collector.source import DecodeStep, Handling
from collector.values import channel_values
from devices.line import LineFormat
from devices.modbus import decode_modbus_payload, get_register_map

__all__ = ["line_decoder", "modbus_decoder", "mqtt_decoder"]


def mqtt_decoder(source: MqttSourceConfig, config: Config) -> DecodeStep:
    """The decode step of an MQTT source's messages."""
    return _mqtt


def modbus_decoder(source: ModbusSourceConfig, config: Config) -> DecodeStep:
    """The decode step of a Modbus bus's answers (``modbus/<source>/<address>``)."""
    return _modbus


def line_decoder(source: LineSourceConfig, config: Config) -> DecodeStep:
    """The decode step of a line source's lines, with its pattern compiled once.

    Raises:
        ConfigError: the pattern or an option is unusable (the schema checked it already).
    """
    return partial(_line, source.line_format(config.site.timezone))


def _mqtt(handling: Handling, message: RawMessage) -> None:
    batch, router = handling.batch, handling.router
    if message.mid is not None:
        batch.count(mqtt_messages_counter(message.source))
        if message.dup:
            batch.count("redelivered")
        elif message.replayed:
            batch.count("replayed")
    sensor = router.mqtt_sensor(message.source, message.topic)
    if sensor is not None:
        assert sensor.format is not None
        decoded = handling.decode(message, sensor.format, router.options[sensor.id], sensor)
        if decoded is None:
            return
        if decoded.availability is not None:
            batch.count("availability")
            batch.availability.append(AvailabilityRecord(sensor.id, decoded.availability, message.received_ms))
            return
        handling.accept(message, sensor, decoded.values)
        return
    if router.foreign_sensor(message.source, message.topic) is not None:
        batch.count("other_partition")  # another instance's sensor, seen through a wildcard subscription
        return
    subscription = router.subscription(message.source, message.topic)
    if subscription is None:
        handling.reject(message, f"no sensor and no subscription format for topic {message.topic!r}", "route")
        return
    decoded = handling.decode(message, subscription.format, subscription.options, None)
    if decoded is None:
        return
    if len(decoded.device_topic.encode("utf-8")) > TEXT_MAX_BYTES:  # no device has such a topic: not listed
        handling.reject(message, f"device topic of {len(decoded.device_topic.encode('utf-8'))} bytes is too long to "
                        "list as an unassigned device", "route")
        return
    batch.count("unassigned")
    handling.warn_once(
        f"unassigned:{message.source}:{decoded.device_topic}",
        "message from unassigned device %s (%s) on %s: configure a sensor with topic = %r to adopt it",
        decoded.device, subscription.format, message.source, decoded.device_topic,
    )
    batch.unassigned.append(UnassignedRecord(
        message.received_ms, message.source, decoded.device_topic, subscription.format,
        handling.quarantine.unassigned_payload(message.payload),
        unassigned_readings_json(decoded.values, decoded.availability, batch),
    ))


def _modbus(handling: Handling, message: RawMessage) -> None:
    try:
        address = int(message.topic.rsplit("/", 1)[1])
    except (ValueError, IndexError):
        handling.reject(message, f"bad Modbus topic {message.topic!r}", "route")
        return
    sensors = handling.router.bus_sensors(message.source, address)
    if not sensors:
        handling.reject(message, f"no sensor configured at Modbus address {address} on {message.source!r}", "route")
        return
    preset = sensors[0].preset or ""
    try:
        regmap = get_register_map(preset, handling.config.modbus_maps)
        values = decode_modbus_payload(regmap, message.payload)
    except (DecodeError, KeyError) as exc:
        reason = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        handling.reject(message, f"Modbus {preset}: {reason}", "decode", sensors[0].id)
        return
    for sensor in sensors:
        handling.accept(message, sensor, channel_values(sensor, values))


def _line(line_format: LineFormat, handling: Handling, message: RawMessage) -> None:
    sensors = handling.router.port_sensors(message.source)
    if not sensors:
        handling.reject(message, f"no line sensor configured on {message.source!r}", "route")
        return
    try:
        sensor_id, values = line_format.decode(message.payload)
    except DecodeError as exc:
        handling.reject(message, f"line: {exc}", "decode", sensors[0].id if len(sensors) == 1 else None)
        return
    if sensor_id is None and len(sensors) == 1:
        sensor = sensors[0]
    else:
        found = [s for s in sensors if s.id == sensor_id]
        if not found:
            handling.reject(
                message,
                f"line names sensor {sensor_id!r}, not one of {[s.id for s in sensors]} on {message.source!r}",
                "route",
            )
            return
        sensor = found[0]
    handling.accept(message, sensor, values)
