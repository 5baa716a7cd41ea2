"""ESPHome (MQTT mode): ``<prefix>/sensor/<name>/state`` numbers, ``<prefix>/binary_sensor/<name>/state``
ON/OFF, ``<prefix>/status`` online/offline.

The quantity of a sensor comes from ``options.fields`` (sensor name → quantity), else from its name:
``temp`` → temperature, ``hum`` → humidity, ``battery``, ``door``/``contact`` → door (ON = open),
``smoke``, ``leak``/``water``/``moisture`` → leak, ``lux``/``illuminance``/``light`` → light. A name
matching none of these raises DecodeError naming it. ESPHome publishes ``nan`` for a sensor without a
reading; it passes through for the pipeline to reject. Temperatures are in ``options.temperature_unit``.
"""

from __future__ import annotations

from archmon.errors import DecodeError, NotSensorData
from archmon.quantities import QUANTITIES
from devices.decoded import Decoded, DecodeOptions
from devices.formats._util import make_value, short, temperature, text_payload, to_number, word

__all__ = ["EsphomeDecoder", "infer_quantity"]

# Checked in order: "water_temperature" is a temperature, "battery_humidity" nothing sensible.
_HINTS = (
    ("battery", "battery"),
    ("temp", "temperature"),
    ("hum", "humidity"),
    ("door", "door"),
    ("contact", "door"),
    ("smoke", "smoke"),
    ("leak", "leak"),
    ("water", "leak"),
    ("moisture", "leak"),
    ("lux", "light"),
    ("illuminance", "light"),
    ("light", "light"),
)
_ON_OFF = {"on": 1, "off": 0}


def infer_quantity(name: str) -> str | None:
    """The quantity an ESPHome sensor name suggests, or None."""
    lowered = name.lower()
    for hint, quantity in _HINTS:
        if hint in lowered:
            return quantity
    return None


class EsphomeDecoder:
    """Decoder for ESPHome MQTT state and status topics."""

    name = "esphome"

    def decode(self, topic: str, payload: bytes, options: DecodeOptions) -> Decoded:
        """Decode one ESPHome message (see the module docstring for the rules)."""
        parts = topic.split("/")
        if len(parts) >= 2 and parts[-1] == "status" and all(parts[:-1]):
            prefix = "/".join(parts[:-1])
            state = word(text_payload(payload), {"online": 1, "offline": 0}, "status payload")
            return Decoded(parts[-2], prefix, availability="online" if state else "offline")
        if len(parts) < 4 or parts[-1] != "state" or parts[-3] not in ("sensor", "binary_sensor"):
            raise NotSensorData(f"topic {short(topic)} is not <prefix>/sensor|binary_sensor/<name>/state or /status")
        prefix = "/".join(parts[:-3])
        if not all(parts[:-3]) or not parts[-2]:
            raise DecodeError(f"topic {short(topic)} has an empty level")
        name = parts[-2]
        quantity = self._quantity(name, options)
        text = text_payload(payload)
        if parts[-3] == "binary_sensor":
            number = float(word(text, _ON_OFF, name))
        elif quantity == "temperature":
            number = temperature(text, name, options.temperature_unit)
        else:
            number = to_number(text, name)
        return Decoded(parts[-4], prefix, values=(make_value(quantity, number),))

    @staticmethod
    def _quantity(name: str, options: DecodeOptions) -> str:
        fields = options.fields if isinstance(options.fields, dict) else {}
        configured = fields.get(name)
        if configured is not None:
            if not isinstance(configured, str) or not configured:
                raise DecodeError(f"fields[{name!r}] must name a quantity, got {short(configured)}")
            return configured
        quantity = infer_quantity(name)
        if quantity is None:
            raise NotSensorData(
                f"sensor {short(name)}: cannot tell its quantity from the name; map it in options.fields "
                f"(quantities: {', '.join(QUANTITIES)})"
            )
        return quantity
