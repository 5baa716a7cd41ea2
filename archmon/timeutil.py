"""Time helpers: archmon keeps UTC epoch milliseconds internally."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

__all__ = ["from_ms", "local_text", "now_ms", "parse_iso_ms", "to_iso"]


def now_ms() -> int:
    """Current wall-clock time as UTC epoch milliseconds."""
    return time.time_ns() // 1_000_000


def from_ms(ts_ms: int) -> datetime:
    """Epoch milliseconds to an aware UTC datetime."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC)


def to_iso(ts_ms: int, tz: ZoneInfo | None = None) -> str:
    """Epoch milliseconds to ISO-8601 with millisecond precision (UTC unless ``tz`` is given)."""
    moment = from_ms(ts_ms)
    if tz is not None:
        moment = moment.astimezone(tz)
    text = moment.isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if tz is None else text


def local_text(ts_ms: int, tz: ZoneInfo, *, date: bool = True) -> str:
    """A time for people: in ``tz`` with its offset, to the second (``2026-01-05 08:00:03+08:00``; without
    the date: ``08:00:03+08:00``)."""
    moment = from_ms(ts_ms).astimezone(tz)
    offset = moment.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}" if offset else ""
    return moment.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S") + offset


def parse_iso_ms(text: str, default_tz: ZoneInfo | None = None) -> int:
    """Parse ISO-8601 to epoch milliseconds; a time without offset is read in ``default_tz`` (UTC if None).

    Raises:
        ValueError: if the text is not ISO-8601.
    """
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=default_tz or UTC)
    return round(moment.timestamp() * 1000)
