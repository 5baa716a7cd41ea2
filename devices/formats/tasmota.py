"""Tasmota: ``tele/<topic>/SENSOR`` JSON, ``tele/<topic>/LWT`` Online/Offline.

``Time`` is the device's local time without zone, read in ``options.device_tz``. ``TempUnit: "F"``
converts. Sensor blocks are the top-level objects with ``Temperature`` and/or ``Humidity`` (AM2301,
SHT3X, BME280, SI7021, DHT11, DS18B20, DS18B20-1...); the chip's own ``ESP32``/``ESP8266`` block is
never a room reading.

Several blocks: ``options.extra["block"]`` names the one to read (e.g. ``DS18B20-2``). Without it the
first block in payload order is read, both its temperature and humidity, and a warning naming the
ignored blocks is logged once per device. A ``STATE``/``RESULT``/``INFO`` message raises DecodeError
(not a sensor message).
"""

from __future__ import annotations

import logging
from typing import Any

from archmon.errors import DecodeError, NotSensorData
from devices.decoded import Decoded, DecodedValue, DecodeOptions
from devices.formats._util import (
    iso_ts,
    load_object,
    make_value,
    short,
    temperature,
    text_payload,
    to_number,
    zone,
)

__all__ = ["TasmotaDecoder"]

logger = logging.getLogger(__name__)

_CHIP_BLOCKS = ("ESP32", "ESP8266")
_WARNED_MAX = 10_000


class TasmotaDecoder:
    """Decoder for Tasmota telemetry (``SENSOR``) and LWT messages."""

    name = "tasmota"

    def __init__(self) -> None:
        self._warned: set[str] = set()

    def decode(self, topic: str, payload: bytes, options: DecodeOptions) -> Decoded:
        """Decode one Tasmota message (see the module docstring for the rules)."""
        prefix, _, kind = topic.rpartition("/")
        if not prefix or prefix.endswith("/") or "/" not in prefix:
            raise DecodeError(f"topic {short(topic)} is not tele/<topic>/SENSOR or tele/<topic>/LWT")
        device = prefix.rsplit("/", 1)[-1]
        if kind == "LWT":
            text = text_payload(payload).lower()
            if text not in ("online", "offline"):
                raise DecodeError(f"LWT payload {short(text)} is not Online/Offline")
            return Decoded(device, prefix, availability="online" if text == "online" else "offline")
        if kind != "SENSOR":
            raise NotSensorData(f"{short(kind)} message, not a sensor message (expected SENSOR or LWT)")
        data = load_object(payload)
        return Decoded(device, prefix, values=self._values(data, prefix, options))

    def _values(self, data: dict[str, Any], prefix: str, options: DecodeOptions) -> tuple[DecodedValue, ...]:
        ts_ms = None
        if data.get("Time") is not None:
            ts_ms = iso_ts(data["Time"], "Time", zone(options.device_tz))
        unit = data.get("TempUnit", "C")
        blocks = {
            key: block
            for key, block in data.items()
            if isinstance(block, dict) and key not in _CHIP_BLOCKS and ("Temperature" in block or "Humidity" in block)
        }
        wanted = options.extra.get("block") if isinstance(options.extra, dict) else None
        if wanted is not None:
            if not isinstance(wanted, str) or wanted not in blocks:
                raise DecodeError(f"block {short(wanted)} not in payload; sensor blocks: {sorted(blocks)}")
            name = wanted
        elif blocks:
            name = next(iter(blocks))
            if len(blocks) > 1:
                self._warn_once(prefix, name, list(blocks))
        else:
            return ()
        block = blocks[name]
        values: list[DecodedValue] = []
        if block.get("Temperature") is not None:
            celsius = temperature(block["Temperature"], f"{name}.Temperature", unit)
            values.append(make_value("temperature", celsius, ts_ms))
        if block.get("Humidity") is not None:
            values.append(make_value("humidity", to_number(block["Humidity"], f"{name}.Humidity"), ts_ms))
        return tuple(values)

    def _warn_once(self, prefix: str, chosen: str, names: list[str]) -> None:
        if prefix in self._warned or len(self._warned) >= _WARNED_MAX:
            return
        self._warned.add(prefix)
        logger.warning(
            "tasmota %s: several sensor blocks %s, reading %s; set options.block to choose",
            prefix,
            names,
            chosen,
        )
