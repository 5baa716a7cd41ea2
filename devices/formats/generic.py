"""Generic JSON (``json``): any topic, values found by JSON path.

``device_topic`` is the whole topic; ``device`` is its last level.

``options.fields`` maps quantity → JSON path (``$``, ``$.a.b``, ``a.b``, ``a[0].b``, ``$['odd key']``);
paths not present in a payload are skipped, but a payload giving no value at all is an error. Without
``fields``, top-level keys that are quantity names or common aliases are read (``temp``, ``t``, ``hum``,
``rh``, ``h``, ``lux``...; case-insensitive). Values may be numbers or numeric strings, booleans only
for binary quantities. Then ``options.scale`` multiplies and ``options.units`` converts (``F`` → °C).
``options.ts_field`` is the path of the device time (ISO-8601, or epoch seconds or milliseconds).
"""

from __future__ import annotations

import re
from typing import Any

from archmon.errors import DecodeError
from archmon.quantities import BINARY_QUANTITIES
from devices.decoded import Decoded, DecodedValue, DecodeOptions
from devices.formats._util import any_ts, convert_unit, load_json, make_value, short, to_number, zone

__all__ = ["ALIASES", "GenericJsonDecoder", "json_path"]

ALIASES: dict[str, str] = {
    "temperature": "temperature",
    "temp": "temperature",
    "t": "temperature",
    "humidity": "humidity",
    "hum": "humidity",
    "rh": "humidity",
    "h": "humidity",
    "light": "light",
    "lux": "light",
    "illuminance": "light",
    "battery": "battery",
    "bat": "battery",
    "batt": "battery",
    "smoke": "smoke",
    "door": "door",
    "leak": "leak",
    "water_leak": "leak",
    "uv": "uv",
}
_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\[(['\"])(.*?)\3\]")


def json_path(data: Any, path: str) -> Any:
    """The value at ``path`` in ``data`` (which may be JSON ``null``, returned as None).

    Raises:
        DecodeError: the path itself is malformed.
        KeyError: the path is well formed but not present in ``data``.
    """
    text = path.strip()
    text = text[1:] if text.startswith("$") else text
    if text and not text.startswith((".", "[")):
        text = "." + text
    position = 0
    node = data
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            raise DecodeError(f"JSON path {short(path)} is malformed at {short(text[position:])}")
        position = match.end()
        key = match.group(1) if match.group(1) is not None else match.group(4)
        if key is not None:
            if not isinstance(node, dict) or key not in node:
                raise KeyError(path)
            node = node[key]
        else:
            index = int(match.group(2))
            if not isinstance(node, list) or index >= len(node):
                raise KeyError(path)
            node = node[index]
    return node


class GenericJsonDecoder:
    """Decoder for JSON payloads described by options (paths, scale, units, timestamp field)."""

    name = "json"

    def decode(self, topic: str, payload: bytes, options: DecodeOptions) -> Decoded:
        """Decode one generic JSON message (see the module docstring for the rules)."""
        data = load_json(payload)
        fields = options.fields if isinstance(options.fields, dict) else {}
        found = _by_paths(data, fields) if fields else _by_aliases(data)
        if not found:
            wanted = sorted(fields) if fields else "a known quantity or alias as top-level key"
            raise DecodeError(f"no value found in payload (looked for {wanted})")
        ts_ms = _timestamp(data, options)
        values: list[DecodedValue] = []
        for quantity, raw in found:
            values.append(make_value(quantity, _convert(quantity, raw, options), ts_ms))
        return Decoded(topic.rsplit("/", 1)[-1] or topic, topic, values=tuple(values))


def _by_paths(data: Any, fields: dict[Any, Any]) -> list[tuple[str, Any]]:
    found = []
    for quantity, path in fields.items():
        if not isinstance(quantity, str) or not isinstance(path, str):
            raise DecodeError(f"fields must map quantities to JSON paths, got {short(quantity)}: {short(path)}")
        try:
            raw = json_path(data, path)
        except KeyError:
            continue
        if raw is not None:
            found.append((quantity, raw))
    return found


def _by_aliases(data: Any) -> list[tuple[str, Any]]:
    if not isinstance(data, dict):
        raise DecodeError(f"payload JSON is a {type(data).__name__}; without options.fields it must be an object")
    found: dict[str, Any] = {}
    for key, raw in data.items():
        quantity = ALIASES.get(key.lower()) if isinstance(key, str) else None
        if quantity is not None and quantity not in found and raw is not None:
            found[quantity] = raw
    return list(found.items())


def _convert(quantity: str, raw: Any, options: DecodeOptions) -> float:
    binary = isinstance(raw, bool) and quantity in BINARY_QUANTITIES
    number = float(raw) if binary else to_number(raw, quantity)
    scale = options.scale.get(quantity) if isinstance(options.scale, dict) else None
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, int | float):
            raise DecodeError(f"scale for {quantity!r} must be a number, got {short(scale)}")
        number *= scale
    unit = options.units.get(quantity) if isinstance(options.units, dict) else None
    if unit is not None and quantity == "temperature":
        number = convert_unit(number, unit, quantity)
    return number


def _timestamp(data: Any, options: DecodeOptions) -> int | None:
    if options.ts_field is None:
        return None
    if not isinstance(options.ts_field, str):
        raise DecodeError(f"ts_field must be a JSON path, got {short(options.ts_field)}")
    try:
        raw = json_path(data, options.ts_field)
    except KeyError:
        return None
    return None if raw is None else any_ts(raw, options.ts_field, zone(options.device_tz))
