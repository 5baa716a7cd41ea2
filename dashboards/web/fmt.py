"""Formatting for people: times in the site's zone with their offset, values with units."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from archmon.timeutil import from_ms

__all__ = ["UNITS", "fmt_time", "fmt_value"]

UNITS = {"temperature": "℃", "humidity": "%RH", "battery": "%", "light": "lx", "uv": "µW/lm", "dew_point": "℃"}


def fmt_time(ts_ms: int | None, tz: ZoneInfo, *, seconds: bool = False, date: bool = True) -> str:
    """``2024-03-04 12:00 +08:00`` in the site's zone (``—`` for None)."""
    if ts_ms is None:
        return "—"
    moment = from_ms(int(ts_ms)).astimezone(tz)
    offset = moment.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}" if offset else ""
    clock = "%H:%M:%S" if seconds else "%H:%M"
    return moment.strftime(("%Y-%m-%d " if date else "") + clock) + f" {offset}"


def fmt_value(value: float | None, quantity: str, *, unit: bool = True) -> str:
    """A value with its unit at display precision (``—`` for None)."""
    if value is None:
        return "—"
    digits = 1 if quantity in ("temperature", "humidity", "dew_point") else 0
    text = f"{value:.{digits}f}"
    return f"{text} {UNITS[quantity]}" if unit and quantity in UNITS else text
