"""Export stored readings as CSV or JSON Lines, streaming (constant memory)."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Collection, Iterator
from typing import Literal, Protocol, TextIO

from archmon.timeutil import to_iso

__all__ = ["COLUMNS", "ReadingSource", "export"]

log = logging.getLogger(__name__)

COLUMNS = ("ts", "site", "room", "sensor", "quantity", "value")


class ReadingSource(Protocol):
    """What export needs from a store: the streaming ``readings`` query of ``SqliteStore``."""

    def readings(
        self,
        start_ms: int,
        end_ms: int,
        sensors: Collection[str] | None = None,
        *,
        rooms: Collection[str] | None = None,
    ) -> Iterator[tuple[int, str, str, str, float]]:
        """Readings with ``start_ms <= ts < end_ms`` as ``(ts, room, sensor, quantity, value)`` by ts.

        ``room`` is the room the sensor was in when the reading was taken; ``rooms`` filters on it.
        """
        ...


def export(
    store: ReadingSource,
    out: TextIO,
    *,
    start_ms: int,
    end_ms: int,
    site: str,
    rooms: Collection[str] | None,
    sensors: Collection[str] | None,
    fmt: Literal["csv", "jsonl"],
) -> int:
    """Write raw readings with ``start_ms <= ts < end_ms`` to ``out``, oldest first.

    CSV has the header ``ts,site,room,sensor,quantity,value`` and ``\\n`` line ends (open files with
    ``newline=""``); JSON Lines has one object per line with the same keys. ``ts`` is ISO-8601 UTC with
    milliseconds and ``Z``; values are written as the shortest text that reads back as the same float.
    ``room`` is the room the sensor was assigned to when the reading was taken (a sensor moved to another
    room keeps its earlier readings in the earlier room), and ``rooms`` selects readings by it.

    Args:
        store: where the readings come from (a ``SqliteStore``).
        out: text stream to write to.
        start_ms: period start, UTC epoch ms (inclusive); end_ms: period end (exclusive).
        site: site name written in every row.
        rooms: only readings taken in these rooms (None: all); sensors: only these sensors (None: all).
        fmt: ``csv`` or ``jsonl``.

    Returns:
        Number of readings written (the CSV header is not counted).

    Raises:
        ValueError: unknown ``fmt`` or ``end_ms < start_ms``.
    """
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"export format must be 'csv' or 'jsonl', got {fmt!r}")
    if end_ms < start_ms:
        raise ValueError(f"export period ends ({end_ms}) before it starts ({start_ms})")
    room_set = None if rooms is None else frozenset(rooms)
    sensor_set = None if sensors is None else frozenset(sensors)
    rows = store.readings(start_ms, end_ms, sensor_set, rooms=room_set)
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for ts, room, sensor, quantity, value in rows:
            writer.writerow((to_iso(ts), site, room, sensor, quantity, repr(float(value))))
            count += 1
    else:
        for ts, room, sensor, quantity, value in rows:
            record: dict[str, object] = {
                "ts": to_iso(ts),
                "site": site,
                "room": room,
                "sensor": sensor,
                "quantity": quantity,
                "value": float(value),
            }
            out.write(json.dumps(record, ensure_ascii=False))
            out.write("\n")
            count += 1
    log.info("exported %d readings (%s) for %s", count, fmt, site)
    return count
