"""Quantities archmon knows, their canonical units and physically possible ranges."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BINARY_QUANTITIES", "QUANTITIES", "QuantitySpec", "check_value", "fahrenheit_to_celsius"]


@dataclass(frozen=True, slots=True)
class QuantitySpec:
    """One measured quantity: canonical unit and the range a working sensor can report."""

    name: str
    unit: str
    low: float
    high: float
    binary: bool = False


QUANTITIES: dict[str, QuantitySpec] = {
    q.name: q
    for q in (
        QuantitySpec("temperature", "°C", -40.0, 85.0),
        QuantitySpec("humidity", "%RH", 0.0, 100.0),
        QuantitySpec("smoke", "", 0, 1, binary=True),
        QuantitySpec("door", "", 0, 1, binary=True),
        QuantitySpec("leak", "", 0, 1, binary=True),
        QuantitySpec("light", "lx", 0.0, 200_000.0),
        QuantitySpec("uv", "µW/lm", 0.0, 10_000.0),
        QuantitySpec("battery", "%", 0.0, 100.0),
    )
}
BINARY_QUANTITIES = frozenset(q.name for q in QUANTITIES.values() if q.binary)


def fahrenheit_to_celsius(value: float) -> float:
    """Convert °F to °C."""
    return (value - 32.0) * 5.0 / 9.0


def check_value(quantity: str, value: object) -> float:
    """Return ``value`` as a float if it is a possible value of ``quantity``.

    Quantities archmon does not know (free-form extras) only need to be finite numbers.

    Raises:
        ValueError: with a message naming the quantity and the bad value.
    """
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, int | float):
        raise ValueError(f"{quantity}: expected a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{quantity}: value {value!r} is not a finite number")
    spec = QUANTITIES.get(quantity)
    if spec is None:
        return number
    if spec.binary:
        if number not in (0.0, 1.0):
            raise ValueError(f"{quantity}: binary value must be 0 or 1, got {value!r}")
        return number
    if not spec.low <= number <= spec.high:
        raise ValueError(
            f"{quantity}: {number:g} {spec.unit} is outside the physical range {spec.low:g}..{spec.high:g}"
        )
    return number
