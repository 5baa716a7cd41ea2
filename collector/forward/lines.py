"""InfluxDB line protocol for readings (DESIGN.md section 4): measurement = quantity, tags ``room``, ``sensor``,
``site``, field ``value`` (always a float), timestamp in milliseconds (``precision=ms``).

``temperature,room=paper,sensor=th1,site=示例档案馆 value=21.5 1767225600000``

Tags are written in key order (what InfluxDB sorts them to anyway); a tag whose value is empty is left out
(line protocol has no empty tag values). Commas, spaces and ``=`` are escaped; a line break cannot be
escaped and is written as a space. The float is ``repr``: it reads back as the same double.
"""

from __future__ import annotations

from archmon.domain import Reading

__all__ = ["escape_key", "escape_measurement", "reading_line", "series_prefix"]

_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\ ", "\r": "\\ ", "\\": "\\\\"})
_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\ ", "\r": "\\ ", "\\": "\\\\"})


def escape_key(text: str) -> str:
    """A tag key or value as line protocol writes it."""
    return text.translate(_KEY)


def escape_measurement(text: str) -> str:
    """A measurement name as line protocol writes it."""
    return text.translate(_MEASUREMENT)


def series_prefix(quantity: str, room: str, sensor: str, site: str) -> str:
    """``measurement,tag=...`` of one series: everything of a line before the field."""
    tags = "".join(f",{key}={escape_key(value)}" for key, value in (("room", room), ("sensor", sensor),
                                                                      ("site", site)) if value)
    return escape_measurement(quantity) + tags


def reading_line(reading: Reading, site: str, prefixes: dict[tuple[str, str, str], str] | None = None) -> str:
    """One reading as a line (``prefixes``: a cache of :func:`series_prefix` by quantity, room, sensor)."""
    key = (reading.quantity, reading.room, reading.sensor)
    prefix = prefixes.get(key) if prefixes is not None else None
    if prefix is None:
        prefix = series_prefix(reading.quantity, reading.room, reading.sensor, site)
        if prefixes is not None:
            if len(prefixes) > 100_000:  # bounded: a reload may rename rooms and sensors forever
                prefixes.clear()
            prefixes[key] = prefix
    return f"{prefix} value={float(reading.value)!r} {int(reading.ts_ms)}"
