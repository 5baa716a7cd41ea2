"""Zigbee2MQTT: ``<base>/<friendly_name>`` JSON state and ``<base>/<friendly_name>/availability``.

The base topic is ``options.extra["base_topic"]`` (default ``zigbee2mqtt``); friendly names may
contain ``/``. ``contact: true`` means the door is CLOSED (door 0). ``last_seen`` (ISO-8601 or epoch
ms) is the device's own time of the message. ``<base>/bridge/...`` is the bridge, not a device.
"""

from __future__ import annotations

from typing import Any

from archmon.errors import DecodeError, NotSensorData
from devices.decoded import Decoded, DecodedValue, DecodeOptions
from devices.formats._util import (
    epoch_ts,
    extra_str,
    iso_ts,
    load_json,
    make_value,
    short,
    text_payload,
    to_bool,
    to_number,
)

__all__ = ["Zigbee2MqttDecoder"]

_NUMERIC = (("temperature", "temperature"), ("humidity", "humidity"), ("battery", "battery"))
# (key, quantity, value when the key is true)
_BINARY = (("contact", "door", 0.0), ("smoke", "smoke", 1.0), ("water_leak", "leak", 1.0))
_COMMANDS = ("set", "get")


class Zigbee2MqttDecoder:
    """Decoder for Zigbee2MQTT device state and availability messages."""

    name = "zigbee2mqtt"

    def decode(self, topic: str, payload: bytes, options: DecodeOptions) -> Decoded:
        """Decode one Zigbee2MQTT message (see the module docstring for the rules)."""
        base = extra_str(options.extra, "base_topic", "zigbee2mqtt").rstrip("/")
        if not topic.startswith(base + "/") or len(topic) == len(base) + 1:
            raise DecodeError(f"topic {short(topic)} is not under the base topic {base!r}")
        rest = topic[len(base) + 1 :]
        if rest == "bridge" or rest.startswith("bridge/"):
            raise NotSensorData("bridge message, not a device")
        if rest.endswith("/availability"):
            name = rest[: -len("/availability")]
            return Decoded(name, f"{base}/{name}", availability=_availability(payload))
        if any(segment in _COMMANDS for segment in rest.split("/")[1:]):
            raise NotSensorData(f"command topic {short(topic)}, not a device state")
        data = load_json(payload)
        if not isinstance(data, dict):
            raise DecodeError(f"state payload is a {type(data).__name__}, expected a JSON object")
        return Decoded(rest, topic, values=_values(data))


def _availability(payload: bytes) -> str:
    text = text_payload(payload)
    state: Any = text
    if text.startswith("{"):
        data = load_json(payload)
        state = data.get("state") if isinstance(data, dict) else None
    if isinstance(state, str) and state.strip().lower() in ("online", "offline"):
        return state.strip().lower()
    raise DecodeError(f"availability payload {short(text)} is not online/offline")


def _values(data: dict[str, Any]) -> tuple[DecodedValue, ...]:
    ts_ms = _last_seen(data.get("last_seen"))
    values: list[DecodedValue] = []
    for key, quantity in _NUMERIC:
        if data.get(key) is not None:
            values.append(make_value(quantity, to_number(data[key], key), ts_ms))
    lux_key = "illuminance_lux" if data.get("illuminance_lux") is not None else "illuminance"
    if data.get(lux_key) is not None:
        values.append(make_value("light", to_number(data[lux_key], lux_key), ts_ms))
    for key, quantity, when_true in _BINARY:
        if data.get(key) is not None:
            flag = to_bool(data[key], key)
            values.append(make_value(quantity, when_true if flag else 1.0 - when_true, ts_ms))
    return tuple(values)


def _last_seen(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        return iso_ts(value, "last_seen")
    return epoch_ts(value, "last_seen", unit="ms")
