"""The city overview of a central archmon (``[central]``): every site with its contact, rooms, compliance and open
alerts (from what the sites publish on the city's broker) and each room's last 24 hours (from the central
InfluxDB). ``GET /city`` and ``GET /api/city``."""

from __future__ import annotations

import dataclasses
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from archmon.timeutil import now_ms
from dashboards.city.series import CLOCK_AHEAD_MS, RoomSeries, safe_room_series
from dashboards.web.context import WebContext
from dashboards.web.i18n import Translator
from dashboards.web.pages.common import ctx_of, html_error, language_of, page

__all__ = ["api_city", "city_overview", "city_page"]

DAY_MS = 86_400_000


def city_overview(ctx: WebContext, *, now: int | None = None) -> dict[str, Any] | None:
    """Sites, per-room series and counts for the page (None: this archmon is not central; blocking)."""
    city = ctx.city
    state = getattr(city, "state", None)
    if state is None:
        return None
    now = now_ms() if now is None else now
    sites = state.sites(now)
    # a site whose clock runs fast stamps its readings ahead of the central's now: still its last 24 h
    series, influx_error = safe_room_series(city.influx, now - DAY_MS, now + CLOCK_AHEAD_MS)
    counts = {"online": 0, "stale": 0, "offline": 0}
    for site in sites:
        counts[site.contact] += 1
    return {"sites": sites, "series": series, "influx_error": influx_error, "counts": counts,
            "connected": bool(getattr(city.subscriber, "connected", False)),
            "open_alerts": sum(len(site.alerts) for site in sites)}


def _series_json(series: dict[tuple[str, str, str], RoomSeries], site: str, room: str) -> dict[str, Any]:
    return {q: dataclasses.asdict(found) for q in ("temperature", "humidity")
            if (found := series.get((site, room, q))) is not None}


async def city_page(request: Request) -> Response:
    """``GET /city``."""
    ctx = ctx_of(request)
    data = await run_in_threadpool(lambda: city_overview(ctx))
    if data is None:
        return html_error(request, 404, Translator(language_of(request)).error("not_central", {}))
    return page(request, "city.html", **data)


async def api_city(request: Request) -> Response:
    """
    summary: "The city overview: every site's contact, rooms with compliance and 24 h series, open alerts."
    responses:
      200: {description: "sites"}
      404: {description: "this archmon is not central"}
    """
    ctx = ctx_of(request)
    data = await run_in_threadpool(lambda: city_overview(ctx))
    if data is None:
        return JSONResponse({"error": "not central"}, status_code=404)
    out = []
    for site in data["sites"]:
        item = dataclasses.asdict(site)
        item["compliance"] = site.compliance
        item["clock_off"] = site.clock_off
        for room in item["rooms"]:
            room["series"] = _series_json(data["series"], site.site, room["room"])
        out.append(item)
    return JSONResponse({"sites": out, "counts": data["counts"], "connected": data["connected"],
                         "influx_error": data["influx_error"]})
