"""What a decoder returns: the device it heard from and the values in canonical units."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archmon.domain import Availability

__all__ = ["DecodeOptions", "Decoded", "DecodedValue"]


@dataclass(frozen=True, slots=True)
class DecodedValue:
    """One value in a payload, already in the quantity's canonical unit (°F converted to °C)."""

    quantity: str
    value: float
    unit: str
    ts_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    """The decoding of one message.

    Attributes:
        device: the device's own name (Zigbee2MQTT friendly name, Tasmota topic, Shelly id, ESPHome node...).
        device_topic: the topic prefix that identifies the device (what a sensor's ``topic`` names).
        values: decoded values (empty for an availability message).
        availability: ``online``/``offline`` for availability/LWT messages, else None.
    """

    device: str
    device_topic: str
    values: tuple[DecodedValue, ...] = ()
    availability: Availability | None = None


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Per-sensor or per-subscription decoding options.

    Attributes:
        device_tz: IANA zone for device timestamps without offset (Tasmota ``Time``).
        temperature_unit: unit assumed for bare temperature numbers (Shelly Gen1, ESPHome): ``C`` or ``F``.
        fields: generic JSON: quantity -> JSON path (``$.a.b`` or ``a.b``); ESPHome: sensor name -> quantity.
        scale: generic JSON: quantity -> multiplier applied before calibration.
        units: generic JSON: quantity -> unit of the payload (``F`` converts to °C).
        ts_field: generic JSON: path of a device timestamp (ISO-8601 or epoch s/ms).
        extra: anything else a decoder needs.
    """

    device_tz: str = "UTC"
    temperature_unit: str = "C"
    fields: dict[str, str] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    ts_field: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
