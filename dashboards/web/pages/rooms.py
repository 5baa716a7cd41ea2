"""The overview (every room as a card) and the room page (charts with the band, table view, events)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from archmon.timeutil import now_ms
from dashboards.web.overview import STATUS_ORDER, room_card, room_cards, snapshot
from dashboards.web.pages.common import ctx_of, html_error, page
from dashboards.web.series import RANGES, room_series

__all__ = ["TABLE_ROWS", "overview", "room_page"]

TABLE_ROWS = {"24h": 96, "7d": 168, "30d": 120, "1y": 365}
"""Rows of the table view per range (15 min, 1 h, 6 h, 1 day)."""


async def overview(request: Request) -> Response:
    """``GET /``: every room, the ones needing attention first; ``q`` filters by name, ``attention=1`` hides
    rooms that are fine, ``compact=1`` shows one line per room (large sites)."""
    ctx = ctx_of(request)
    q = request.query_params.get("q", "").strip()
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
    data as a table, and the range's door openings, alerts and access sessions."""
    ctx = ctx_of(request)
    room_id = request.path_params["room"]
    room = ctx.room(room_id)
    if room is None:
        return html_error(request, 404, f"unknown room {room_id!r}")
    span_name = request.query_params.get("range", "24h")
    if span_name not in RANGES:
        span_name = "24h"
    end = now_ms()
    start = end - RANGES[span_name]

    def build() -> dict[str, object]:
        snap = snapshot(ctx, now=end)
        card = room_card(ctx, snap, room)
        rows = TABLE_ROWS[span_name]
        temperature = room_series(ctx, room_id, "temperature", start, end, width=rows)
        humidity = room_series(ctx, room_id, "humidity", start, end, width=rows, events=False)
        return {"card": card, "temperature": temperature, "humidity": humidity, "events": temperature.events}

    data = await run_in_threadpool(build)
    table = _table(data["temperature"], data["humidity"])  # type: ignore[arg-type]
    return page(request, "room.html", room=room, span=span_name, spans=list(RANGES), start_ms=start, end_ms=end,
                table=table, sensors=ctx.room_sensors(room_id), **data)


def _table(temperature: object, humidity: object) -> dict[str, object]:
    """Rows of the table view: per slot, each sensor's mean/min/max of T and RH and the dew point."""
    from dashboards.web.series import SeriesData

    assert isinstance(temperature, SeriesData) and isinstance(humidity, SeriesData)
    columns = [("temperature", s) for s in temperature.series] + [("humidity", s) for s in humidity.series]
    dew = {s.sensor: s for s in temperature.dew_point}
    rows = []
    for i, x in enumerate(temperature.x_ms):
        cells = [(s.mean[i], s.min[i], s.max[i]) for _, s in columns]
        dews = [dew[s.sensor].mean[i] if s.sensor in dew else None for q, s in columns if q == "temperature"]
        if any(c[0] is not None for c in cells):
            rows.append({"ts": x - temperature.step_ms // 2, "cells": cells, "dew": dews})
    return {"columns": [(q, s.sensor) for q, s in columns], "rows": list(reversed(rows)),
            "step_ms": temperature.step_ms, "dew_sensors": [s.sensor for s in temperature.series]}
