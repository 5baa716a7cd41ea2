"""What every page shares: the template environment, the language of a request, rendering helpers."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from alerts.messages import QUANTITY_NAMES, STATE_NAMES
from archmon.timeutil import now_ms
from dashboards.web.context import WebContext
from dashboards.web.fmt import fmt_time, fmt_value
from dashboards.web.i18n import Translator, pick_language

__all__ = ["LANG_COOKIE", "context", "ctx_of", "error_redirect", "fragment", "html_error", "language_of", "page",
           "query_error", "redirect", "templates"]

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
LANG_COOKIE = "archmon_lang"


@functools.cache
def templates() -> Jinja2Templates:
    """The Jinja2 environment (autoescaped)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    return Jinja2Templates(env=env)


def ctx_of(request: Request) -> WebContext:
    """The app's :class:`WebContext`."""
    return request.app.state.ctx


def language_of(request: Request) -> str:
    """The user's chosen language, else the language cookie, else ``Accept-Language``, else the site's."""
    ctx = ctx_of(request)
    user = getattr(request.state, "user", None)
    chosen = getattr(request.state, "language", None)
    return pick_language(chosen, user.language if user else None, request.cookies.get(LANG_COOKIE),
                         accept="" if user else request.headers.get("accept-language", ""),
                         default=ctx.config.site.language)


def context(request: Request, **extra: Any) -> dict[str, Any]:
    """The variables every template gets."""
    ctx = ctx_of(request)
    t = Translator(language_of(request))
    tz = ctx.tz

    def when(ts: int | None, **kw: Any) -> str:
        return fmt_time(ts, tz, **kw)

    def quantity_name(quantity: str) -> str:
        pair = QUANTITY_NAMES.get(quantity)
        return t.pair(*pair) if pair else quantity

    def state_name(state: str) -> str:
        pair = STATE_NAMES.get(state)
        return t.pair(*pair) if pair else state

    def room_name(room_id: str) -> str:
        room = ctx.room(room_id)
        return t.pair(room.name_zh, room.name_en) or room_id if room else room_id

    return {
        "request": request, "t": t, "lang": t.language, "user": request.state.user,
        "csrf": request.state.csrf or "", "site": ctx.config.site, "when": when, "value": fmt_value,
        "quantity_name": quantity_name, "state_name": state_name, "room_name": room_name, "now_ms": now_ms(),
        "tz_name": ctx.config.site.timezone, "central": getattr(ctx.city, "state", None) is not None, **extra,
    }


def page(request: Request, template: str, status_code: int = 200, **extra: Any) -> Response:
    """Render a full page."""
    return templates().TemplateResponse(request, template, context(request, **extra), status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    """303 See Other (after a POST)."""
    return RedirectResponse(url, status_code=303)


def error_redirect(path: str, error: BaseException | str, params: Mapping[str, Any] | None = None, *,
                   anchor: str = "") -> RedirectResponse:
    """Back to ``path`` with an error *code* (``?error=CODE&e_NAME=VALUE``), shown by the page in the reader's
    language (:func:`query_error`); ``error`` is an exception with ``code``/``params`` or a code."""
    if isinstance(error, BaseException):
        code, params = getattr(error, "code", "") or "unknown", getattr(error, "params", None)
    else:
        code = error
    query = {"error": code, **{f"e_{k}": str(v)[:200] for k, v in (params or {}).items()}}
    return redirect(f"{path}?{urlencode(query)}{anchor}")


def query_error(request: Request, t: Translator) -> str:
    """The error a redirect carries (see :func:`error_redirect`), in the reader's language ("" for none; an
    unknown code gives the generic text)."""
    code = request.query_params.get("error", "")[:64]
    if not code:
        return ""
    params = {k[2:]: v[:200] for k, v in request.query_params.items() if k.startswith("e_")}
    return t.error(code, params)


def fragment(request: Request, name: str, **extra: Any) -> str:
    """Render a template to a string (SSE cards)."""
    return templates().get_template(name).render(context(request, **extra))


def html_error(request: Request, status: int, message: str) -> Response:
    """A small error page in the user's language."""
    if request.state.user is None:
        return HTMLResponse(message, status_code=status)
    return page(request, "error.html", status_code=status, message=message, status=status)
