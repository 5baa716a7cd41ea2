"""Room series for the city overview, read from the central InfluxDB the sites forward to (InfluxQL on
``/query``, the schema of ``collector.forward.lines``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from collector.forward.remote import RemoteError

if TYPE_CHECKING:  # influxdb-client is loaded only where a central InfluxDB is configured
    from collector.forward import InfluxClient

__all__ = ["CLOCK_AHEAD_MS", "RoomSeries", "room_series", "safe_room_series"]

log = logging.getLogger("dashboards.city")

CLOCK_AHEAD_MS = 86_400_000
"""How far past the central's now a window of readings reaches: a site whose clock runs fast stamps its
readings ahead (the overview shows its offset); without it, its newest readings would be left out."""


@dataclass(frozen=True, slots=True)
class RoomSeries:
    """One room's quantity over the window: the last value (of any of its sensors), the lowest and highest."""

    last: float
    low: float
    high: float


def room_series(client: InfluxClient, start_ms: int, end_ms: int,
                quantities: tuple[str, ...] = ("temperature", "humidity")) -> dict[tuple[str, str, str], RoomSeries]:
    """``(site, room, quantity) -> RoomSeries`` of every site and room in ``[start_ms, end_ms)``, in one query.

    Raises:
        RemoteError: the server did not answer or refused the query.
    """
    sources = ", ".join('"' + q.replace('"', '\\"') + '"' for q in quantities)
    answer = client.query(f'SELECT last("value"), min("value"), max("value") FROM {sources} '
                          f'WHERE time >= {int(start_ms)}ms AND time < {int(end_ms)}ms GROUP BY "site", "room"')
    out = {}
    for series in answer:
        for row in series.values:
            if len(row) >= 4 and row[1] is not None:
                out[(series.tags.get("site", ""), series.tags.get("room", ""), series.name)] = RoomSeries(
                    float(row[1]), float(row[2]), float(row[3]))
    return out


def safe_room_series(client: InfluxClient | None, start_ms: int, end_ms: int
                     ) -> tuple[dict[tuple[str, str, str], RoomSeries], str]:
    """:func:`room_series`, or nothing and the reason (the overview shows it) when InfluxDB cannot answer."""
    if client is None:
        return {}, ""
    try:
        return room_series(client, start_ms, end_ms), ""
    except RemoteError as exc:
        log.warning("central: InfluxDB did not answer: %s", exc)
        return {}, str(exc)
