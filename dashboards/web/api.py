"""The JSON API, behind the same login as the pages (or ``Authorization: Bearer <token>`` for scripts;
tokens from ``archmon user token NAME``). Browser sessions send the CSRF token in ``X-CSRF-Token``.

A refused request answers ``{"error": TEXT, "code": CODE}``: ``TEXT`` in the caller's language, ``CODE``
stable for scripts (the ``error.<code>`` keys of the catalogues)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.schemas import SchemaGenerator

from alerts.access import AccessError
from archmon.timeutil import now_ms
from dashboards.web import queries
from dashboards.web.i18n import Translator
from dashboards.web.overview import RoomCard, room_cards, snapshot
from dashboards.web.pages.alerts import AckError, do_acknowledge, parse_filter
from dashboards.web.pages.common import ctx_of, language_of
from dashboards.web.security import current_user, requires
from dashboards.web.series import MAX_TS_MS, RANGES, room_series

__all__ = ["api_access", "api_access_close", "api_access_open", "api_ack", "api_alerts", "api_latest",
           "api_rooms", "api_series", "openapi"]

SCHEMAS = SchemaGenerator({"openapi": "3.0.0", "info": {"title": "archmon dashboard API", "version": "1"}})


def _error(request: Request, status: int, error: BaseException | str, **params: Any) -> JSONResponse:
    """A refusal: the text in the caller's language and the code (an exception's, or ``error`` itself)."""
    t = Translator(language_of(request))
    if isinstance(error, BaseException):
        return JSONResponse({"error": t.failure(error), "code": getattr(error, "code", "unknown")}, status_code=status)
    return JSONResponse({"error": t.error(error, params), "code": error}, status_code=status)


def _card_json(card: RoomCard) -> dict[str, Any]:
    return {
        "room": card.room.id, "name_zh": card.room.name_zh, "name_en": card.room.name_en,
        "profile": card.profile.id if card.profile else None, "status": card.status,
        "quantities": [{**dataclasses.asdict(q), "range_over": q.range_over} for q in card.quantities],
        "door": card.door, "smoke": card.smoke, "leak": card.leak, "guards": card.guards, "stale": card.stale,
        "alerts": [{"id": a["id"], "rule": a["rule"], "severity": a["severity"], "state": a["state"]}
                   for a in card.alerts],
        "access_session": card.session.id if card.session else None, "updated_ms": card.updated_ms,
    }


async def api_rooms(request: Request) -> Response:
    """
    summary: "Every room with its current state (the overview's cards)."
    responses:
      200: {description: "list of rooms"}
    """
    ctx = ctx_of(request)
    cards = await run_in_threadpool(lambda: room_cards(ctx, snapshot(ctx)))
    return JSONResponse([_card_json(c) for c in cards])


async def api_latest(request: Request) -> Response:
    """
    summary: "The newest stored value of every series."
    responses:
      200: {description: "list of latest values"}
    """
    ctx = ctx_of(request)
    latest = await run_in_threadpool(ctx.store.latest)
    return JSONResponse([dataclasses.asdict(v) for v in latest])


async def api_series(request: Request) -> Response:
    """
    summary: "One quantity of a room's sensors, downsampled to `width` slots (mean, min, max per slot)."
    description: "range=24h|7d|30d|1y (or start/end in epoch ms); quantity=temperature|humidity; width<=4000.
      Up to two days come from raw readings, longer ranges from hour rollups."
    responses:
      200: {description: "series"}
    """
    ctx = ctx_of(request)
    room = request.path_params["room"]
    if ctx.room(room) is None:
        return _error(request, 404, "unknown_room", room=room)
    params = request.query_params
    quantity = params.get("quantity", "temperature")
    if quantity not in ("temperature", "humidity"):
        return _error(request, 400, "series_quantity")
    try:
        width = int(params.get("width", 1200))
        if "start" in params:
            start, end = int(params["start"]), int(params.get("end", now_ms()))
        else:
            span = RANGES[params.get("range", "24h")]
            end = now_ms()
            start = end - span
    except (ValueError, KeyError):
        return _error(request, 400, "series_range", ranges=", ".join(RANGES))
    if not 0 <= start < end <= MAX_TS_MS or end - start > 400 * 86_400_000:
        return _error(request, 400, "series_span")
    data = await run_in_threadpool(room_series, ctx, room, quantity, start, end, width=width)
    return JSONResponse(data.to_json())


async def api_alerts(request: Request) -> Response:
    """
    summary: "Alerts by room, severity and state (active|open|history|all), newest first."
    responses:
      200: {description: "alerts and their total count"}
    """
    ctx = ctx_of(request)
    flt = parse_filter(ctx, request.query_params)

    def read() -> tuple[list[dict[str, Any]], int]:
        with ctx.readers.read() as conn:
            return queries.alerts(conn, flt)

    rows, total = await run_in_threadpool(read)
    return JSONResponse({"total": total, "alerts": rows})


async def _json_body(request: Request) -> dict[str, Any]:
    """The JSON object of the body ({} for anything else: not JSON, not an object, nested too deep)."""
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, RecursionError):
        return {}
    return body if isinstance(body, dict) else {}


@requires("operator")
async def api_ack(request: Request) -> Response:
    """
    summary: "Acknowledge an alert with a comment (operator). Body {'comment': '...'}."
    responses:
      200: {description: "acknowledged"}
      400: {description: "no comment, unknown alert or nothing to acknowledge"}
    """
    ctx = ctx_of(request)
    body = await _json_body(request)
    alert_id = request.path_params["alert_id"]
    comment = body.get("comment", "")
    if not isinstance(comment, str):
        return _error(request, 400, "bad_field", field="comment")
    try:
        room = await run_in_threadpool(do_acknowledge, ctx, alert_id, current_user(request).name, comment)
    except AckError as exc:
        return _error(request, 404 if exc.code == "ack_unknown" else 400, exc)
    live = getattr(request.app.state, "live", None)
    if live is not None:
        live.publish({room})
    with ctx.readers.read() as conn:
        return JSONResponse({"ok": True, "alert": queries.alert(conn, alert_id)})


async def api_access(request: Request) -> Response:
    """
    summary: "Access sessions (room=, open=1), newest first."
    responses:
      200: {description: "sessions"}
    """
    ctx = ctx_of(request)
    room = request.query_params.get("room") or None
    open_only = request.query_params.get("open") == "1"
    sessions = await run_in_threadpool(lambda: ctx.access.sessions(room=room, open_only=open_only))
    return JSONResponse([s.to_dict() for s in sessions])


@requires("operator")
async def api_access_open(request: Request) -> Response:
    """
    summary: "Open an access session (operator). Body {'room', 'people': [..2+], 'purpose', 'approval'}."
    responses:
      201: {description: "opened"}
      400: {description: "fewer than two people, no purpose or approval, or the room has an open session"}
    """
    ctx = ctx_of(request)
    body = await _json_body(request)
    fields = {key: body.get(key, "") for key in ("room", "purpose", "approval")}
    for key, value in fields.items():
        if not isinstance(value, str):
            return _error(request, 400, "bad_field", field=key)
    if ctx.room(fields["room"]) is None:
        return _error(request, 400, "access_unknown_room", room=fields["room"])
    people = body.get("people") or []
    if isinstance(people, str):
        people = [people]  # "张三、李四": the register splits names
    if not isinstance(people, list) or not all(isinstance(p, str) for p in people):
        return _error(request, 400, "access_bad_people")
    try:
        session = await run_in_threadpool(ctx.access.open_session, fields["room"], people, fields["purpose"],
                                          fields["approval"], current_user(request).name)
    except AccessError as exc:
        return _error(request, 400, exc)
    return JSONResponse(session.to_dict(), status_code=201)


@requires("operator")
async def api_access_close(request: Request) -> Response:
    """
    summary: "Close an access session (operator). Body {'note': '...'}."
    responses:
      200: {description: "closed"}
    """
    ctx = ctx_of(request)
    body = await _json_body(request)
    session_id = request.path_params["session_id"]
    note = body.get("note", "")
    if not isinstance(note, str):
        return _error(request, 400, "bad_field", field="note")
    try:
        session = await run_in_threadpool(lambda: ctx.access.close_session(session_id, current_user(request).name,
                                                                           note=note))
    except KeyError:
        return _error(request, 404, "access_unknown_session", id=session_id)
    except AccessError as exc:
        return _error(request, 400, exc)
    return JSONResponse(session.to_dict())


async def openapi(request: Request) -> Response:
    """
    summary: "This API's OpenAPI description."
    responses:
      200: {description: "OpenAPI 3 document"}
    """
    schema = SCHEMAS.get_schema(routes=[r for r in request.app.routes if getattr(r, "path", "").startswith("/api")])
    return JSONResponse(schema)
