"""The overview (every room as a card) and the room page (charts with the band, table view, events)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from archmon.timeutil import now_ms
from dashboards.web.devices import room_devices
from dashboards.web.i18n import Translator
from dashboards.web.overview import STATUS_ORDER, room_card, room_cards, snapshot
from dashboards.web.pages.common import ctx_of, html_error, language_of, page
from dashboards.web.series import RANGES, SeriesData, room_series, table_edges

__all__ = ["Cell", "Table", "TableRow", "overview", "room_page"]


async def overview(request: Request) -> Response:
    """``GET /``: every room, the ones needing attention first; ``q`` filters by name, ``attention=1`` hides
    rooms that are fine, ``compact=1`` shows one line per room (large sites)."""
    ctx = ctx_of(request)
    q = request.query_params.get("q", "").strip()[:100]
    attention = request.query_params.get("attention") == "1"
    compact = request.query_params.get("compact") == "1"
    cards = await run_in_threadpool(lambda: room_cards(ctx, snapshot(ctx)))
    counts = {status: 0 for status in STATUS_ORDER}
    for card in cards:
        counts[card.status] += 1
    total = len(cards)
    if q:
        needle = q.casefold()
        cards = [c for c in cards if needle in f"{c.room.id} {c.room.name_zh} {c.room.name_en}".casefold()]
    if attention:
        cards = [c for c in cards if c.status != "ok"]
    return page(request, "overview.html", cards=cards, counts=counts, total=total, q=q, attention=attention,
                compact=compact)


async def room_page(request: Request) -> Response:
    """``GET /rooms/{room}?range=24h|7d|30d|1y``: charts (drawn by the vendored uPlot from ``/api``), the same
    data as a table of local calendar slots, and the range's door openings, alerts and access sessions."""
    ctx = ctx_of(request)
    room_id = request.path_params["room"]
    room = ctx.room(room_id)
    if room is None:
        return html_error(request, 404, Translator(language_of(request)).error("unknown_room", {"room": room_id}))
    span_name = request.query_params.get("range", "24h")
    if span_name not in RANGES:
        span_name = "24h"
    end = now_ms()
    start = end - RANGES[span_name]

    def build() -> dict[str, object]:
        snap = snapshot(ctx, now=end)
        card = room_card(ctx, snap, room)
        edges = table_edges(span_name, end, ctx.tz)
        temperature = room_series(ctx, room_id, "temperature", start, end, edges=edges)
        humidity = room_series(ctx, room_id, "humidity", start, end, edges=edges, events=False)
        return {"card": card, "temperature": temperature, "humidity": humidity, "table": _table(temperature, humidity),
                "events": temperature.events, "devices": room_devices(ctx, room_id, start, end)}

    data = await run_in_threadpool(build)
    return page(request, "room.html", room=room, span=span_name, spans=list(RANGES), start_ms=start, end_ms=end,
                resolution="raw" if RANGES[span_name] <= 2 * 86_400_000 else "hour",
                sensors=ctx.room_sensors(room_id), **data)


class Cell(NamedTuple):
    """One sensor's quantity in one row of the table: mean, min and max (None: no data)."""

    mean: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True, slots=True)
class TableRow:
    """One local calendar slot of the table view."""

    ts: int
    cells: list[Cell]
    dew: list[float | None]


@dataclass(frozen=True, slots=True)
class Table:
    """The table view: column headings ``(quantity, sensor)``, rows newest first, the dew point's sensors."""

    columns: list[tuple[str, str]]
    rows: list[TableRow]
    dew_sensors: list[str]


def _table(temperature: SeriesData, humidity: SeriesData) -> Table:
    """Rows of the table view: per slot, each sensor's mean/min/max of T and RH and the dew point."""
    columns = [("temperature", s) for s in temperature.series] + [("humidity", s) for s in humidity.series]
    dew = {s.sensor: s for s in temperature.dew_point}
    rows = []
    for i, start in enumerate(temperature.starts_ms):
        cells = [Cell(s.mean[i], s.min[i], s.max[i]) for _, s in columns]
        dews = [dew[s.sensor].mean[i] if s.sensor in dew else None for q, s in columns if q == "temperature"]
        if any(c.mean is not None for c in cells):
            rows.append(TableRow(start, cells, dews))
    return Table([(q, s.sensor) for q, s in columns], rows[::-1], [s.sensor for s in temperature.series])
