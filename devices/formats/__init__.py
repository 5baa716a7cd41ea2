"""MQTT payload decoders, one module per device ecosystem, in one explicit registry.

``DECODERS`` maps a format name (what a sensor's or subscription's ``format`` says) to its decoder;
``decode_to_json`` is what ``archmon decode`` prints and what the case-folder tests compare.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archmon.errors import ConfigError, DecodeError
from archmon.timeutil import to_iso
from devices.decoded import Decoded, DecodeOptions
from devices.formats.base import Decoder
from devices.formats.esphome import EsphomeDecoder
from devices.formats.generic import GenericJsonDecoder
from devices.formats.shelly import ShellyGen1Decoder, ShellyGen2Decoder
from devices.formats.tasmota import TasmotaDecoder
from devices.formats.zigbee2mqtt import Zigbee2MqttDecoder

__all__ = ["DECODERS", "Decoder", "decode_to_json", "decoded_to_json", "get_decoder", "make_options"]

DECODERS: dict[str, Decoder] = {
    "zigbee2mqtt": Zigbee2MqttDecoder(),
    "tasmota": TasmotaDecoder(),
    "shelly-gen1": ShellyGen1Decoder(),
    "shelly-gen2": ShellyGen2Decoder(),
    "esphome": EsphomeDecoder(),
    "json": GenericJsonDecoder(),
}

_OPTION_NAMES = frozenset(DecodeOptions.__dataclass_fields__)


def get_decoder(name: str) -> Decoder:
    """The decoder registered under ``name``.

    Raises:
        KeyError: unknown format; the message lists the known names.
    """
    try:
        return DECODERS[name]
    except KeyError:
        raise KeyError(f"unknown payload format {name!r}; known: {', '.join(sorted(DECODERS))}") from None


def make_options(options: DecodeOptions | Mapping[str, Any] | None = None) -> DecodeOptions:
    """DecodeOptions from a mapping (as in a config file or ``options.json``).

    Keys that are not DecodeOptions fields go to ``extra`` (so ``{"base_topic": "z2m"}`` works).

    Raises:
        ConfigError: a field has the wrong type.
    """
    if options is None:
        return DecodeOptions()
    if isinstance(options, DecodeOptions):
        return options
    known = {key: value for key, value in options.items() if key in _OPTION_NAMES}
    extra = {key: value for key, value in options.items() if key not in _OPTION_NAMES}
    nested = known.pop("extra", None) or {}
    if not isinstance(nested, Mapping):
        raise ConfigError(f"decode options: extra must be a table/object, got {nested!r}")
    extra.update(nested)
    for key in ("fields", "scale", "units"):
        if key in known and not isinstance(known[key], Mapping):
            raise ConfigError(f"decode options: {key} must be a table/object, got {known[key]!r}")
        if key in known:
            known[key] = dict(known[key])
    for key in ("device_tz", "temperature_unit"):
        if key in known and not isinstance(known[key], str):
            raise ConfigError(f"decode options: {key} must be a string, got {known[key]!r}")
    return DecodeOptions(**known, extra=extra)


def decoded_to_json(decoded: Decoded) -> list[dict[str, Any]]:
    """One ``archmon decode`` JSON line (as a dict) per availability state and value in ``decoded``."""
    lines: list[dict[str, Any]] = []
    if decoded.availability is not None:
        lines.append({"device": decoded.device, "availability": decoded.availability})
    for value in decoded.values:
        lines.append(
            {
                "device": decoded.device,
                "quantity": value.quantity,
                "value": value.value,
                "unit": value.unit,
                "ts": None if value.ts_ms is None else to_iso(value.ts_ms),
            }
        )
    return lines


def decode_to_json(
    format: str,
    topic: str,
    payload: bytes,
    options: DecodeOptions | Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Decode one message into ``archmon decode`` JSON dicts.

    Returns:
        ``{"device","quantity","value","unit","ts"}`` per value (ts ISO-8601 UTC with ms and ``Z``, or
        None), ``{"device","availability"}`` for availability messages, or ``[{"error": reason}]``
        when the message does not decode.

    Raises:
        KeyError: unknown format.
        ConfigError: malformed options mapping.
    """
    decoder = get_decoder(format)
    try:
        decoded = decoder.decode(topic, payload, make_options(options))
    except DecodeError as exc:
        return [{"error": str(exc)}]
    return decoded_to_json(decoded)
