"""Parsing helpers shared by the decoders; every failure becomes a one-line DecodeError."""

from __future__ import annotations

import json
import math
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from archmon.errors import DecodeError
from archmon.quantities import QUANTITIES, fahrenheit_to_celsius
from archmon.timeutil import parse_iso_ms
from devices.decoded import DecodedValue

# Epoch ms of 9999-12-31T23:59:59.999Z: later timestamps cannot be shown as ISO-8601.
MAX_TS_MS = 253_402_300_799_999
# Epoch values at or above this are milliseconds, below are seconds (1e11 s is the year 5138).
_MS_THRESHOLD = 100_000_000_000
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_MAX_TEXT = 64


def short(value: object) -> str:
    """``repr`` of a value, cut to a length fit for a one-line message."""
    text = repr(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def label(what: object) -> str:
    """A name (key, quantity, topic level) fit for a one-line message: control characters escaped, cut short."""
    text = what if isinstance(what, str) else repr(what)
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def text_payload(payload: bytes) -> str:
    """The payload as UTF-8 text, stripped of surrounding whitespace."""
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise DecodeError(f"payload is not UTF-8 text (bad byte at offset {exc.start})") from None


def load_json(payload: bytes) -> Any:
    """Parse a JSON payload (any JSON value)."""
    text = text_payload(payload)
    if not text:
        raise DecodeError("empty payload, expected JSON")
    try:
        return json.loads(text)
    except RecursionError:
        raise DecodeError("payload JSON is nested too deeply") from None
    except ValueError as exc:
        raise DecodeError(f"payload is not JSON: {(str(exc).splitlines() or [type(exc).__name__])[0][:80]}") from None


def load_object(payload: bytes) -> dict[str, Any]:
    """Parse a JSON payload that must be an object."""
    data = load_json(payload)
    if not isinstance(data, dict):
        raise DecodeError(f"payload JSON is a {type(data).__name__}, expected an object")
    return data


def to_number(value: object, what: str) -> float:
    """A JSON number or a numeric string as a float (NaN and inf pass through for the pipeline to reject)."""
    if isinstance(value, bool):
        raise DecodeError(f"{label(what)}: expected a number, got boolean {value!r}")
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            raise DecodeError(f"{label(what)}: number {short(value)} is too large") from None
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            return float(text)
        raise DecodeError(f"{label(what)}: {short(value)} is not a number")
    raise DecodeError(f"{label(what)}: expected a number, got {type(value).__name__} {short(value)}")


def to_bool(value: object, what: str) -> bool:
    """A JSON boolean (the formats that use booleans send real ones)."""
    if isinstance(value, bool):
        return value
    raise DecodeError(f"{label(what)}: expected true/false, got {short(value)}")


def word(value: str, choices: dict[str, int], what: str) -> int:
    """Map a keyword such as ON/OFF (case-insensitive) to its number."""
    key = value.strip().lower()
    if key in choices:
        return choices[key]
    raise DecodeError(f"{label(what)}: expected one of {'/'.join(choices)}, got {short(value)}")


def zone(name: object) -> ZoneInfo:
    """The ZoneInfo for an IANA zone name from the options."""
    if not isinstance(name, str) or not name:
        raise DecodeError(f"device_tz {short(name)} is not a time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise DecodeError(f"device_tz {short(name)} is not a known time zone") from None


def _checked(ts_ms: int, what: str, raw: object) -> int:
    if not 0 <= ts_ms <= MAX_TS_MS:
        raise DecodeError(f"{label(what)}: timestamp {short(raw)} is out of range")
    return ts_ms


def iso_ts(value: object, what: str, tz: ZoneInfo | None = None) -> int:
    """An ISO-8601 string to epoch ms (a time without offset is read in ``tz``, UTC if None)."""
    if not isinstance(value, str):
        raise DecodeError(f"{label(what)}: expected an ISO-8601 time, got {short(value)}")
    try:
        ts_ms = parse_iso_ms(value, tz)
    except (ValueError, OverflowError, OSError):
        raise DecodeError(f"{label(what)}: {short(value)} is not an ISO-8601 time") from None
    return _checked(ts_ms, what, value)


def epoch_ts(value: object, what: str, unit: str = "auto") -> int:
    """An epoch number (``s``, ``ms``, or ``auto``: ms when ≥ 1e11) to epoch ms."""
    number = to_number(value, what)
    if not math.isfinite(number):
        raise DecodeError(f"{label(what)}: timestamp {short(value)} is not a finite number")
    if unit == "s" or (unit == "auto" and abs(number) < _MS_THRESHOLD):
        number *= 1000.0
    return _checked(round(number), what, value)


def any_ts(value: object, what: str, tz: ZoneInfo | None = None) -> int:
    """A timestamp that is either ISO-8601 text or an epoch number in s or ms."""
    if isinstance(value, str) and not _NUMBER.fullmatch(value.strip()):
        return iso_ts(value, what, tz)
    return epoch_ts(value, what)


def make_value(quantity: str, value: float, ts_ms: int | None = None, *, unit: str = "") -> DecodedValue:
    """A DecodedValue with the quantity's canonical unit (``unit`` for quantities archmon does not know)."""
    spec = QUANTITIES.get(quantity)
    return DecodedValue(quantity, value, spec.unit if spec else unit, ts_ms)


def temperature(value: object, what: str, unit: object = "C") -> float:
    """A temperature number in ``unit`` (C or F) converted to °C."""
    number = to_number(value, what)
    return convert_unit(number, unit, what)


def convert_unit(number: float, unit: object, what: str) -> float:
    """Convert a temperature in unit ``C``/``F`` (also ``°C``/``°F``) to °C."""
    key = unit.strip().upper().lstrip("°") if isinstance(unit, str) else None
    if key in ("C", ""):
        return number
    if key == "F":
        return fahrenheit_to_celsius(number)
    raise DecodeError(f"{label(what)}: unknown temperature unit {short(unit)} (use C or F)")


def extra_str(extra: object, key: str, default: str) -> str:
    """A string option from ``DecodeOptions.extra``."""
    value = extra.get(key, default) if isinstance(extra, dict) else default
    if not isinstance(value, str) or not value:
        raise DecodeError(f"option {key} must be a non-empty string, got {short(value)}")
    return value
