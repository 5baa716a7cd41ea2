"""Reading series back from InfluxDB through InfluxQL on ``/query`` (InfluxDB 1.x, 2.x with a DBRP mapping, 3.x).

The schema is the one the outbox writes (:mod:`collector.forward.lines`): measurement = quantity, tags
``site``, ``room``, ``sensor``, field ``value``. Every query names the site, so one central database holds
many sites. Times are UTC epoch ms, ranges half-open (``start <= time < end``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from collector.forward.influx import InfluxClient, QuerySeries
from collector.store import Bucket

__all__ = ["InfluxReader", "RemotePoint", "influxql_string"]

_DURATION = re.compile(r"^[1-9][0-9]*(ms|s|m|h|d|w)$")


def influxql_string(text: str) -> str:
    """A single-quoted InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _identifier(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class RemotePoint:
    """One point read back: when, where, what."""

    ts_ms: int
    site: str
    room: str
    sensor: str
    quantity: str
    value: float


class InfluxReader:
    """Raw points and aggregated windows of one site.

    Args:
        client: the target's client (its ``database`` is queried).
        site: the ``site`` tag to read.
    """

    def __init__(self, client: InfluxClient, site: str) -> None:
        self.client = client
        self.site = site

    def _where(self, start_ms: int, end_ms: int, sensor: str | None = None, room: str | None = None) -> str:
        parts = [f'"site" = {influxql_string(self.site)}']
        if sensor is not None:
            parts.append(f'"sensor" = {influxql_string(sensor)}')
        if room is not None:
            parts.append(f'"room" = {influxql_string(room)}')
        parts += [f"time >= {int(start_ms)}ms", f"time < {int(end_ms)}ms"]
        return " AND ".join(parts)

    def series(self, sensor: str, quantity: str, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """Raw ``(ts_ms, value)`` of one sensor's quantity, oldest first (every room it was in)."""
        rows = self.client.query(f'SELECT "value" FROM {_identifier(quantity)} '
                                 f"WHERE {self._where(start_ms, end_ms, sensor)}")
        return sorted((int(t), float(v)) for s in rows for t, v in s.values if v is not None)

    def points(self, start_ms: int, end_ms: int, *, quantity: str | None = None,
               room: str | None = None) -> list[RemotePoint]:
        """Every point of the site in the range (one quantity or all), ordered by time, room, sensor."""
        source = _identifier(quantity) if quantity else "/.*/"
        answer = self.client.query(f'SELECT "value" FROM {source} WHERE {self._where(start_ms, end_ms, room=room)} '
                                   'GROUP BY "room", "sensor", "site"')
        points = [RemotePoint(int(t), s.tags.get("site", ""), s.tags.get("room", ""), s.tags.get("sensor", ""),
                              s.name, float(v)) for s in answer for t, v in s.values if v is not None]
        return sorted(points, key=lambda p: (p.ts_ms, p.room, p.sensor, p.quantity))

    def windows(self, sensor: str, quantity: str, start_ms: int, end_ms: int, *, every: str = "1h",
                tz: str | None = None) -> list[Bucket]:
        """Aggregated windows (min, max, sum, count) of one sensor's quantity, oldest first.

        Args:
            every: an InfluxQL duration (``1h``, ``1d``, ``15m``).
            tz: an IANA zone for windows of calendar days (``tz('Asia/Shanghai')``); None: UTC.

        Raises:
            ValueError: ``every`` is not a duration.
            RemoteError: the query failed.
        """
        if not _DURATION.match(every):
            raise ValueError(f"every must be an InfluxQL duration such as 1h or 1d, got {every!r}")
        query = (f'SELECT min("value"), max("value"), sum("value"), count("value") FROM {_identifier(quantity)} '
                 f"WHERE {self._where(start_ms, end_ms, sensor)} GROUP BY time({every}) fill(none)")
        if tz:
            query += f" tz({influxql_string(tz)})"
        return [_bucket(row) for series in self.client.query(query) for row in _rows(series)]


def _rows(series: QuerySeries) -> list[list[object]]:
    return [row for row in series.values if len(row) >= 5 and row[4]]


def _bucket(row: list[object]) -> Bucket:
    start, low, high, total, count = row[:5]
    return Bucket(int(start), float(low), float(high), float(total), int(count))  # type: ignore[arg-type]
