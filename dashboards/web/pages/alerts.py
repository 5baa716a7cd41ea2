"""The alerts pages: active and history with filters; one alert with its transitions, comments and
notifications; acknowledging with a comment (operator)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from alerts.settings import SEVERITIES
from archmon.timeutil import now_ms
from dashboards.web import queries
from dashboards.web.context import WebContext
from dashboards.web.i18n import Translator
from dashboards.web.pages.common import ctx_of, error_redirect, html_error, language_of, page, query_error, redirect
from dashboards.web.security import current_user, requires

__all__ = ["AckError", "acknowledge", "alert_page", "alerts_page", "parse_filter"]

STATE_FILTERS = ("active", "open", "history", "all")
MAX_COMMENT = 2000
PAGE_SIZE = 100
MAX_PAGE = 100_000  # 10 million alerts back: further is a query, not a page


class AckError(ValueError):
    """An acknowledgement that cannot be made.

    Attributes:
        code: what went wrong, for the dashboard's catalogues (``error.<code>``); the message is English.
        params: the values the message names.
    """

    def __init__(self, message: str, code: str = "ack", **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


def parse_filter(ctx: WebContext, params: Any) -> queries.AlertFilter:
    """The filter from query parameters (unknown values ignored)."""
    room = params.get("room") or None
    severity = params.get("severity") or None
    state = params.get("state") or "active"
    try:
        page_no = min(MAX_PAGE, max(0, int(params.get("page", 0))))
    except ValueError:
        page_no = 0
    return queries.AlertFilter(
        room=room if room and ctx.room(room) is not None else None,
        severity=severity if severity in SEVERITIES else None,
        state=state if state in STATE_FILTERS else "active",  # type: ignore[arg-type]
        limit=PAGE_SIZE, offset=PAGE_SIZE * page_no,
    )


async def alerts_page(request: Request) -> Response:
    """``GET /alerts?room=&severity=&state=active|open|history|all``."""
    ctx = ctx_of(request)
    flt = parse_filter(ctx, request.query_params)

    def read() -> tuple[list[dict[str, Any]], int]:
        with ctx.readers.read() as conn:
            return queries.alerts(conn, flt)

    rows, total = await run_in_threadpool(read)
    return page(request, "alerts.html", rows=rows, total=total, flt=flt, severities=SEVERITIES,
                states=STATE_FILTERS, rooms=ctx.config.rooms, page_no=flt.offset // PAGE_SIZE)


async def alert_page(request: Request) -> Response:
    """``GET /alerts/{id}``."""
    ctx = ctx_of(request)
    alert_id = request.path_params["alert_id"]

    def read() -> dict[str, Any] | None:
        with ctx.readers.read() as conn:
            row = queries.alert(conn, alert_id)
            if row is None:
                return None
            return {"alert": row, "transitions": queries.transitions(conn, alert_id),
                    "comments": queries.comments(conn, alert_id),
                    "notifications": queries.notifications(conn, alert_id)}

    data = await run_in_threadpool(read)
    t = Translator(language_of(request))
    if data is None:
        return html_error(request, 404, t.error("ack_unknown", {"id": alert_id}))
    error = query_error(request, t)
    return page(request, "alert.html", error=f"{t('alert.ack_failed')}: {error}" if error else "",
                done=request.query_params.get("done") == "1", **data)


def do_acknowledge(ctx: WebContext, alert_id: int, by: str, comment: str) -> str:
    """Acknowledge through the running alert service (or the store, as the CLI does); returns the room.

    Raises:
        AckError: no comment, unknown alert, or nothing to acknowledge.
    """
    comment = comment.strip()
    if not comment:
        raise AckError("an acknowledgement needs a comment", "ack_no_comment")
    if len(comment) > MAX_COMMENT:
        raise AckError(f"comment too long (over {MAX_COMMENT} characters)", "ack_comment_long", n=MAX_COMMENT)
    with ctx.readers.read() as conn:
        row = queries.alert(conn, alert_id)
    if row is None:
        raise AckError(f"unknown alert {alert_id}", "ack_unknown", id=alert_id)
    if row["state"] in ("closed", "cancelled"):
        raise AckError(f"alert {alert_id} is {row['state']}; nothing to acknowledge", "ack_state", id=alert_id,
                       state=row["state"])
    try:
        if ctx.alerts is not None:
            ctx.alerts.acknowledge(alert_id, by, comment)
        else:
            from alerts.actions import acknowledge as store_acknowledge
            from alerts.store import AlertStore

            store = AlertStore(ctx.db_path)
            try:
                store_acknowledge(store, alert_id, by, comment, now_ms())
            finally:
                store.close()
    except KeyError:
        raise AckError(f"unknown alert {alert_id}", "ack_unknown", id=alert_id) from None
    except ValueError as exc:  # the engine's reason (a state changed since the row was read)
        raise AckError(str(exc), "ack_refused", reason=str(exc)[:200]) from None
    return str(row["room"])


@requires("operator")
async def acknowledge(request: Request) -> Response:
    """``POST /alerts/{id}/ack`` (form: ``comment``); operators and admins."""
    ctx = ctx_of(request)
    alert_id = request.path_params["alert_id"]
    form = await request.form()
    user = current_user(request)
    try:
        room = await run_in_threadpool(do_acknowledge, ctx, alert_id, user.name, str(form.get("comment", "")))
    except AckError as exc:
        return error_redirect(f"/alerts/{alert_id}", exc)
    live = getattr(request.app.state, "live", None)
    if live is not None:
        live.publish({room})
    return redirect(f"/alerts/{alert_id}?done=1")
