"""ASCII line sensors: one reading per line, described by a regex with named groups.

Groups named after quantities carry values (``(?P<temperature>...)``); an optional ``sensor`` group
names the sensor on a shared line, an optional ``ts`` group the device time (ISO-8601, or epoch
seconds/milliseconds). The whole line (trailing CR/LF and spaces removed) must match the pattern.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from zoneinfo import ZoneInfo

from archmon.errors import ConfigError, DecodeError
from devices.decoded import DecodedValue
from devices.formats._util import any_ts, convert_unit, make_value, short, to_number, zone

__all__ = ["LineFormat"]

_SPECIAL = ("sensor", "ts")
_NO_UNITS: Mapping[str, str] = MappingProxyType({})
_NO_SCALE: Mapping[str, float] = MappingProxyType({})


class LineFormat:
    """A line pattern with per-quantity units and scales, built from a ``LineSourceConfig``.

    Args:
        pattern: regex with named groups (quantities, and optionally ``sensor`` and ``ts``).
        units: quantity → unit of the line's numbers; ``F`` temperatures are converted to °C.
        scale: quantity → multiplier applied to the number (before unit conversion).
        encoding: text encoding of the line.
        device_tz: zone for a ``ts`` group without offset.

    Raises:
        ConfigError: the pattern does not compile, has no quantity group, or an option is unusable.
    """

    def __init__(
        self,
        pattern: str,
        *,
        units: Mapping[str, str] = _NO_UNITS,
        scale: Mapping[str, float] = _NO_SCALE,
        encoding: str = "ascii",
        device_tz: str = "UTC",
    ) -> None:
        try:
            self._regex = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"line_pattern {pattern!r} is not a valid regex: {exc}") from None
        self.quantities = tuple(name for name in self._regex.groupindex if name not in _SPECIAL)
        if not self.quantities:
            raise ConfigError(f"line_pattern {pattern!r} has no quantity group such as (?P<temperature>...)")
        try:
            "".encode(encoding)
        except LookupError:
            raise ConfigError(f"line_encoding {encoding!r} is not a known text encoding") from None
        for quantity, unit in units.items():
            if quantity == "temperature" and unit.strip().upper().lstrip("°") not in ("C", "F", ""):
                raise ConfigError(f"line_units.temperature {unit!r} is not C or F")
        try:
            self._tz: ZoneInfo = zone(device_tz)
        except DecodeError as exc:
            raise ConfigError(str(exc)) from None
        self.pattern = pattern
        self._units = dict(units)
        self._scale = {quantity: float(factor) for quantity, factor in scale.items()}
        self._encoding = encoding

    def decode(self, line: bytes) -> tuple[str | None, tuple[DecodedValue, ...]]:
        """Decode one line.

        Returns:
            The ``sensor`` group's text (None without that group) and the values in canonical units.

        Raises:
            DecodeError: the line is not text in the encoding, does not match, or a group is not a number.
        """
        try:
            text = line.decode(self._encoding).rstrip("\r\n\t ")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"line is not {self._encoding} text (bad byte at offset {exc.start})") from None
        match = self._regex.fullmatch(text)
        if match is None:
            raise DecodeError(f"line {short(text)} does not match the pattern {short(self.pattern)}")
        groups = match.groupdict()
        sensor = groups.get("sensor")
        ts_ms = None if groups.get("ts") is None else any_ts(groups["ts"], "ts", self._tz)
        values: list[DecodedValue] = []
        for quantity in self.quantities:
            raw = groups[quantity]
            if raw is None:
                continue
            number = to_number(raw, quantity) * self._scale.get(quantity, 1.0)
            if quantity == "temperature":
                number = convert_unit(number, self._units.get(quantity, "C"), quantity)
            values.append(make_value(quantity, number, ts_ms, unit=self._units.get(quantity, "")))
        if not values:
            raise DecodeError(f"line {short(text)} matched but gave no value")
        return sensor, tuple(values)
