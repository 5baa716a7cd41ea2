"""The sensors page: last seen, last value, battery, calibration (last, certificate, due date, due-soon and
overdue marks: ``alerts.calibration``), stale state; unassigned devices with "adopt into room" (admin); the
quarantine with reasons."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from alerts.calibration import read_calibration_table
from alerts.settings import stale_after_ms
from archmon.timeutil import now_ms
from dashboards.web.adopt import KINDS, AdoptError, adopt_device, unassigned_devices
from dashboards.web.context import WebContext
from dashboards.web.i18n import Translator
from dashboards.web.pages.common import ctx_of, error_redirect, language_of, page, query_error, redirect
from dashboards.web.security import current_user, requires

__all__ = ["adopt", "sensor_rows", "sensors_page"]


def sensor_rows(ctx: WebContext, *, now: int | None = None) -> list[dict[str, Any]]:
    """One row per configured sensor (blocking)."""
    now = now_ms() if now is None else now
    values: dict[str, dict[str, float]] = {}
    for item in ctx.store.latest():
        values.setdefault(item.sensor, {})[item.quantity] = item.value
    last_seen = ctx.store.last_seen()
    availability = ctx.store.availability()
    stale = ctx.stale  # validated once, not per sensor
    with ctx.readers.read() as conn:
        calibration = {row.instrument: row for row in read_calibration_table(conn, ctx.config, now)}
    rows = []
    for sensor in ctx.config.sensors:
        seen = last_seen.get(sensor.id)
        if not sensor.enabled:
            state = "disabled"
        elif seen is None:
            state = "never"
        elif not sensor.live:
            state = "imported"  # readings only from files: its age is not staleness
        elif now - seen > stale_after_ms(sensor.expected_interval_s, stale):
            state = "stale"
        else:
            state = "ok"
        avail = availability.get(sensor.id)
        if state == "ok" and avail is not None and avail[0] == "offline" and avail[1] >= (seen or 0):
            state = "offline"
        own = dict(values.get(sensor.id, {}))
        battery = own.pop("battery", None)
        rows.append({"sensor": sensor, "state": state, "last_seen": seen, "values": own, "battery": battery,
                     "calibration": calibration.get(sensor.id)})
    return rows


async def sensors_page(request: Request) -> Response:
    """``GET /sensors``."""
    ctx = ctx_of(request)

    def read() -> dict[str, Any]:
        return {"rows": sensor_rows(ctx), "unassigned": unassigned_devices(ctx),
                "quarantine": ctx.store.quarantine(limit=100), "quarantine_total": ctx.store.quarantine_count()}

    data = await run_in_threadpool(read)
    adopted = request.query_params.get("adopted", "")
    return page(request, "sensors.html", rooms=ctx.config.rooms, kinds=KINDS,
                error=query_error(request, Translator(language_of(request))),
                adopted=adopted if ctx.sensor_room().get(adopted) else "", **data)


@requires("admin")
async def adopt(request: Request) -> Response:
    """``POST /sensors/adopt`` (form: source, device_topic, sensor_id, room, kind): written to the config file
    with a backup, then reloaded; audited as ``adopt``."""
    ctx = ctx_of(request)
    form = await request.form()
    fields = {key: str(form.get(key, "")).strip() for key in ("source", "device_topic", "sensor_id", "room", "kind")}
    try:
        await run_in_threadpool(adopt_device, ctx, by=current_user(request).name, **fields)
    except AdoptError as exc:
        return error_redirect("/sensors", exc, anchor="#unassigned")
    return redirect(f"/sensors?adopted={quote(fields['sensor_id'])}#sensor-{quote(fields['sensor_id'])}")
