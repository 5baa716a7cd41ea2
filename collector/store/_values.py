"""How a raw reading's value is stored: hundredths as an integer where that is exact, else the float itself.

A REAL takes 8 bytes of every raw row; the readings archmon takes are mostly decimals with one or two
places (20.1 ℃, 55.25 %RH, 412 ppm), whose hundredths fit a 2- or 3-byte SQLite integer. So
``readings.value`` is a column without type affinity (schema step 7, ``collector.store._schema``) holding

- an INTEGER ``n`` where ``n / 100`` gives back exactly the float that was stored (every value with at most
  two decimals, as a decoder parses it from text or scales it from a register), or
- the REAL itself otherwise (0.333…, 1e-9, anything finer): nothing is ever rounded.

The storage class tells which: ``typeof(value) = 'integer'`` is hundredths. Decoding is exact in SQL and in
Python alike, because both divide the integer by 100 in IEEE double arithmetic (correctly rounded), and
the encoder keeps an integer only after checking that this division gives back the value. A file written
before step 7 (REAL affinity: every value reads back as a REAL) decodes unchanged through the same
expression. −0.0 is stored as 0, which the REAL column also read back as 0.0.
"""

from __future__ import annotations

__all__ = ["ENCODE_VALUE_SQL", "VALUE_SCALE", "decode_value", "encode_value", "value_sql"]

VALUE_SCALE = 100
"""Stored integers are hundredths of the unit."""
_MAX_ABS = 10**13
# (hundredths of at most 15 digits: SQLite's round() goes through decimal text of 15 significant digits,
# so below this the SQL and the Python encoder pick the same integer; beyond, values are kept as REALs)


def encode_value(value: float) -> int | float:
    """What ``readings.value`` stores for the finite float ``value`` (see the module docstring)."""
    if abs(value) < _MAX_ABS:
        scaled = round(value * VALUE_SCALE)
        if scaled / VALUE_SCALE == value:
            return scaled
    return value


def decode_value(stored: float) -> float:
    """The reading's value from what ``readings.value`` holds (an int: hundredths)."""
    return stored / VALUE_SCALE if type(stored) is int else float(stored)


def value_sql(column: str = "value") -> str:
    """SQL giving the reading's value (REAL) from the stored ``column`` (e.g. ``r.value``)."""
    return f"(CASE WHEN typeof({column}) = 'integer' THEN {column} / {VALUE_SCALE}.0 ELSE {column} END)"


ENCODE_VALUE_SQL = (
    f"(CASE WHEN abs(value) < {_MAX_ABS}"
    f" AND CAST(round(value * {VALUE_SCALE}) AS INTEGER) / {VALUE_SCALE}.0 = value"
    f" THEN CAST(round(value * {VALUE_SCALE}) AS INTEGER) ELSE value END)"
)
"""SQL encoding a stored REAL ``value`` as :func:`encode_value` does (schema step 7 re-encodes in place):
the integer is the nearest to ``value × 100`` in both (they round halves differently, but a half never
passes the check)."""
